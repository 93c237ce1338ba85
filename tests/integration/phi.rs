//! Phi-3 / Phi-3.5 / Phi-4 (`model_type: phi3`): LoRA on the fused `qkv_proj` and
//! `gate_up_proj` against a real Axolotl 0.19 run (`golden/runs/axolotl-lora-phi3`). The
//! forward pass (fused projections, partial rotary, sliding window, LongRoPE) is pinned against
//! transformers in `run.rs::every_family_forward_matches_transformers`.

use super::harness::repo;
use super::run::{golden_losses, options, read, reproduce_golden, train, ENGINE};
use tch::Tensor;
use tunebridge::engine;
use tunebridge::ir::{BaseWeights, Method};

#[test]
fn axolotl_lora_phi3_matches_golden() {
    // lora_target_linear on a Phi-3 model: PEFT wraps qkv_proj, o_proj, gate_up_proj and
    // down_proj whole (B of qkv_proj is (H·D + 2·KV·D, R) = (128, 8)); pinned initial adapter.
    let name = "axolotl-lora-phi3";
    let (_, _, ours, dir) = reproduce_golden(name);

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

#[test]
fn qlora_quantises_the_fused_modules_whole() {
    // QLoRA on tiny-phi3: qkv_proj and gate_up_proj become one NF4 tensor each, as
    // bitsandbytes' Linear4bit quantises the fused nn.Linear. The run equals LoRA over a
    // checkpoint holding those weights quantised then dequantised, step for step.
    use engine::quant::Nf4Tensor;
    let _lock = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let (fw, mut resolved) = read("golden/runs/axolotl-lora-phi3/config.yaml");
    resolved.spec.training.max_steps = 6;
    let mut qlora = resolved.clone();
    qlora.spec.adapter.method = Method::Qlora;
    qlora.spec.quantization.base_weights = BaseWeights::Nf4;
    qlora.spec.quantization.double_quant = true;
    qlora.spec.quantization.block_size = 64;
    let qdir = tempfile::tempdir().unwrap();
    let q = train(&qlora, &options(fw, qdir.path()));
    let model_dir = tempfile::tempdir().unwrap();
    let src = repo().join("fixtures/models/tiny-phi3");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), model_dir.path().join(e.file_name())).unwrap();
    }
    let weights = engine::io::read_safetensors(&src.join("model.safetensors")).unwrap();
    let mut fused = 0;
    let requantized: Vec<(String, Tensor)> = weights
        .into_iter()
        .map(|(k, t)| {
            if k.ends_with("qkv_proj.weight") || k.ends_with("gate_up_proj.weight") {
                fused += 1;
            }
            let linear = k.starts_with("model.layers.") && k.ends_with("_proj.weight");
            let t = if linear {
                Nf4Tensor::quantize(&t, true).unwrap().dequantize()
            } else {
                t
            };
            (k, t)
        })
        .collect();
    assert_eq!(fused, 4, "2 layers x (qkv_proj, gate_up_proj)");
    engine::io::write_safetensors(&model_dir.path().join("model.safetensors"), &requantized)
        .unwrap();
    resolved.spec.model.base = model_dir.path().display().to_string();
    resolved.spec.model.tokenizer = String::new();
    let ldir = tempfile::tempdir().unwrap();
    let l = train(&resolved, &options(fw, ldir.path()));
    assert_eq!(
        q.losses, l.losses,
        "QLoRA vs LoRA over the dequantized weights"
    );
    assert_ne!(
        q.losses[0],
        golden_losses("axolotl-lora-phi3")[0],
        "NF4 is not a no-op"
    );
}

#[test]
fn torchtune_phi3_runs_and_phi4_is_refused_for_its_tokenizer() {
    // TorchTune's Phi-3 tree runs (tests/integration/torchtune_families.rs); Phi-4 is the same
    // tree but its tokenizer is not the model's, which is refused once, whatever the dataset.
    let check = |config: &str| {
        let (fw, resolved) = read(config);
        let flavour = engine::Flavour::from_framework(fw).unwrap();
        engine::support::check(
            &resolved.spec,
            flavour,
            engine::support::Architecture::FromFamily,
        )
    };
    let phi3 = check("fixtures/upstream/torchtune/phi3__mini_lora.yaml");
    assert!(phi3.is_empty(), "{phi3:?}");
    let phi4 = check("fixtures/upstream/torchtune/phi4__14B_lora_single_device.yaml");
    assert_eq!(phi4.len(), 1, "{phi4:?}");
    assert!(
        phi4[0].field == "model.family" && phi4[0].reason.contains("Phi4Tokenizer"),
        "{phi4:?}"
    );
    // and an Axolotl Phi-3 config is judged on its other features only
    let (fw, resolved) = read("golden/runs/axolotl-lora-phi3/config.yaml");
    let found = engine::support::check(
        &resolved.spec,
        engine::Flavour::from_framework(fw).unwrap(),
        engine::support::Architecture::FromFamily,
    );
    assert!(found.is_empty(), "{found:?}");
}
