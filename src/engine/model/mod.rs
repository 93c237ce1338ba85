//! Finding and loading a base model: a local Hugging Face folder, or a hub id resolved in
//! the local Hugging Face cache (never downloaded).
//!
//! A model folder holds `config.json`, `model.safetensors` (or shards plus
//! `model.safetensors.index.json`), `tokenizer.json` and `tokenizer_config.json`.

pub mod activation;
pub mod gemma;
pub mod llama;
pub mod mask;
pub mod phi3;
pub mod torchtune;
pub mod weights;

use super::error::{read_json, EngineError, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Kind};

pub use llama::{AttentionImpl, Config, LayerLinear, ModelForCausalLM};
pub use mask::DocLayout;
pub use weights::Weights;

/// Where a model name points to: `name` itself when it is a folder, else the snapshot of
/// `models--org--name` in the Hugging Face hub cache.
pub fn locate(name: &str) -> Result<PathBuf> {
    locate_in(name, &super::hub::cache_dirs())
}

fn locate_in(name: &str, hubs: &[PathBuf]) -> Result<PathBuf> {
    let direct = PathBuf::from(name);
    if direct.join("config.json").is_file() {
        return Ok(direct);
    }
    let mut looked = vec![direct.clone()];
    for hub in hubs {
        let repo = hub.join(format!("models--{}", name.replace('/', "--")));
        looked.push(repo.clone());
        if let Some(snap) = super::hub::snapshot(&repo, |p| p.join("config.json").is_file()) {
            return Ok(snap);
        }
    }
    Err(EngineError::ModelNotFound {
        name: name.to_string(),
        looked,
    })
}

/// Read and resolve `config.json`.
pub fn load_config(dir: &Path) -> Result<Config> {
    let raw: llama::RawConfig = read_json(&dir.join("config.json"))?;
    raw.into_config()
}

/// Load a model folder into a causal LM in `kind` on `device`.
pub fn load(
    dir: &Path,
    kind: Kind,
    device: Device,
    attention: AttentionImpl,
) -> Result<ModelForCausalLM> {
    load_as(dir, kind, device, attention, false)
}

/// [`load`], as TorchTune's builders would make the model when `torchtune` is set
/// ([`torchtune::adapt`]: Phi-3's split projections, Gemma 2's norms and final cap).
pub fn load_as(
    dir: &Path,
    kind: Kind,
    device: Device,
    attention: AttentionImpl,
    torchtune: bool,
) -> Result<ModelForCausalLM> {
    let mut config = load_config(dir)?;
    let mut tensors = super::io::read_model_weights(dir)?;
    if torchtune {
        torchtune::adapt(&mut config, &mut tensors)?;
    }
    let mut w = Weights::new(tensors, kind, device);
    let model = ModelForCausalLM::new(config, &mut w, attention)?;
    let left = w.leftover();
    if !left.is_empty() {
        return Err(EngineError::bad_file(
            dir,
            format!(
                "checkpoint tensors the model does not use: {}",
                left.join(", ")
            ),
        ));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    // By full path: import tracing reads `super` here as this file's parent.
    use crate::engine::model::*;

    #[test]
    fn hub_ids_resolve_in_the_cache_layout() {
        let hub = tempfile::tempdir().unwrap();
        let repo = hub.path().join("models--org--tiny");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        let hubs = vec![hub.path().join("missing"), hub.path().to_path_buf()];
        assert_eq!(locate_in("org/tiny", &hubs).unwrap(), snap);
    }

    #[test]
    fn a_missing_model_says_where_it_looked() {
        let hub = tempfile::tempdir().unwrap();
        let e = locate_in("org/absent", &[hub.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("model `org/absent` not found"), "{e}");
        assert!(e.contains("models--org--absent"), "{e}");
    }

    #[test]
    fn unsupported_architectures_are_named() {
        let raw: llama::RawConfig = serde_json::from_str(
            r#"{"model_type": "gpt2", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": 1}"#,
        )
        .unwrap();
        let e = raw.into_config().unwrap_err().to_string();
        assert!(e.contains("unsupported architecture `gpt2`"), "{e}");
    }

    #[test]
    fn config_reads_both_rope_spellings() {
        let v4: llama::RawConfig = serde_json::from_str(
            r#"{"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": 2, "rope_theta": 500000.0,
                "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                "tie_word_embeddings": true}"#,
        )
        .unwrap();
        let c = v4.into_config().unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert_eq!(c.llama3_scaling.as_ref().unwrap().factor, 32.0);
        assert!(c.tie_word_embeddings && !c.qkv_bias);
        let v5: llama::RawConfig = serde_json::from_str(
            r#"{"model_type": "qwen2", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}}"#,
        )
        .unwrap();
        let c = v5.into_config().unwrap();
        assert_eq!(c.rope_theta, 1e6);
        assert!(c.qkv_bias && !c.o_bias && c.llama3_scaling.is_none());
        assert_eq!((c.num_key_value_heads, c.head_dim), (1, 4));
    }

    // Phi-3 (`phi3.rs`) config resolution.

    fn phi3(extra: &str) -> crate::engine::error::Result<Config> {
        let raw: llama::RawConfig = serde_json::from_str(&format!(
            r#"{{"model_type": "phi3", "vocab_size": 8, "hidden_size": 64, "intermediate_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": 4, "max_position_embeddings": 131072
                {extra}}}"#
        ))
        .unwrap();
        raw.into_config()
    }

    #[test]
    fn longrope_reads_phi35_mini_and_derives_the_attention_factor() {
        // Phi-3.5-mini-instruct's layout (transformers 4 spelling, `rope_scaling`, type longrope):
        // factor = 131072 / 4096 = 32, attention factor √(1 + ln 32 / ln 4096).
        let f: Vec<String> = (0..8).map(|i| format!("{}.0", i + 1)).collect();
        let c = phi3(&format!(
            r#", "original_max_position_embeddings": 4096, "sliding_window": 262144,
               "rope_scaling": {{"type": "longrope", "short_factor": [{0}], "long_factor": [{0}]}}"#,
            f.join(", ")
        ))
        .unwrap();
        let lr = c.longrope.unwrap();
        assert_eq!(lr.original_max_position_embeddings, 4096);
        let want = (1.0 + 32f64.ln() / 4096f64.ln()).sqrt();
        assert_eq!(lr.attention_factor, want);
        assert!((want - 1.190_238_5).abs() < 1e-6, "{want}");
        assert!(c.fused_projections && !c.qkv_bias && c.rotary_dim == 16);
        assert_eq!(c.sliding_window, Some(262144));
    }

    #[test]
    fn partial_rotary_takes_the_top_level_factor_first() {
        let c = phi3(
            r#", "partial_rotary_factor": 0.75,
               "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}"#,
        )
        .unwrap();
        assert_eq!((c.head_dim, c.rotary_dim), (16, 12));
        let c =
            phi3(r#", "rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}"#)
                .unwrap();
        assert_eq!(c.rotary_dim, 8);
    }

    #[test]
    fn what_phi3_cannot_run_is_named() {
        let e = phi3(r#", "resid_pdrop": 0.1"#).unwrap_err().to_string();
        assert!(
            e.contains("resid_pdrop") && e.contains("residual dropout"),
            "{e}"
        );
        let e = phi3(r#", "rope_scaling": {"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("short_factor") && e.contains("one factor per rotary frequency"),
            "{e}"
        );
        let e = phi3(r#", "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`dynamic`") && e.contains("longrope"), "{e}");
    }

    // Gemma 2 / Gemma 3 text (`gemma.rs`) config resolution.

    fn gemma(model_type: &str, extra: &str) -> crate::engine::error::Result<Config> {
        let raw: llama::RawConfig = serde_json::from_str(&format!(
            r#"{{"model_type": "{model_type}", "vocab_size": 8, "hidden_size": 64,
                "intermediate_size": 8, "num_hidden_layers": 6, "num_attention_heads": 4,
                "head_dim": 16 {extra}}}"#
        ))
        .unwrap();
        raw.into_config()
    }

    #[test]
    fn gemma_defaults_follow_the_config_classes() {
        // Gemma2Config: every other layer local from layer 0, caps 50/30, scalar 256, window 4096.
        let c = gemma("gemma2", "").unwrap();
        let g = c.gemma.unwrap();
        assert_eq!(g.local_layers, [true, false, true, false, true, false]);
        assert_eq!((g.attn_softcap, g.final_softcap), (Some(50.0), Some(30.0)));
        assert_eq!((g.query_pre_attn_scalar, g.sliding_window), (256.0, 4096));
        assert_eq!((c.rope_theta, g.local_rope_theta), (10_000.0, None));
        assert_eq!(c.hidden_act, llama::Activation::GeluTanh);
        assert!(!c.qk_norm && c.sliding_window.is_none());
        // Gemma3TextConfig: five local layers then a global one, no caps, θ 1e6 / 1e4, q/k norm.
        let c = gemma("gemma3_text", "").unwrap();
        let g = c.gemma.unwrap();
        assert_eq!(g.local_layers, [true, true, true, true, true, false]);
        assert_eq!((g.attn_softcap, g.final_softcap), (None, None));
        assert_eq!((c.rope_theta, g.local_rope_theta), (1e6, Some(1e4)));
        assert!(c.qk_norm && g.global_rope_factor.is_none());
    }

    #[test]
    fn gemma_null_caps_are_off_and_missing_ones_default() {
        let c = gemma(
            "gemma2",
            r#", "attn_logit_softcapping": null, "final_logit_softcapping": 5.0"#,
        )
        .unwrap();
        let g = c.gemma.unwrap();
        assert_eq!((g.attn_softcap, g.final_softcap), (None, Some(5.0)));
        // Gemma3Attention passes no cap whatever the config says; the final one is honoured.
        let c = gemma(
            "gemma3_text",
            r#", "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0"#,
        )
        .unwrap();
        let g = c.gemma.unwrap();
        assert_eq!((g.attn_softcap, g.final_softcap), (None, Some(30.0)));
    }

    #[test]
    fn gemma3_reads_both_rope_spellings() {
        let v5 = gemma(
            "gemma3_text",
            r#", "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0,
                "rope_theta": 1000000.0}, "sliding_attention": {"rope_type": "default",
                "rope_theta": 10000.0}}, "sliding_window_pattern": 3"#,
        )
        .unwrap();
        let v4 = gemma(
            "gemma3_text",
            r#", "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
               "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "sliding_window_pattern": 3"#,
        )
        .unwrap();
        assert_eq!(v4, v5);
        let g = v5.gemma.unwrap();
        assert_eq!(g.global_rope_factor, Some(8.0));
        assert_eq!(g.local_layers, [true, true, false, true, true, false]);
    }

    #[test]
    fn what_gemma_cannot_run_is_named() {
        let e = gemma("gemma2", r#", "use_bidirectional_attention": true"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("use_bidirectional_attention"), "{e}");
        let e = gemma("gemma2", r#", "hidden_activation": "gelu""#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gelu_pytorch_tanh"), "{e}");
        let e = gemma("gemma2", r#", "layer_types": ["sliding_attention"]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("one per layer (6)"), "{e}");
        let e = gemma(
            "gemma2",
            r#", "rope_scaling": {"rope_type": "linear", "factor": 2.0}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`linear`") && e.contains("Gemma 2"), "{e}");
        let e = gemma("gemma3", "").unwrap_err().to_string();
        assert!(
            e.contains("multimodal Gemma 3") && e.contains("gemma3_text"),
            "{e}"
        );
    }

    #[test]
    fn gemma2_soft_cap_takes_the_eager_kernel_where_the_framework_caps() {
        use crate::engine::flavour::Flavour;
        use crate::ir::Attention as A;
        let c = gemma("gemma2", "").unwrap();
        let k = |a, f| gemma::needs_eager(c.gemma.as_ref(), a, f);
        assert!(!k(A::Sdpa, Flavour::Axolotl));
        assert!(k(A::FlashAttention2, Flavour::Axolotl));
        assert!(k(A::Eager, Flavour::Axolotl));
        assert!(k(A::Sdpa, Flavour::Unsloth));
        // Gemma 3 has no attention cap: the kernel stays.
        let c3 = gemma("gemma3_text", "").unwrap();
        assert!(!gemma::needs_eager(
            c3.gemma.as_ref(),
            A::FlashAttention2,
            Flavour::Unsloth
        ));
    }
}
