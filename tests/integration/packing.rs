//! Axolotl 0.19 sample packing (multipack) against a real Axolotl run
//! (`golden/runs/axolotl-lora-llama-packing`): eager attention on CPU, so real batches of
//! `micro_batch_size` rows, each a bin of whole samples of at most `sequence_len` tokens; no
//! `max_steps`, so the run's length is Axolotl's packed step estimate (30 steps over 3 epochs
//! of 11, 10 and 9 steps: the sampler's length is 21 micro-batches and epoch 2 packs into 20).

use super::harness::repo;
use super::run::{
    adapter_matches, golden_losses, golden_run_from_its_config, read, reproduce_golden,
};
use tunebridge::engine::{self, Flavour};

const NAME: &str = "axolotl-lora-llama-packing";

#[test]
fn axolotl_packing_matches_golden() {
    // per-step loss within 1e-4 relative and the step count (checked by the helper), adapter
    // within 1e-3; the figures docs/ENGINE.md quotes (`-- --nocapture` prints them)
    reproduce_golden(NAME);
    assert_eq!(
        golden_losses(NAME).len(),
        30,
        "Axolotl's estimate: ⌊20·2/4⌋·3 steps"
    );
}

#[test]
fn axolotl_packed_batches_match_the_recorded_collator_output() {
    // batches.jsonl: every packed micro-batch Axolotl's collator made (each row: its samples'
    // lengths, token ids, labels and position_ids, padding stripped), in order.
    let config = format!("golden/runs/{NAME}/config.yaml");
    let (fw, resolved) = read(&config);
    let spec = &resolved.spec;
    let flavour = Flavour::from_framework(fw).unwrap();
    let tok_dir = engine::model::locate(&spec.model.tokenizer).unwrap();
    let tok = engine::data::Tokenizer::load(&tok_dir).unwrap();
    let samples = engine::data::build_samples(spec, flavour, &tok).unwrap();
    let (plan, rows) = engine::train::multipack_plan(
        spec,
        &samples,
        tok.pad_id(),
        spec.training.max_steps,
        engine::train::Shard::SINGLE,
    )
    .unwrap();
    assert_eq!(plan.total_steps, 30);
    let per_epoch: Vec<usize> = (0..3)
        .map(|e| plan.windows.iter().filter(|w| w.epoch == e).count())
        .collect();
    assert_eq!(per_epoch, [11, 10, 9], "steps per epoch");
    let got: Vec<&Vec<usize>> = plan
        .windows
        .iter()
        .flat_map(|w| w.micro_batches.iter())
        .collect();
    let recorded: Vec<serde_json::Value> =
        std::fs::read_to_string(repo().join("golden/runs").join(NAME).join("batches.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    // accelerate fetches one batch ahead: the run stops at max_steps mid-epoch, so the record
    // holds one micro-batch more than was trained
    assert_eq!(recorded.len(), got.len() + 1, "micro-batch count");
    let ints = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    };
    for (k, (mb, rec)) in got.iter().zip(&recorded).enumerate() {
        let rec_rows = rec["rows"].as_array().unwrap();
        assert_eq!(mb.len(), rec_rows.len(), "micro-batch {k}: rows");
        for (r, (&i, want)) in mb.iter().zip(rec_rows).enumerate() {
            let row = &rows[i];
            let n: usize = row.doc_lens.iter().sum();
            let docs: Vec<usize> = ints(&want["doc_lens"])
                .iter()
                .map(|&x| x as usize)
                .collect();
            assert_eq!(row.doc_lens, docs, "micro-batch {k} row {r}: samples");
            assert_eq!(
                row.input_ids[..n],
                ints(&want["input_ids"])[..],
                "mb {k} row {r}: ids"
            );
            assert_eq!(
                row.labels[..n],
                ints(&want["labels"])[..],
                "mb {k} row {r}: labels"
            );
            // positions restart at 0 in every sample (the engine's DocLayout does the same)
            let restart: Vec<i64> = docs.iter().flat_map(|&d| 0..d as i64).collect();
            assert_eq!(
                ints(&want["position_ids"]),
                restart,
                "mb {k} row {r}: positions"
            );
            // rows are padded to 128 = 64·⌈sequence_len/64⌉, as the collator pads them
            assert_eq!(
                row.input_ids.len(),
                rec["padded_len"].as_u64().unwrap() as usize
            );
        }
    }
}

/// The `(step, eval_loss)` rows of a `metrics.jsonl`, in file order.
fn evals(path: &std::path::Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((v["step"].as_u64()?, v["eval_loss"].as_f64()?))
        })
        .collect()
}

#[test]
fn axolotl_packed_eval_matches_golden() {
    // val_set_size 0.125 with sample_packing: the 8 held-out rows packed in dataset order
    // (eval_sample_packing defaults to true) into 3 batches of 2 bins, the incomplete last one
    // dropped; eval_loss = the mean of the batches' token means, at steps 0, 4, …, 24. 56 rows
    // train: 18 micro-batches an epoch, 27 steps.
    let name = "axolotl-lora-llama-packing-eval";
    let dir = golden_run_from_its_config(name);
    adapter_matches(name, dir.path());
    let want = evals(&repo().join("golden/runs").join(name).join("metrics.jsonl"));
    let got = evals(&dir.path().join("metrics.jsonl"));
    let steps = |v: &[(u64, f64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(steps(&got), steps(&want), "{name}: eval steps");
    assert!(want.len() >= 7, "{name}: golden has {} evals", want.len());
    let mut worst = 0.0f64;
    for ((step, g), (_, w)) in got.iter().zip(&want) {
        let rel = (g - w).abs() / w.abs();
        worst = worst.max(rel);
        assert!(
            rel <= 1e-4,
            "{name}: eval at step {step}: {g} vs golden {w} ({rel:.3e})"
        );
    }
    let loss: Vec<f64> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect();
    let loss_err = loss
        .iter()
        .zip(golden_losses(name))
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max);
    eprintln!("{name}: max rel. loss error {loss_err:.1e}, eval loss error {worst:.1e}");
}

#[test]
fn a_varlen_backend_packs_one_row_of_micro_batch_times_sequence_len() {
    // flash attention (what most upstream configs set) turns multipack_real_batches off: one
    // bin of ≤ micro_batch_size × sequence_len = 256 tokens per micro-batch, one row, padded
    // to a multiple of 128; the estimate counts those batches (len · mbs // (mbs · GA))
    let (fw, mut resolved) = read(&format!("golden/runs/{NAME}/config.yaml"));
    resolved.spec.model.attention = tunebridge::ir::Attention::FlashAttention2;
    let spec = &resolved.spec;
    let flavour = Flavour::from_framework(fw).unwrap();
    let tok_dir = engine::model::locate(&spec.model.tokenizer).unwrap();
    let tok = engine::data::Tokenizer::load(&tok_dir).unwrap();
    let samples = engine::data::build_samples(spec, flavour, &tok).unwrap();
    let mp = engine::data::multipack::Multipack::of(spec);
    assert_eq!(
        (mp.bins_per_batch, mp.capacity, mp.real_batches),
        (1, 256, false)
    );
    let (plan, rows) = engine::train::multipack_plan(
        spec,
        &samples,
        tok.pad_id(),
        0,
        engine::train::Shard::SINGLE,
    )
    .unwrap();
    for w in &plan.windows {
        for mb in &w.micro_batches {
            assert_eq!(mb.len(), 1, "one row a micro-batch");
            let row = &rows[mb[0]];
            assert!(row.doc_lens.iter().sum::<usize>() <= 256);
            assert_eq!(row.input_ids.len() % 128, 0);
        }
    }
    // every sample of epoch 0 but those of a dropped last bin is in exactly one row
    let first: Vec<usize> = plan
        .windows
        .iter()
        .filter(|w| w.epoch == 0)
        .flat_map(|w| w.micro_batches.iter().flatten().copied())
        .collect();
    let packed: usize = first.iter().map(|&i| rows[i].doc_lens.len()).sum();
    assert!(
        packed <= samples.len() && packed + 3 >= samples.len(),
        "{packed}"
    );
    let lengths: Vec<usize> = samples.iter().map(|s| s.input_ids.len()).collect();
    let len = engine::data::multipack::sampler_len(&mp, &lengths, 42);
    assert_eq!(plan.total_steps, ((len * 2 / 4).max(1) * 3) as u64);
}
