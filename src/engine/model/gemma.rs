//! Gemma 2 (`model_type: gemma2`) and Gemma 3 text (`gemma3_text`): what the Llama decoder of
//! `llama.rs` takes on to run them.
//!
//! Follows transformers 5.16.1 `models/gemma2/modeling_gemma2.py` and
//! `models/gemma3/modeling_gemma3.py` (`Gemma3ForCausalLM`, `Gemma3TextModel`):
//! - token embeddings multiplied by √C, a 0-dim fp32 tensor cast to the weights' dtype first
//!   (`Gemma2TextScaledWordEmbedding`: in bf16 √3072 = 55.4256 becomes 55.5);
//! - RMSNorm scaling by (1 + w), in fp32 before the cast back (`Gemma2RMSNorm`; Llama casts
//!   first and multiplies by w);
//! - "sandwich" decoder layers: x + post_attention_norm(attn(input_norm(x))), then
//!   x + post_feedforward_norm(mlp(pre_feedforward_norm(x)));
//! - GeGLU MLP `down(gelu_tanh(gate(x)) · up(x))` (`hidden_activation: gelu_pytorch_tanh`);
//! - attention scores scaled by `query_pre_attn_scalar`^-½ instead of D^-½;
//! - local layers (`layer_types` "sliding_attention"; Gemma 2 every other layer from the first,
//!   Gemma 3 five of six by `sliding_window_pattern`) attend to the last `sliding_window`
//!   positions, global layers to all;
//! - Gemma 2: attention logits soft-capped, s ↦ c·tanh(s / c) with c = `attn_logit_softcapping`,
//!   before the mask. transformers applies it on the eager path only: its SDPA interface
//!   (`integrations/sdpa_attention.py`) takes no soft-cap, so a run with `sdpa` attention trains
//!   without it, and so does the engine's SDPA path (bit-identical to both); runs whose
//!   framework applies it (eager, flash-attention, flex, Unsloth) take the eager kernel
//!   ([`needs_eager`]);
//! - final logits soft-capped the same way with `final_logit_softcapping` (Gemma 2: 30);
//! - Gemma 3: per-head RMSNorm (1 + w) on q and k before RoPE; RoPE θ of the global layers
//!   (`rope_parameters.full_attention`, 10⁶, with `linear` scaling on 4B-27B) and of the local
//!   ones (`sliding_attention`, hub spelling `rope_local_base_freq`, 10⁴); no attention soft-cap
//!   (`Gemma3Attention` passes none).
//!
//! Refused: bidirectional attention (`use_bidirectional_attention`, EmbeddingGemma), layer
//! types other than sliding/full, RoPE types other than default (and linear on Gemma 3's global
//! layers), activations other than gelu_pytorch_tanh. The multimodal `gemma3` checkpoints
//! (`Gemma3ForConditionalGeneration`, 4B-27B) hold the text model under `language_model` next
//! to a vision tower and PEFT names its LoRA modules there: refused with that reason.

use crate::engine::error::{EngineError, Result};
use serde::Deserialize;
use tch::{Kind, Tensor};

/// The Gemma `model_type`s this file resolves.
pub const MODEL_TYPES: [&str; 2] = ["gemma2", "gemma3_text"];

/// The top-level `config.json` keys only Gemma reads (flattened into `llama::RawConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GemmaKeys {
    pub hidden_activation: Option<String>,
    pub query_pre_attn_scalar: Option<f64>,
    /// Outer `None`: the key is absent (the class default applies); `Some(None)`: `null`, no cap.
    #[serde(default, deserialize_with = "present")]
    pub attn_logit_softcapping: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub final_logit_softcapping: Option<Option<f64>>,
    pub layer_types: Option<Vec<String>>,
    /// transformers 4 spelling of Gemma 3's layer types: every n-th layer global.
    pub sliding_window_pattern: Option<usize>,
    /// transformers 4 spelling of Gemma 3's local RoPE θ.
    pub rope_local_base_freq: Option<f64>,
    pub use_bidirectional_attention: Option<bool>,
}

/// A key that is present, `null` or not.
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// Gemma 3's per-layer-type `rope_parameters` (transformers 5 spelling), flattened into
/// `llama::RopeParameters`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GemmaRopeKeys {
    pub full_attention: Option<LayerRope>,
    pub sliding_attention: Option<LayerRope>,
}

/// The RoPE keys Gemma reads, of one layer type (or of the whole model).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LayerRope {
    pub rope_theta: Option<f64>,
    pub rope_type: Option<String>,
    /// transformers < 4.45 spelling of `rope_type`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub factor: Option<f64>,
}

/// What [`resolve`] reads of `config.json` besides [`GemmaKeys`].
pub(super) struct Inputs<'a> {
    pub model_type: &'a str,
    pub num_hidden_layers: usize,
    pub sliding_window: Option<usize>,
    /// Top-level `rope_theta` (transformers 4 spelling).
    pub rope_theta: Option<f64>,
    /// `rope_parameters` or `rope_scaling`, read flat.
    pub rope: LayerRope,
    /// `rope_parameters` read per layer type.
    pub per_type: &'a GemmaRopeKeys,
}

/// The resolved Gemma specifics.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemma {
    /// s ↦ c·tanh(s/c) on attention scores (eager attention only, as transformers).
    pub attn_softcap: Option<f64>,
    /// s ↦ c·tanh(s/c) on the output logits.
    pub final_softcap: Option<f64>,
    /// TorchTune 0.6.1 (`Gemma2FinalNorm`): `final_softcap` caps the final normed hidden
    /// states instead, before the tied head; the logits stay uncapped.
    pub final_softcap_on_hidden: bool,
    /// Attention scores are scaled by this ^-½.
    pub query_pre_attn_scalar: f64,
    /// Per layer: whether it is local (sliding window).
    pub local_layers: Vec<bool>,
    pub sliding_window: i64,
    /// RoPE θ of the local layers (`None`: the global θ, Gemma 2).
    pub local_rope_theta: Option<f64>,
    /// Linear RoPE scaling of the global layers (inverse frequencies divided by it).
    pub global_rope_factor: Option<f64>,
}

/// The Gemma specifics of `config.json`, and the global layers' RoPE θ.
pub(super) fn resolve(g: &GemmaKeys, raw: Inputs) -> Result<(Gemma, f64)> {
    let gemma3 = raw.model_type == "gemma3_text";
    let act = g
        .hidden_activation
        .clone()
        .unwrap_or_else(|| "gelu_pytorch_tanh".into());
    if act != "gelu_pytorch_tanh" {
        return Err(EngineError::unsupported(
            "config.json hidden_activation",
            act,
            "Gemma runs with gelu_pytorch_tanh (GeGLU, tanh approximation), as released",
        ));
    }
    if g.use_bidirectional_attention == Some(true) {
        return Err(EngineError::unsupported(
            "config.json use_bidirectional_attention",
            true,
            "bidirectional attention (EmbeddingGemma) is not a causal LM; the engine trains causal decoders",
        ));
    }
    let n = raw.num_hidden_layers;
    let layer_types = match &g.layer_types {
        Some(t) => t.clone(),
        None => {
            // Gemma2Config / Gemma3TextConfig.__post_init__: layer i is local unless
            // (i + 1) % pattern == 0 (Gemma 2: pattern 2; Gemma 3: `sliding_window_pattern`, 6).
            let pattern = if gemma3 {
                g.sliding_window_pattern.unwrap_or(6)
            } else {
                2
            };
            (0..n)
                .map(|i| {
                    if (i + 1) % pattern.max(1) != 0 {
                        "sliding_attention".to_string()
                    } else {
                        "full_attention".to_string()
                    }
                })
                .collect()
        }
    };
    if layer_types.len() != n {
        return Err(EngineError::unsupported(
            "config.json layer_types",
            format!("{} entries", layer_types.len()),
            format!("one per layer ({n})"),
        ));
    }
    let mut local_layers = Vec::with_capacity(n);
    for t in &layer_types {
        local_layers.push(match t.as_str() {
            "sliding_attention" => true,
            "full_attention" => false,
            other => {
                return Err(EngineError::unsupported(
                    "config.json layer_types",
                    other,
                    "Gemma layers are `sliding_attention` or `full_attention`",
                ))
            }
        });
    }
    let sliding_window = raw.sliding_window.unwrap_or(4096) as i64;
    // Gemma 3 in the transformers 5 spelling: one RoPE per layer type.
    let (global, local) = match (
        &raw.per_type.full_attention,
        &raw.per_type.sliding_attention,
    ) {
        (Some(f), s) if gemma3 => (f.clone(), s.clone()),
        _ => (raw.rope.clone(), None),
    };
    let rope_type = |r: &LayerRope| {
        r.rope_type
            .clone()
            .or(r.kind.clone())
            .unwrap_or_else(|| "default".into())
    };
    let global_rope_factor = match rope_type(&global).as_str() {
        "default" => None,
        "linear" if gemma3 => Some(global.factor.ok_or_else(|| {
            EngineError::unsupported(
                "config.json rope_scaling.factor",
                "missing",
                "linear RoPE scaling needs a factor",
            )
        })?),
        other => {
            return Err(EngineError::unsupported(
                "config.json rope_type",
                other,
                if gemma3 {
                    "Gemma 3 runs with `default` RoPE (and `linear` on its global layers)"
                } else {
                    "Gemma 2 runs with `default` RoPE"
                },
            ))
        }
    };
    if let Some(l) = &local {
        let t = rope_type(l);
        if t != "default" {
            return Err(EngineError::unsupported(
                "config.json rope_parameters.sliding_attention.rope_type",
                t,
                "Gemma 3's local layers run with `default` RoPE",
            ));
        }
    }
    // Gemma 3 defaults: θ 10⁶ global, 10⁴ local (Gemma3TextConfig.default_theta).
    let default_theta = if gemma3 { 1_000_000.0 } else { 10_000.0 };
    let theta = global
        .rope_theta
        .or(raw.rope_theta)
        .unwrap_or(default_theta);
    let local_rope_theta = gemma3.then(|| {
        local
            .and_then(|l| l.rope_theta)
            .or(g.rope_local_base_freq)
            .unwrap_or(10_000.0)
    });
    // Gemma2Config defaults: 50 and 30; Gemma3TextConfig: none. Gemma3Attention passes no
    // soft-cap to the attention function whatever the config says.
    let (attn_default, final_default) = if gemma3 {
        (None, None)
    } else {
        (Some(50.0), Some(30.0))
    };
    let attn_softcap = if gemma3 {
        None
    } else {
        g.attn_logit_softcapping.unwrap_or(attn_default)
    };
    let final_softcap = g.final_logit_softcapping.unwrap_or(final_default);
    Ok((
        Gemma {
            attn_softcap,
            final_softcap,
            final_softcap_on_hidden: false,
            query_pre_attn_scalar: g.query_pre_attn_scalar.unwrap_or(256.0),
            local_layers,
            sliding_window,
            local_rope_theta,
            global_rope_factor,
        },
        theta,
    ))
}

/// The embedding scale √C as transformers holds it: `torch.tensor(C ** 0.5)` (fp32), cast to
/// the weights' dtype, a 0-dim tensor on their device.
pub(super) fn embed_scale(hidden_size: i64, like: &Tensor) -> Tensor {
    // Python's `**` is libm pow, as f64::powf; the tensor rounds it to fp32.
    Tensor::from((hidden_size as f64).powf(0.5) as f32)
        .to_kind(like.kind())
        .to_device(like.device())
}

/// c·tanh(x / c), the three ops transformers runs (`x / c`, `tanh`, `· c`).
pub(super) fn softcap(xs: &Tensor, cap: f64) -> Tensor {
    (xs / cap).tanh() * cap
}

/// Gemma's RMSNorm scale: y = normed · (1 + w) in fp32 (normed is fp32), before the cast back.
pub(super) fn offset_scale(normed: &Tensor, weight: &Tensor) -> Tensor {
    normed * (weight.to_kind(Kind::Float) + 1.0)
}

/// What `run --check` refuses of a Gemma spec (`None` for other families):
/// - TorchTune: Gemma 3, which torchtune 0.6.1 has no builders for (Gemma 2 runs with
///   TorchTune's module tree, `model/torchtune.rs`);
/// - judged without weights (`from_family`), the multimodal Gemma 3 sizes (4B, 12B, 27B), named
///   by the base model's size tag (their `config.json` says `gemma3`, refused when it loads).
pub fn check(
    family: &str,
    base: &str,
    flavour: crate::engine::flavour::Flavour,
    from_family: bool,
) -> Option<crate::engine::error::Unsupported> {
    use crate::engine::error::Unsupported;
    let f = crate::translate::families::by_name(family)?;
    if !MODEL_TYPES.contains(&f.hf_model_type.as_str()) {
        return None;
    }
    if flavour == crate::engine::flavour::Flavour::TorchTune && f.hf_model_type != "gemma2" {
        return Some(Unsupported::new(
            "model.family",
            family,
            "torchtune 0.6.1 builds Gemma 2 (torchtune.models.gemma2) but no Gemma 3; the engine \
             runs Gemma 3 with transformers' and PEFT's modules (Axolotl, Unsloth/TRL)",
        ));
    }
    let size = crate::translate::families::size_tag(base);
    (from_family && f.hf_model_type == "gemma3_text" && ["4B", "12B", "27B"].contains(&size.as_str()))
        .then(|| {
            Unsupported::new(
                "model.base",
                base,
                "a multimodal Gemma 3 (4B-27B: Gemma3ForConditionalGeneration, a vision tower beside \
                 the text model, LoRA modules under `language_model`); the engine runs the text-only \
                 Gemma 3 models (gemma-3-270m, gemma-3-1b)",
            )
        })
}

/// Whether a Gemma 2 run needs the engine's eager attention to match its framework. The
/// attention soft-cap is applied by every kernel the frameworks run Gemma 2 with but
/// transformers' SDPA: eager, flash-attention 2/3 (`flash_attention_forward(softcap=…)`), flex
/// (`score_mod`), Unsloth's own Gemma 2 attention whatever the config asks, and TorchTune's
/// `Gemma2Attention`. The engine
/// applies it on its eager path only (SDPA takes no soft-cap), so such a run computes attention
/// there.
pub fn needs_eager(
    gemma: Option<&Gemma>,
    requested: crate::ir::Attention,
    flavour: crate::engine::flavour::Flavour,
) -> bool {
    use crate::ir::Attention as A;
    let capped = gemma.is_some_and(|g| g.attn_softcap.is_some());
    // TorchTune's `Gemma2Attention` computes its scores itself and always caps them.
    let framework_caps = flavour == crate::engine::flavour::Flavour::Unsloth
        || flavour == crate::engine::flavour::Flavour::TorchTune
        || matches!(
            requested,
            A::Eager | A::FlashAttention2 | A::FlashAttention3 | A::FlexAttention
        );
    capped && framework_caps
}
