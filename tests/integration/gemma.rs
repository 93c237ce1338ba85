//! Gemma 2 (`model_type: gemma2`) and Gemma 3 text (`gemma3_text`): LoRA against real Axolotl
//! 0.19 runs (`golden/runs/axolotl-lora-gemma2`, `-gemma3`). The forward pass (√C embeddings,
//! (1 + w) norms, sandwich layers, GeGLU, soft-capping, local/global layers and their RoPE) is
//! pinned against transformers in `run.rs::every_family_forward_matches_transformers`.

use super::run::{read, reproduce_golden};
use tunebridge::engine;

#[test]
fn axolotl_lora_gemma2_matches_golden() {
    // Eager attention, so the attention soft-cap (50) is on, as is the final one (30); layer 0
    // local with a window of 8 tokens, shorter than every Alpaca sample; BOS added by the
    // tokenizer; pinned PEFT init (seed 42) on all seven linears of both layers.
    let (_, _, ours, _dir) = reproduce_golden("axolotl-lora-gemma2");
    assert_eq!(ours.len(), 2 * 7 * 2, "2 layers x 7 modules x (A, B)");
}

#[test]
fn axolotl_lora_gemma3_matches_golden() {
    // Gemma 3 text: q/k norm, RoPE θ 1e6 on the global layer and 1e4 on the local one.
    let (_, _, ours, _dir) = reproduce_golden("axolotl-lora-gemma3");
    assert_eq!(ours.len(), 2 * 7 * 2, "2 layers x 7 modules x (A, B)");
}

#[test]
fn upstream_gemma_examples_are_read_as_their_families() {
    // Axolotl's and Unsloth's Gemma 3 examples name gemma-3 models: family gemma3, whose
    // text-only models the engine runs; the 4B notebook is multimodal and refused by name.
    for (config, family) in [
        ("fixtures/upstream/axolotl/gemma2__qlora.yml", "gemma2"),
        (
            "fixtures/upstream/axolotl/gemma3__gemma-3-1b-qlora.yml",
            "gemma3",
        ),
        ("fixtures/upstream/unsloth/Gemma3_(270M).py", "gemma3"),
        ("fixtures/upstream/unsloth/Gemma3_(4B).py", "gemma3"),
        ("fixtures/upstream/unsloth/Gemma2_(2B)-Alpaca.py", "gemma2"),
    ] {
        let (fw, resolved) = read(config);
        assert_eq!(resolved.spec.model.family, family, "{config}");
        let flavour = engine::Flavour::from_framework(fw).unwrap();
        let found = engine::support::check(
            &resolved.spec,
            flavour,
            engine::support::Architecture::FromFamily,
        );
        let on_family: Vec<String> = found
            .iter()
            .filter(|u| u.field == "model.family" || u.field == "model.base")
            .map(|u| u.to_string())
            .collect();
        if config.contains("(4B)") {
            assert!(
                on_family.iter().any(|u| u.contains("multimodal")),
                "{config}: {on_family:?}"
            );
        } else {
            assert!(on_family.is_empty(), "{config}: {on_family:?}");
        }
    }
}
