//! Phi-3 / Phi-3.5 / Phi-4 (`model_type: phi3`): LoRA on the fused `qkv_proj` and
//! `gate_up_proj` against a real Axolotl 0.19 run (`golden/runs/axolotl-lora-phi3`). The
//! forward pass (fused projections, partial rotary, sliding window, LongRoPE) is pinned against
//! transformers in `run.rs::every_family_forward_matches_transformers`.

use super::harness::repo;
use super::run::{
    adapter_matches, golden_losses, golden_run_from_its_config, rel_frobenius, tensors,
};

#[test]
fn axolotl_lora_phi3_matches_golden() {
    // lora_target_linear on a Phi-3 model: PEFT wraps qkv_proj, o_proj, gate_up_proj and
    // down_proj whole (B of qkv_proj is (H·D + 2·KV·D, R) = (128, 8)); pinned initial adapter.
    let name = "axolotl-lora-phi3";
    let dir = golden_run_from_its_config(name);
    adapter_matches(name, dir.path());

    // The figures docs/ENGINE.md quotes (`-- --nocapture` prints them).
    let got: Vec<f64> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect();
    let want = golden_losses(name);
    let loss_err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max);
    let ours = tensors(&dir.path().join("adapter_model.safetensors"));
    let theirs = tensors(
        &repo()
            .join("golden/runs")
            .join(name)
            .join("adapter_model.safetensors"),
    );
    let weight_err = theirs
        .iter()
        .map(|(k, w)| rel_frobenius(&ours[k], w))
        .fold(0.0, f64::max);
    eprintln!(
        "{name}: max rel. loss error {loss_err:.1e}, max rel. adapter error {weight_err:.1e}"
    );

    // PEFT's names for the fused modules, and the fused shapes.
    let qkv = "base_model.model.model.layers.0.self_attn.qkv_proj.lora_B.weight";
    assert_eq!(ours[qkv].size(), [128, 8]);
    let gate_up = "base_model.model.model.layers.1.mlp.gate_up_proj.lora_B.weight";
    assert_eq!(ours[gate_up].size(), [256, 8]);
    assert_eq!(ours.len(), 2 * 4 * 2, "2 layers x 4 modules x (A, B)");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["down_proj", "gate_up_proj", "o_proj", "qkv_proj"])
    );
}
