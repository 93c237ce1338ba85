use super::*;

#[test]
fn peft_names() {
    let c = canonical(
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
        WeightOrigin::Peft,
    );
    assert_eq!(
        c,
        Canon {
            module: "model.layers.0.self_attn.q_proj".into(),
            part: Part::LoraA
        }
    );
    let c = canonical(
        "base_model.model.model.layers.0.mlp.up_proj.lora_B.default.weight",
        WeightOrigin::Peft,
    );
    assert_eq!(c.part, Part::LoraB);
    assert_eq!(c.module, "model.layers.0.mlp.up_proj");
    let c = canonical("model.layers.1.self_attn.q_proj.weight", WeightOrigin::Peft);
    assert_eq!(c.part, Part::Param("weight".into()));
}

#[test]
fn torchtune_names_map_to_hf() {
    for (tt, hf, part) in [
        (
            "layers.3.attn.q_proj.lora_a.weight",
            "model.layers.3.self_attn.q_proj",
            Part::LoraA,
        ),
        (
            "layers.3.attn.output_proj.lora_b.weight",
            "model.layers.3.self_attn.o_proj",
            Part::LoraB,
        ),
        (
            "layers.3.mlp.w1.lora_b.weight",
            "model.layers.3.mlp.gate_proj",
            Part::LoraB,
        ),
        (
            "layers.3.mlp.w2.lora_a.weight",
            "model.layers.3.mlp.down_proj",
            Part::LoraA,
        ),
        (
            "layers.3.mlp.w3.lora_a.weight",
            "model.layers.3.mlp.up_proj",
            Part::LoraA,
        ),
        ("output.lora_a.weight", "lm_head", Part::LoraA),
        (
            "layers.0.attn.q_proj.magnitude",
            "model.layers.0.self_attn.q_proj",
            Part::Magnitude,
        ),
        (
            "layers.0.sa_norm.scale",
            "model.layers.0.input_layernorm",
            Part::Param("weight".into()),
        ),
        (
            "tok_embeddings.weight",
            "model.embed_tokens",
            Part::Param("weight".into()),
        ),
    ] {
        assert_eq!(
            canonical(tt, WeightOrigin::TorchtuneNative),
            Canon {
                module: hf.into(),
                part
            },
            "{tt}"
        );
    }
}

#[test]
fn permutation_round_trips_and_matches_torchtune() {
    // 2 heads, head_dim 4, 1 column: TorchTune rows [h0: a0 b0 a1 b1] → HF [a0 a1 b0 b1].
    let tune = vec![0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0];
    let hf = permute_rows(&tune, 8, 1, 2, 4, QkFix::TuneToHf).unwrap();
    assert_eq!(hf, vec![0.0, 2.0, 1.0, 3.0, 10.0, 12.0, 11.0, 13.0]);
    assert_eq!(
        permute_rows(&hf, 8, 1, 2, 4, QkFix::HfToTune).unwrap(),
        tune
    );
    assert!(permute_rows(&tune, 8, 1, 3, 4, QkFix::TuneToHf).is_none());
}
