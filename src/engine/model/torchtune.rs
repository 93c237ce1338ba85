//! TorchTune's own module trees for Phi-3/Phi-4 and Gemma 2 (torchtune 0.6.1), as changes to
//! an HF checkpoint and its resolved config before the engine's decoder is built from them.
//!
//! TorchTune does not run transformers' modules: `FullModelHFCheckpointer` converts the HF
//! checkpoint to its own names and layout and its `models/<family>` builders make the tree.
//! Where that tree computes something else than transformers does, a TorchTune run follows
//! TorchTune:
//!
//! - Phi-3 / Phi-4 (`model_type: phi3`; `models/phi3/_convert_weights.py::phi3_hf_to_tune`):
//!   the fused `qkv_proj` is split into q, k, v rows (H·D, KV·D, KV·D) and `gate_up_proj`
//!   into w1 (gate, first half) and w3 (up), so LoRA sits on each part, as PEFT would on a
//!   Llama; `lora_phi3`'s `MultiHeadAttention` has no sliding window (Phi-3-mini's
//!   `sliding_window: 2047` is ignored) and `Phi3RotaryPositionalEmbeddings` rotates the whole
//!   head with plain RoPE (θ^(−2i/D)), head_dim = C / H. A checkpoint asking for LongRoPE or a
//!   partial rotary is refused rather than run as TorchTune would (on RoPE the checkpoint was
//!   not trained with).
//! - Gemma 2 (`models/gemma2`): `_GEMMA2_FROM_HF` maps `pre_feedforward_layernorm` to
//!   `mlp_scale` (applied after the MLP) and `post_feedforward_layernorm` to `mlp_norm`
//!   (before it), so TorchTune's layer runs x + pre_ff_norm(mlp(post_ff_norm(x))): the two
//!   norms' weights are swapped here. `Gemma2FinalNorm` soft-caps the final normed hidden
//!   states (c = `final_capping_value`) and the tied head's logits are not capped
//!   ([`super::gemma::Gemma::final_softcap_on_hidden`]). Its `Gemma2Attention` always caps the
//!   scores (the engine's eager kernel, `gemma::needs_eager`) and puts the window on even
//!   layers (`layer_idx % 2 == 0`), which `config.json`'s `layer_types` must say too. The
//!   q/k rows TorchTune permutes for its interleaved RoPE (`_permute`) give the same function
//!   as transformers' rotate-half RoPE on the unpermuted rows, so they stay unpermuted (and
//!   its PEFT export un-permutes its q/k `lora_b` rows, which equal the engine's).
//!
//! LoRA draws follow the builders' construction order (`lora::torchtune_replay`).

use super::llama::Config;
use crate::engine::error::{EngineError, Result, Unsupported};
use std::collections::HashMap;
use tch::Tensor;

/// What the engine does not run of TorchTune's tree for `family` (`run --check`): Phi-4, whose
/// model is Phi-3's tree (`phi4_14b` calls `phi3`) but whose `Phi4Tokenizer` is not the
/// model's tokenizer (`translators/torchtune/framing.toml` says how).
pub fn check(family: &str, flavour: crate::engine::flavour::Flavour) -> Option<Unsupported> {
    if flavour != crate::engine::flavour::Flavour::TorchTune {
        return None;
    }
    let f = crate::translate::families::by_name(family)?;
    (f.hf_model_type == "phi3")
        .then(|| crate::engine::data::format::check_torchtune_family(family).err())
        .flatten()
}

/// Change `cfg` and the checkpoint `tensors` (HF names) into what TorchTune's builders run.
pub fn adapt(cfg: &mut Config, tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    match cfg.model_type.as_str() {
        "phi3" => phi3(cfg, tensors),
        "gemma2" => gemma2(cfg, tensors),
        _ => Ok(()),
    }
}

/// The module names a LoRA `target_modules` entry stands for on the TorchTune tree: a Phi-3
/// spec names the fused HF modules (`qkv_proj`, `gate_up_proj`, as the TorchTune translator
/// writes `apply_lora_to_mlp` for Phi-3), which TorchTune splits.
pub fn lora_targets(cfg: &Config, targets: &[String]) -> Vec<String> {
    if cfg.model_type != "phi3" {
        return targets.to_vec();
    }
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        let parts: &[&str] = match t.as_str() {
            "qkv_proj" => &["q_proj", "k_proj", "v_proj"],
            "gate_up_proj" => &["gate_proj", "up_proj"],
            other => &[other],
        };
        for p in parts {
            if !out.iter().any(|o| o == p) {
                out.push((*p).to_string());
            }
        }
    }
    out
}

fn phi3(cfg: &mut Config, tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    let (c, h, kv) = (
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
    );
    let why = "TorchTune's Phi-3/Phi-4 builders (torchtune.models.phi3) apply plain RoPE over \
               whole heads of C / num_heads dimensions (Phi3RotaryPositionalEmbeddings)";
    if cfg.longrope.is_some() {
        return Err(EngineError::unsupported(
            "config.json rope_scaling",
            "longrope",
            format!("{why}, and would train this LongRoPE checkpoint without its scaling; use a 4k-context Phi-3 (no rope_scaling)"),
        ));
    }
    if cfg.head_dim != c / h || cfg.rotary_dim != cfg.head_dim {
        return Err(EngineError::unsupported(
            "config.json partial_rotary_factor / head_dim",
            format!("{} of {} rotary dimensions", cfg.rotary_dim, cfg.head_dim),
            format!(
                "{why}; this checkpoint rotates {} of a head of {} (C / H = {})",
                cfg.rotary_dim,
                cfg.head_dim,
                c / h
            ),
        ));
    }
    let d = cfg.head_dim;
    let (q, k) = (h * d, kv * d);
    let i = cfg.intermediate_size;
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        // phi3_hf_to_tune: torch.split(qkv, [q_dim, k_dim, v_dim]); gate_up.chunk(2)
        split(
            tensors,
            &format!("{p}.self_attn.qkv_proj.weight"),
            &[
                (&format!("{p}.self_attn.q_proj.weight"), 0, q),
                (&format!("{p}.self_attn.k_proj.weight"), q, k),
                (&format!("{p}.self_attn.v_proj.weight"), q + k, k),
            ],
        )?;
        split(
            tensors,
            &format!("{p}.mlp.gate_up_proj.weight"),
            &[
                (&format!("{p}.mlp.gate_proj.weight"), 0, i),
                (&format!("{p}.mlp.up_proj.weight"), i, i),
            ],
        )?;
    }
    cfg.fused_projections = false;
    cfg.sliding_window = None;
    Ok(())
}

/// Replace tensor `fused` by row blocks (name, first row, rows).
fn split(
    tensors: &mut HashMap<String, Tensor>,
    fused: &str,
    parts: &[(&str, i64, i64)],
) -> Result<()> {
    let t = tensors
        .remove(fused)
        .ok_or_else(|| EngineError::tensor(fused, "missing from the checkpoint"))?;
    let rows: i64 = parts.iter().map(|p| p.2).sum();
    if t.size().first() != Some(&rows) {
        return Err(EngineError::tensor(
            fused,
            format!(
                "has shape {:?}; TorchTune's split needs {rows} rows",
                t.size()
            ),
        ));
    }
    for (name, start, len) in parts {
        tensors.insert((*name).to_string(), t.narrow(0, *start, *len).contiguous());
    }
    Ok(())
}

fn gemma2(cfg: &mut Config, tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    let Some(g) = cfg.gemma.as_mut() else {
        return Ok(());
    };
    let even: Vec<bool> = (0..cfg.num_hidden_layers).map(|l| l % 2 == 0).collect();
    if g.local_layers != even {
        return Err(EngineError::unsupported(
            "config.json layer_types",
            format!("{:?}", g.local_layers),
            "TorchTune's lora_gemma2 gives the even layers (0, 2, …) the sliding window and the odd ones full attention",
        ));
    }
    g.final_softcap_on_hidden = true;
    for l in 0..cfg.num_hidden_layers {
        let pre = format!("model.layers.{l}.pre_feedforward_layernorm.weight");
        let post = format!("model.layers.{l}.post_feedforward_layernorm.weight");
        let (Some(a), Some(b)) = (tensors.remove(&pre), tensors.remove(&post)) else {
            return Err(EngineError::tensor(
                &pre,
                "missing (or its post_feedforward pair)",
            ));
        };
        tensors.insert(pre, b);
        tensors.insert(post, a);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi3_targets_name_the_split_modules() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/models/tiny-phi3/config.json");
        let raw: super::super::llama::RawConfig =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut cfg = raw.into_config().unwrap();
        let t: Vec<String> = ["q_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            lora_targets(&cfg, &t),
            [
                "q_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj"
            ]
        );
        let mut w = HashMap::new();
        w.insert(
            "model.layers.0.self_attn.qkv_proj.weight".to_string(),
            Tensor::arange(128 * 64, (tch::Kind::Float, tch::Device::Cpu)).view([128, 64]),
        );
        w.insert(
            "model.layers.0.mlp.gate_up_proj.weight".to_string(),
            Tensor::zeros([256, 64], (tch::Kind::Float, tch::Device::Cpu)),
        );
        cfg.num_hidden_layers = 1;
        adapt(&mut cfg, &mut w).unwrap();
        assert!(!cfg.fused_projections && cfg.sliding_window.is_none());
        assert_eq!(w["model.layers.0.self_attn.q_proj.weight"].size(), [64, 64]);
        assert_eq!(w["model.layers.0.self_attn.v_proj.weight"].size(), [32, 64]);
        // v starts at row q + k = 96
        let first = w["model.layers.0.self_attn.v_proj.weight"].double_value(&[0, 0]);
        assert_eq!(first, (96 * 64) as f64);
        assert_eq!(w["model.layers.0.mlp.up_proj.weight"].size(), [128, 64]);
    }
}
