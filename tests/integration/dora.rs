//! DoRA against a real TorchTune 0.6.1 run (`golden/runs/torchtune-dora-llama`:
//! `lora_llama3(use_dora=True)` on the tiny Llama, r8 α16 on q, v, o and the MLP, with
//! TorchTune's Llama-3 tokenizer): the samples, the loss at every step and the final A, B and
//! magnitude of every adapted layer. The DoRA algebra
//! itself (closed form, detached-norm gradients) is unit-tested in `src/engine/dora/tests.rs`.

use super::harness::repo;
use super::run::{
    assert_recorded_samples, golden_losses, golden_run_from_its_config, rel_frobenius,
    reproduce_golden, tensors,
};
use std::collections::HashMap;
use tch::Tensor;

/// TorchTune's LLAMA3 checkpointer permutes q/k rows on load (HF half-rotation → interleaved
/// RoPE layout); undo it on a row-indexed tensor, (out, …) with out = heads · head_dim: the
/// `_permute_lora_matrix` of `tune_to_peft_adapter_weights`, applied to 1-D magnitudes too.
fn to_hf_rows(t: &Tensor, heads: i64, head_dim: i64) -> Tensor {
    let rest: Vec<i64> = t.size()[1..].to_vec();
    let mut shape = vec![heads, head_dim / 2, 2];
    shape.extend(&rest);
    let mut back = vec![heads * head_dim];
    back.extend(&rest);
    t.view(shape.as_slice())
        .transpose(1, 2)
        .reshape(back.as_slice())
}

/// The golden's TorchTune-native adapter (`layers.0.attn.q_proj.lora_a.weight`,
/// `….magnitude`) under PEFT names, rows in HF order.
fn native_as_peft(name: &str) -> HashMap<String, Tensor> {
    let native = tensors(
        &repo()
            .join("golden/runs")
            .join(name)
            .join("adapter_model_torchtune.safetensors"),
    );
    let (heads, kv_heads, head_dim) = (4, 2, 16);
    native
        .into_iter()
        .map(|(k, v)| {
            let v = if k.contains(".q_proj.") && !k.contains(".lora_a.") {
                to_hf_rows(&v, heads, head_dim)
            } else if k.contains(".k_proj.") && !k.contains(".lora_a.") {
                to_hf_rows(&v, kv_heads, head_dim)
            } else {
                v
            };
            let k = k
                .replace(".attn.output_proj.", ".self_attn.o_proj.")
                .replace(".attn.", ".self_attn.")
                .replace(".mlp.w1.", ".mlp.gate_proj.")
                .replace(".mlp.w2.", ".mlp.down_proj.")
                .replace(".mlp.w3.", ".mlp.up_proj.")
                .replace(".lora_a.", ".lora_A.")
                .replace(".lora_b.", ".lora_B.")
                .replace(".magnitude", ".lora_magnitude_vector");
            (format!("base_model.model.model.{k}"), v)
        })
        .collect()
}

/// Run a TorchTune golden from its config (the loss at every step within 1e-4, asserted by
/// the run) and check every adapter tensor against its native file within 1e-3; prints the
/// figures docs/ENGINE.md quotes (`-- --nocapture`). Returns the run folder and our adapter.
fn reproduce_torchtune(name: &str) -> (tempfile::TempDir, HashMap<String, Tensor>) {
    let dir = golden_run_from_its_config(name);
    let got: Vec<f64> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect();
    let loss_err = got
        .iter()
        .zip(golden_losses(name))
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max);
    let ours = tensors(&dir.path().join("adapter_model.safetensors"));
    let want = native_as_peft(name);
    assert_eq!(
        want.len(),
        2 * 6 * 3,
        "2 layers x 6 modules x (A, B, magnitude)"
    );
    assert_eq!(ours.len(), want.len(), "{name}: tensor count");
    let mut worst = (0.0f64, String::new());
    for (k, w) in &want {
        let g = ours
            .get(k)
            .unwrap_or_else(|| panic!("{name}: we did not write `{k}`"));
        let rel = rel_frobenius(g, w);
        if rel > worst.0 {
            worst = (rel, k.clone());
        }
    }
    eprintln!(
        "{name}: {} steps, max rel. loss error {loss_err:.1e}, max rel. adapter error {:.1e} (`{}`)",
        got.len(),
        worst.0,
        worst.1
    );
    assert!(
        worst.0 <= 1e-3,
        "{name}: `{}` off by {:.3e} relative",
        worst.1,
        worst.0
    );
    (dir, ours)
}

#[test]
fn torchtune_dora_llama_matches_golden() {
    // LoRA init replayed from seed 42 (DoRALinear draws as LoRALinear does); the magnitude
    // starts at ‖W‖ per row of the loaded base; the norm in the forward is detached.
    let name = "torchtune-dora-llama";
    let (dir, ours) = reproduce_torchtune(name);
    // the magnitude trained: it left its initial ‖W‖
    let init = tensors(
        &repo()
            .join("golden/runs")
            .join(name)
            .join("init_adapter/adapter_model_torchtune.safetensors"),
    );
    let m0 = &init["layers.1.mlp.w2.magnitude"];
    let m = &ours["base_model.model.model.layers.1.mlp.down_proj.lora_magnitude_vector"];
    assert!(rel_frobenius(m, m0) > 1e-3, "the magnitude did not train");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["use_dora"], serde_json::json!(true));
}

#[test]
fn torchtune_llama3_samples_match_the_recipe() {
    // The golden feeds TorchTune's own Llama-3 tokenizer (the tiny BPE as tiktoken) and
    // framing: header ids, `<|eot_id|>`, and the final `<|end_of_text|>` masked by truncate.
    assert_recorded_samples("torchtune-dora-llama");
}

#[test]
fn axolotl_dora_llama_matches_golden() {
    // PEFT 0.20's DoRA through Axolotl (`peft_use_dora`): the pinned adapter carries the
    // initial magnitude; the base output less its bias is rescaled; the norm is detached.
    let name = "axolotl-dora-llama";
    let (loss_err, weight_err, ours, dir) = reproduce_golden(name);
    assert!(
        loss_err <= 1e-4 && weight_err <= 1e-3,
        "{loss_err:.3e} {weight_err:.3e}"
    );
    assert_eq!(
        ours.len(),
        2 * 7 * 3,
        "2 layers x 7 modules x (A, B, magnitude)"
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["use_dora"], serde_json::json!(true));
}

#[test]
fn dora_with_dropout_matches_both_frameworks() {
    // LoRA dropout 0.1: TorchTune drops the input of the LoRA path only (the base output stays
    // undropped and is rescaled); PEFT recomputes the rescaled base product on the dropped
    // input. Both draw their masks after the data loader's per-epoch seed draw.
    let name = "axolotl-dora-llama-dropout";
    let (loss_err, weight_err, _, _) = reproduce_golden(name);
    assert!(
        loss_err <= 1e-4 && weight_err <= 1e-3,
        "{loss_err:.3e} {weight_err:.3e}"
    );
    reproduce_torchtune("torchtune-dora-llama-dropout");
}

#[test]
fn a_resumed_dora_run_with_dropout_equals_the_uninterrupted_one() {
    use super::run::{read, resume_equals_uninterrupted, ENGINE};
    let _lock = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    // The magnitude comes back from the checkpoint's adapter with its optimizer state; the
    // skipped dropout masks and data-loader draws are replayed: across an epoch boundary
    // (TorchTune, 16 steps an epoch) ...
    let (fw, resolved) = read("golden/runs/torchtune-dora-llama-dropout/config.yaml");
    resume_equals_uninterrupted(&resolved, fw, 20);
    // ... and across evaluations (HF: eval_on_start, every 4 steps; 14 steps an epoch).
    let (fw, mut resolved) = read("golden/runs/axolotl-lora-llama-eval/config.yaml");
    resolved.spec.adapter.use_dora = true;
    resolved.spec.adapter.dropout = 0.1;
    resolved.spec.training.max_steps = 20;
    resume_equals_uninterrupted(&resolved, fw, 17);
}

#[test]
fn our_dora_adapter_from_a_torchtune_run_loads_in_peft() {
    // Where TorchTune's own export fails (no `use_dora`, q magnitudes in its row order), ours
    // is a PEFT DoRA adapter: PEFT's logits with it equal the engine's.
    use super::run::{options, read, reference_python, train, ENGINE};
    use tunebridge::engine;
    let Some(python) = reference_python() else {
        eprintln!("skipped: set TUNEBRIDGE_REF_PYTHON to a Python with transformers + peft");
        return;
    };
    let _lock = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let (fw, mut resolved) = read("golden/runs/torchtune-dora-llama/config.yaml");
    resolved.spec.training.max_steps = 6;
    let dir = tempfile::tempdir().unwrap();
    train(&resolved, &options(fw, dir.path()));
    let mut model = engine::model::load(
        &repo().join("fixtures/models/tiny-llama"),
        tch::Kind::Float,
        tch::Device::Cpu,
        engine::model::AttentionImpl::Eager,
    )
    .unwrap();
    let spec = engine::lora::LoraSpec {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        use_rslora: false,
        target_modules: resolved.spec.adapter.target_modules.clone(),
        kind: tch::Kind::Float,
        dora: Some(engine::dora::Style::Peft),
    };
    let init = engine::lora::Init::Pinned(dir.path().to_path_buf());
    engine::lora::attach(&mut model, &spec, &init).unwrap();
    let ids: Vec<i64> = vec![506, 366, 265, 280, 354, 285, 370, 256, 368];
    let input = Tensor::from_slice(&ids).view([1, -1]);
    let ours = tch::no_grad(|| model.forward(&input, None, false));
    let script = format!(
        "import json, torch\nfrom transformers import AutoModelForCausalLM\nfrom peft import PeftModel\n\
         m = AutoModelForCausalLM.from_pretrained('fixtures/models/tiny-llama', dtype=torch.float32, attn_implementation='eager')\n\
         m = PeftModel.from_pretrained(m, {:?})\n\
         assert m.peft_config['default'].use_dora\n\
         with torch.no_grad():\n    print(json.dumps(m(input_ids=torch.tensor([{:?}])).logits.flatten().tolist()))\n",
        dir.path().display().to_string(),
        ids
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .current_dir(repo())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let peft: Vec<f32> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let peft = Tensor::from_slice(&peft).view_as(&ours);
    let err = (&ours - &peft).abs().max().double_value(&[]);
    eprintln!("PEFT vs engine logits with our DoRA adapter: max abs diff {err:.1e}");
    assert!(
        err < 1e-5,
        "PEFT's logits with our adapter differ by {err:.3e}"
    );
    // and the adapter changed the model: the base logits are elsewhere
    let base = engine::model::load(
        &repo().join("fixtures/models/tiny-llama"),
        tch::Kind::Float,
        tch::Device::Cpu,
        engine::model::AttentionImpl::Eager,
    )
    .unwrap();
    let plain = tch::no_grad(|| base.forward(&input, None, false));
    assert!((&ours - &plain).abs().max().double_value(&[]) > 1e-4);
}
