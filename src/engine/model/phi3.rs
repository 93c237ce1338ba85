//! Phi-3, Phi-3.5 and Phi-4 (`model_type: phi3`): what the Llama decoder of `llama.rs` takes
//! on to run them.
//!
//! Follows transformers 5.16.1 `models/phi3/modeling_phi3.py` (`Phi3Attention`, `Phi3MLP`,
//! `Phi3DecoderLayer`, `Phi3RotaryEmbedding` = `PhiRotaryEmbedding`) and
//! `modeling_rope_utils.py` (`_compute_longrope_parameters`, `dynamic_rope_update`):
//! - one fused `qkv_proj` (C → H·D + 2·KV·D), sliced into q, k, v rows in that order;
//! - one fused `gate_up_proj` (C → 2·I), chunked into gate then up: `down(up · silu(gate))`;
//! - RoPE on the first `partial_rotary_factor · D` dimensions of each head only (Phi-4-mini 0.75),
//!   the rest passed through;
//! - `longrope` scaling (Phi-3/3.5 128k): inverse frequencies divided per dimension by
//!   `short_factor`, or by `long_factor` once a batch's positions exceed
//!   `original_max_position_embeddings`, and cos/sin multiplied by an attention factor;
//! - a sliding window whenever `sliding_window` is set (Phi-3-mini 2047), no biases anywhere.
//!
//! PEFT wraps the fused modules whole, so a LoRA pair on `qkv_proj` has B of shape
//! (H·D + 2·KV·D, R): the names and shapes a PEFT adapter for these models has.
//! Residual dropout (`resid_pdrop` > 0) is refused: its RNG draws are not reproduced.
//! TorchTune runs these checkpoints split (q/k/v, w1/w3) with plain RoPE and no window:
//! `torchtune.rs`.

use super::activation::Activation;
use crate::engine::error::{EngineError, Result};
use crate::engine::layers::{Dropout, Linear};
use serde::Deserialize;
use tch::{Kind, Tensor};

/// The top-level `config.json` keys only Phi-3 reads (flattened into `llama::RawConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Phi3Keys {
    pub partial_rotary_factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
    pub resid_pdrop: Option<f64>,
}

/// The `rope_scaling` / `rope_parameters` keys only Phi-3 reads (flattened into
/// `llama::RopeParameters`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Phi3RopeKeys {
    pub partial_rotary_factor: Option<f64>,
    pub short_factor: Option<Vec<f64>>,
    pub long_factor: Option<Vec<f64>>,
    pub attention_factor: Option<f64>,
}

/// LongRoPE (`rope_type = "longrope"`, older configs `"su"`): per-dimension frequency divisors
/// for short and long contexts, and the factor cos/sin are multiplied by.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRope {
    pub short_factor: Vec<f64>,
    pub long_factor: Vec<f64>,
    /// A batch whose largest position + 1 exceeds this uses `long_factor`.
    pub original_max_position_embeddings: i64,
    pub attention_factor: f64,
}

/// The Phi-3 specifics of `config.json`: (rotary dimensions, LongRoPE if any).
///
/// As transformers' `Phi3Config`: `partial_rotary_factor` at the top level wins over the one in
/// `rope_parameters` (`standardize_rope_params`); `original_max_position_embeddings` is the
/// top-level one, 4096 when absent (a class default of `Phi3Config`, which
/// `standardize_rope_params` gives priority); `su` and `yarn` are read as `longrope`
/// (`convert_rope_params_to_dict`).
/// `factor` is `rope_scaling.factor`.
pub(super) fn rope(
    raw: &Phi3Keys,
    rope: &Phi3RopeKeys,
    factor: Option<f64>,
    rope_type: &str,
    head_dim: i64,
    max_position_embeddings: usize,
) -> Result<(i64, Option<LongRope>)> {
    let partial = raw
        .partial_rotary_factor
        .or(rope.partial_rotary_factor)
        .unwrap_or(1.0);
    // PhiRotaryEmbedding: dim = int(head_dim * partial_rotary_factor)
    let rotary_dim = (head_dim as f64 * partial) as i64;
    if rotary_dim <= 0 || rotary_dim > head_dim || rotary_dim % 2 != 0 {
        return Err(EngineError::unsupported(
            "config.json partial_rotary_factor",
            partial,
            format!("gives {rotary_dim} rotary dimensions of a head of {head_dim}; RoPE needs an even number in 2..={head_dim}"),
        ));
    }
    let longrope = match rope_type {
        "default" => None,
        "longrope" | "su" | "yarn" => {
            let factors = |v: &Option<Vec<f64>>, key: &str| -> Result<Vec<f64>> {
                match v {
                    Some(f) if f.len() as i64 == rotary_dim / 2 => Ok(f.clone()),
                    Some(f) => Err(EngineError::unsupported(
                        format!("config.json rope_scaling.{key}"),
                        format!("{} values", f.len()),
                        format!("LongRoPE needs one factor per rotary frequency ({})", rotary_dim / 2),
                    )),
                    None => Err(EngineError::unsupported(
                        format!("config.json rope_scaling.{key}"),
                        "missing",
                        "LongRoPE needs `short_factor` and `long_factor`",
                    )),
                }
            };
            let original = raw.original_max_position_embeddings.unwrap_or(4096) as f64;
            // `_compute_longrope_parameters`: factor defaults to max_pos / original, and the
            // attention factor to √(1 + ln(factor) / ln(original)) (1 when factor ≤ 1).
            let factor = factor.unwrap_or(max_position_embeddings as f64 / original);
            let attention_factor = rope.attention_factor.unwrap_or(if factor <= 1.0 {
                1.0
            } else {
                (1.0 + factor.ln() / original.ln()).sqrt()
            });
            Some(LongRope {
                short_factor: factors(&rope.short_factor, "short_factor")?,
                long_factor: factors(&rope.long_factor, "long_factor")?,
                original_max_position_embeddings: original as i64,
                attention_factor,
            })
        }
        other => {
            return Err(EngineError::unsupported(
                "config.json rope_type",
                other,
                "Phi-3 models run with `default` or `longrope` RoPE (transformers' Phi3Config accepts no other)",
            ))
        }
    };
    if let Some(p) = raw.resid_pdrop.filter(|&p| p > 0.0) {
        return Err(EngineError::unsupported(
            "config.json resid_pdrop",
            p,
            "residual dropout is not reproduced (set it to 0.0, as the released Phi-3/Phi-4 configs do)",
        ));
    }
    Ok((rotary_dim, longrope))
}

/// `_compute_longrope_parameters`' inverse frequencies for `factors`:
/// 1 / (factor[i] · θ^(2i/d)), in fp32 with the same float operations (`1.0 / x` is torch's
/// `reciprocal`).
pub(super) fn longrope_inv_freq(
    theta: f64,
    rotary_dim: i64,
    factors: &[f64],
    device: tch::Device,
) -> Tensor {
    let exponent = Tensor::arange_start_step(0, rotary_dim, 2, (Kind::Int64, device))
        .to_kind(Kind::Float)
        / (rotary_dim as f64);
    // torch.tensor(list_of_floats, dtype=float32): each double rounded to fp32
    let ext = Tensor::from_slice(factors)
        .to_kind(Kind::Float)
        .to_device(device);
    (ext * Tensor::pow_scalar(theta, &exponent)).reciprocal()
}

/// q, k and v: three modules (Llama) or one fused `qkv_proj` sliced as `Phi3Attention` does.
// One per decoder layer: the variants' size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub(super) enum QkvProj {
    Split {
        q_proj: Linear, // (C → H·D)
        k_proj: Linear, // (C → KV·D)
        v_proj: Linear, // (C → KV·D)
    },
    Fused {
        qkv_proj: Linear, // (C → H·D + 2·KV·D)
        q_size: i64,      // H·D
        kv_size: i64,     // KV·D
    },
}

impl QkvProj {
    /// x (B, T, C) → (q (B, T, H·D), k (B, T, KV·D), v (B, T, KV·D)).
    pub(super) fn forward(&self, xs: &Tensor, drop: &Dropout) -> (Tensor, Tensor, Tensor) {
        match self {
            QkvProj::Split {
                q_proj,
                k_proj,
                v_proj,
            } => (
                q_proj.forward(xs, drop),
                k_proj.forward(xs, drop),
                v_proj.forward(xs, drop),
            ),
            QkvProj::Fused {
                qkv_proj,
                q_size,
                kv_size,
            } => {
                let qkv = qkv_proj.forward(xs, drop); // (B, T, H·D + 2·KV·D)
                (
                    qkv.narrow(-1, 0, *q_size),
                    qkv.narrow(-1, *q_size, *kv_size),
                    qkv.narrow(-1, q_size + kv_size, *kv_size),
                )
            }
        }
    }
}

/// gate and up: two modules (Llama) or one fused `gate_up_proj` chunked as `Phi3MLP` does.
// One per decoder layer: the variants' size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub(super) enum GateUpProj {
    Split {
        gate_proj: Linear, // (C → I)
        up_proj: Linear,   // (C → I)
    },
    Fused {
        gate_up_proj: Linear, // (C → 2·I)
        intermediate: i64,    // I
    },
}

impl GateUpProj {
    /// x (B, T, C) → act(gate) · up (B, T, I). `Phi3MLP` multiplies `up · silu(gate)`, and so
    /// does the fused branch (the product is elementwise: the order changes no bit).
    pub(super) fn forward(&self, xs: &Tensor, drop: &Dropout, act: Activation) -> Tensor {
        match self {
            GateUpProj::Split { gate_proj, up_proj } => {
                let gate = act.apply(&gate_proj.forward(xs, drop)); // (B, T, I)
                gate * up_proj.forward(xs, drop) // (B, T, I)
            }
            GateUpProj::Fused {
                gate_up_proj,
                intermediate,
            } => {
                let gu = gate_up_proj.forward(xs, drop); // (B, T, 2·I)
                let gate = gu.narrow(-1, 0, *intermediate);
                let up = gu.narrow(-1, *intermediate, *intermediate);
                up * act.apply(&gate)
            }
        }
    }
}
