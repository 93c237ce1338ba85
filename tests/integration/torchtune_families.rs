//! TorchTune's own Phi-3 and Gemma 2 module trees (`src/engine/model/torchtune.rs`) against
//! real TorchTune 0.6.1 runs: `golden/runs/torchtune-lora-phi3` (the checkpoint's fused
//! qkv_proj / gate_up_proj split into q/k/v and w1/w3, LoRA on the parts, no sliding window,
//! Phi3MiniTokenizer framing) and `golden/runs/torchtune-lora-gemma2` (its swapped
//! feed-forward norms, the final soft-cap on the hidden states, the attention soft-cap,
//! GemmaTokenizer framing, its LoRA draw order).

use super::harness::repo;
use super::run::{
    adapter_matches_torchtune_native, assert_recorded_samples, golden_losses,
    golden_run_from_its_config, rel_frobenius, reproduce_golden, tensors,
};

/// (max relative loss error, max relative adapter error against the TorchTune-native file).
fn figures(name: &str, dir: &std::path::Path) -> (f64, f64) {
    let got: Vec<f64> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect();
    let want = golden_losses(name);
    let loss = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max);
    let ours = tensors(&dir.join("adapter_model.safetensors"));
    let native = tensors(
        &repo()
            .join("golden/runs")
            .join(name)
            .join("adapter_model_torchtune.safetensors"),
    );
    let rename = |k: &str| {
        let k = k
            .replace(".attn.output_proj.", ".self_attn.o_proj.")
            .replace(".attn.", ".self_attn.")
            .replace(".mlp.w1.", ".mlp.gate_proj.")
            .replace(".mlp.w2.", ".mlp.down_proj.")
            .replace(".mlp.w3.", ".mlp.up_proj.")
            .replace(".lora_a.", ".lora_A.")
            .replace(".lora_b.", ".lora_B.");
        format!("base_model.model.model.{k}")
    };
    let adapter = native
        .iter()
        .map(|(k, w)| rel_frobenius(&ours[&rename(k)], w))
        .fold(0.0, f64::max);
    eprintln!("{name}: max rel. loss error {loss:.1e}, max rel. adapter error {adapter:.1e}");
    (loss, adapter)
}

#[test]
fn torchtune_phi3_samples_match_the_recipe() {
    // Phi3MiniTokenizer: BOS once, <|user|> "\n" … <|end|> "\n", no EOS (add_eos=False)
    assert_recorded_samples("torchtune-lora-phi3");
}

#[test]
fn torchtune_lora_phi3_matches_golden() {
    // TorchTune saves no PEFT adapter for Phi (adapter_model.pt only): the native file is the
    // truth, its q/k/v and w1/w3 pairs named as the engine's split modules.
    let name = "torchtune-lora-phi3";
    let dir = golden_run_from_its_config(name);
    adapter_matches_torchtune_native(name, dir.path());
    let ours = tensors(&dir.path().join("adapter_model.safetensors"));
    let k = "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight";
    assert_eq!(ours[k].size(), [32, 8], "KV·D rows of the split k_proj");
    let up = "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight";
    assert_eq!(ours[up].size(), [8, 64]);
    assert_eq!(ours.len(), 2 * 7 * 2, "2 layers x 7 modules x (A, B)");
    let (loss, adapter) = figures(name, dir.path());
    assert!(loss <= 1e-4 && adapter <= 1e-3);
}

#[test]
fn torchtune_gemma2_samples_match_the_recipe() {
    assert_recorded_samples("torchtune-lora-gemma2");
}

#[test]
fn torchtune_lora_gemma2_matches_golden() {
    // TorchTune's PEFT export un-permutes the q/k lora_B rows of its interleaved-RoPE layout:
    // it equals the engine's adapter (rotate-half RoPE on the checkpoint's rows); the native
    // file matches on every other pair.
    let name = "torchtune-lora-gemma2";
    let (loss, adapter, ours, _dir) = reproduce_golden(name);
    assert!(loss <= 1e-4 && adapter <= 1e-3);
    assert_eq!(ours.len(), 2 * 7 * 2, "2 layers x 7 modules x (A, B)");
}
