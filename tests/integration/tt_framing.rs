//! TorchTune's message framing of the SentencePiece families (Llama 2 / Code Llama, Mistral,
//! Gemma), against the samples TorchTune 0.6.1 itself builds on the tiny SentencePiece
//! tokenizer (`scripts/reference/torchtune_framing_golden.py` →
//! `fixtures/tokenizers/tiny-spm-llama/torchtune_samples.json`): alpaca_dataset with
//! train_on_input False and True, chat_dataset (openai) over fixtures/data/chat.jsonl and the
//! multi-turn turns.jsonl, at max_seq_len 512 and 40.

use crate::harness::repo;
use crate::run::read;
use tunebridge::engine;
use tunebridge::engine::flavour::Flavour;

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn sentencepiece_families_frame_messages_as_torchtune() {
    let golden: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("fixtures/tokenizers/tiny-spm-llama/torchtune_samples.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (_, alpaca) = read("golden/runs/torchtune-lora-qwen2/config.yaml");
    let (_, chat) = read("golden/runs/torchtune-lora-qwen2-chat/config.yaml");
    // the transformers 5 conversion (Metaspace) and the published Llama-2 form (Prepend +
    // Replace) of the same tokenizer.model give the same samples
    for tok_dir in ["tiny-spm-llama", "tiny-spm-llama-legacy"] {
        let tok = engine::data::Tokenizer::load(&repo().join("fixtures/tokenizers").join(tok_dir))
            .unwrap();
        let mut checked = 0;
        for (key, rows) in &golden {
            let parts: Vec<&str> = key.split('/').collect();
            let (family, data, max) = (parts[0], parts[1], parts[2].parse::<u32>().unwrap());
            let mut spec = match data {
                "alpaca" | "alpaca_train_on_input" => alpaca.spec.clone(),
                _ => chat.spec.clone(),
            };
            spec.model.family = family.into();
            spec.data.sequence_len = max;
            spec.data.train_on_inputs = data == "alpaca_train_on_input";
            if data == "turns" {
                spec.data.datasets[0].path =
                    "fixtures/tokenizers/tiny-spm-llama/turns.jsonl".into();
            }
            let rows = rows.as_array().unwrap();
            let got = engine::data::build_samples(&spec, Flavour::TorchTune, &tok);
            // TorchTune raises on the first such row, so a run fails as a whole
            if let Some(err) = rows.iter().find_map(|r| r.get("error")) {
                let e = got.unwrap_err().to_string();
                let want = err.as_str().unwrap().trim_start_matches("ValueError: ");
                assert!(e.contains(want), "{tok_dir} {key}: {e}");
                checked += 1;
                continue;
            }
            let got = got.unwrap();
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(
                    got[i].input_ids,
                    ids(&row["tokens"]),
                    "{tok_dir} {key} row {i} tokens"
                );
                assert_eq!(
                    got[i].labels,
                    ids(&row["labels"]),
                    "{tok_dir} {key} row {i} labels"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 24, "{tok_dir}");
    }
}

#[test]
fn a_byte_level_tokenizer_is_no_sentencepiece_model() {
    let (_, alpaca) = read("golden/runs/torchtune-lora-qwen2/config.yaml");
    let mut spec = alpaca.spec.clone();
    spec.model.family = "llama2".into();
    let tok = engine::data::Tokenizer::load(&repo().join("fixtures/models/tiny-llama")).unwrap();
    let e = engine::data::build_samples(&spec, Flavour::TorchTune, &tok)
        .unwrap_err()
        .to_string();
    assert!(e.contains("SentencePiece"), "{e}");
}

#[test]
fn phi3_frames_messages_as_torchtune() {
    // Phi3MiniTokenizer (phi3_mini_tokenizer) on tiny-phi3-spm: the same tokenizer.model with
    // Phi-3's role tokens; samples from scripts/reference/torchtune_framing_golden.py. BOS once,
    // no EOS, and truncation at 40 forces no EOS.
    let dir = repo().join("fixtures/models/tiny-phi3-spm");
    let golden: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("torchtune_samples.json")).unwrap())
            .unwrap();
    let (_, alpaca) = read("golden/runs/torchtune-lora-qwen2/config.yaml");
    let (_, chat) = read("golden/runs/torchtune-lora-qwen2-chat/config.yaml");
    let tok = engine::data::Tokenizer::load(&dir).unwrap();
    let mut checked = 0;
    for (key, rows) in &golden {
        let parts: Vec<&str> = key.split('/').collect();
        let (data, max) = (parts[1], parts[2].parse::<u32>().unwrap());
        let mut spec = match data {
            "alpaca" | "alpaca_train_on_input" => alpaca.spec.clone(),
            _ => chat.spec.clone(),
        };
        spec.model.family = "phi3".into();
        spec.data.sequence_len = max;
        spec.data.train_on_inputs = data == "alpaca_train_on_input";
        if data == "turns" {
            spec.data.datasets[0].path = "fixtures/tokenizers/tiny-spm-llama/turns.jsonl".into();
        }
        let got = engine::data::build_samples(&spec, Flavour::TorchTune, &tok).unwrap();
        for (i, row) in rows.as_array().unwrap().iter().enumerate() {
            assert_eq!(
                got[i].input_ids,
                ids(&row["tokens"]),
                "{key} row {i} tokens"
            );
            assert_eq!(got[i].labels, ids(&row["labels"]), "{key} row {i} labels");
        }
        checked += 1;
    }
    assert_eq!(checked, 8);
}
