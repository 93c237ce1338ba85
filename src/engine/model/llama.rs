//! The Llama family: Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5 and Qwen3, one decoder with flags.
//!
//! Follows Hugging Face transformers 5.x `models/llama/modeling_llama.py` (and its
//! `qwen2`, `qwen3`, `mistral` siblings), which TorchTune's component builders reproduce
//! op for op:
//! - pre-norm decoder layers with RMSNorm computed in fp32 (`x·rsqrt(mean(x²)+ε)·w`);
//! - grouped-query attention (KV heads shared by `H / KV` query heads), causal;
//! - rotary embeddings in the rotate-half layout, with Llama 3 frequency scaling;
//! - SwiGLU MLP `down(silu(gate(x)) · up(x))`;
//! - family flags: q/k/v biases (Qwen2), per-head q/k RMSNorm before RoPE (Qwen3), all-proj
//!   biases (`attention_bias`), a sliding window (Mistral), tied embeddings (Llama 3.2, small Qwen);
//!   Phi-3's fused `qkv_proj`/`gate_up_proj`, partial and LongRoPE rotary embeddings (`phi3.rs`);
//!   Gemma 2/3's scaled embeddings, (1 + w) norms, sandwich layers, GeGLU, soft-capping and
//!   local/global layers (`gemma.rs`).
//!
//! Left out: KV cache and generation (training only), MoE variants, vision towers.

pub use super::activation::Activation;
use super::gemma::{self, Gemma, GemmaKeys, GemmaRopeKeys};
use super::mask::{causal_mask, sliding_window_mask, DocLayout};
use super::phi3::{self, GateUpProj, LongRope, Phi3Keys, Phi3RopeKeys, QkvProj};
use super::weights::Weights;
use crate::engine::error::{EngineError, Result};
use crate::engine::layers::{Dropout, Linear};
use crate::engine::quant::QuantFormat;
use serde::Deserialize;
use tch::{Kind, Tensor};

/// `config.json`, keys verbatim. Both the transformers 4.x spelling (`rope_theta`,
/// `rope_scaling`) and the 5.x one (`rope_parameters`) are read.
#[derive(Debug, Clone, Deserialize)]
pub struct RawConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeParameters>,
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub mlp_bias: bool,
    pub sliding_window: Option<usize>,
    pub use_sliding_window: Option<bool>,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(flatten)]
    pub phi3: Phi3Keys,
    #[serde(flatten)]
    pub gemma: GemmaKeys,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_max_position_embeddings() -> usize {
    2048
}
fn default_hidden_act() -> String {
    "silu".into()
}

/// `rope_scaling` / `rope_parameters`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    pub rope_theta: Option<f64>,
    pub rope_type: Option<String>,
    /// transformers < 4.45 spelling of `rope_type`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
    #[serde(flatten)]
    pub phi3: Phi3RopeKeys,
    #[serde(flatten)]
    pub gemma: GemmaRopeKeys,
}

/// Llama 3 frequency scaling (`rope_type = "llama3"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// The resolved configuration: no `Option`s left.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub model_type: String,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: usize,
    pub num_attention_heads: i64,
    pub num_key_value_heads: i64,
    pub head_dim: i64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub llama3_scaling: Option<Llama3Scaling>,
    pub max_position_embeddings: i64,
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v (Qwen2 always; Llama/Qwen3 with `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on o_proj (Llama/Qwen3 with `attention_bias`; never Qwen2).
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Per-head RMSNorm on q and k before RoPE (Qwen3).
    pub qk_norm: bool,
    /// Attend only to the last `w` positions (Mistral, Phi-3); `None` = full causal.
    pub sliding_window: Option<i64>,
    /// Phi-3: one `qkv_proj` and one `gate_up_proj` instead of q/k/v and gate/up.
    pub fused_projections: bool,
    /// Head dimensions RoPE rotates (the first ones; `head_dim` unless Phi-3's
    /// `partial_rotary_factor` < 1).
    pub rotary_dim: i64,
    /// Phi-3 LongRoPE scaling.
    pub longrope: Option<LongRope>,
    /// The MLP's activation: SwiGLU (silu) or Gemma's GeGLU (gelu, tanh approximation).
    pub hidden_act: Activation,
    /// Gemma 2/3 specifics (`gemma.rs`).
    pub gemma: Option<Gemma>,
}

/// The `config.json` `model_type`s this file implements (`run --check` judges a spec's
/// `model.family` against them through `translators/families.toml`).
pub const ARCHITECTURES: [&str; 7] = [
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma2",
    "gemma3_text",
];

impl RawConfig {
    pub fn into_config(self) -> Result<Config> {
        let arch = self.model_type.as_str();
        if arch == "gemma3" {
            return Err(EngineError::unsupported(
                "config.json model_type",
                arch,
                "a multimodal Gemma 3 (Gemma3ForConditionalGeneration, 4B-27B: a vision tower beside \
                 the text model, LoRA modules under `language_model`); the engine runs the text-only \
                 Gemma 3 models (`gemma3_text`: gemma-3-270m, gemma-3-1b)",
            ));
        }
        if !ARCHITECTURES.contains(&arch) {
            return Err(EngineError::UnsupportedArchitecture {
                model_type: self.model_type,
            });
        }
        let is_gemma = gemma::MODEL_TYPES.contains(&arch);
        if !is_gemma && self.hidden_act != "silu" {
            return Err(EngineError::unsupported(
                "config.json hidden_act",
                &self.hidden_act,
                "only SwiGLU (silu) MLPs are implemented",
            ));
        }
        let rope = self
            .rope_parameters
            .clone()
            .or(self.rope_scaling.clone())
            .unwrap_or_default();
        let gemma = if is_gemma {
            let inputs = gemma::Inputs {
                model_type: arch,
                num_hidden_layers: self.num_hidden_layers,
                sliding_window: self.sliding_window,
                rope_theta: self.rope_theta,
                rope: gemma::LayerRope {
                    rope_theta: rope.rope_theta,
                    rope_type: rope.rope_type.clone(),
                    kind: rope.kind.clone(),
                    factor: rope.factor,
                },
                per_type: &rope.gemma,
            };
            Some(gemma::resolve(&self.gemma, inputs)?)
        } else {
            None
        };
        let rope_theta = match &gemma {
            Some((_, theta)) => *theta,
            None => rope.rope_theta.or(self.rope_theta).unwrap_or(10_000.0),
        };
        let rope_type = rope
            .rope_type
            .clone()
            .or(rope.kind.clone())
            .unwrap_or_else(|| "default".into());
        let heads = self.num_attention_heads as i64;
        let head_dim = self
            .head_dim
            .map_or(self.hidden_size as i64 / heads, |d| d as i64);
        let (rotary_dim, longrope) = if arch == "phi3" {
            phi3::rope(
                &self.phi3,
                &rope.phi3,
                rope.factor,
                &rope_type,
                head_dim,
                self.max_position_embeddings,
            )?
        } else {
            (head_dim, None)
        };
        let llama3_scaling = match rope_type.as_str() {
            _ if arch == "phi3" || is_gemma => None,
            "default" => None,
            "llama3" => Some(Llama3Scaling {
                factor: rope.factor.unwrap_or(8.0),
                low_freq_factor: rope.low_freq_factor.unwrap_or(1.0),
                high_freq_factor: rope.high_freq_factor.unwrap_or(4.0),
                original_max_position_embeddings: rope
                    .original_max_position_embeddings
                    .unwrap_or(8192),
            }),
            other => {
                return Err(EngineError::unsupported(
                    "config.json rope_type",
                    other,
                    "only `default` and `llama3` RoPE are implemented",
                ))
            }
        };
        let attention_bias = self.attention_bias.unwrap_or(false) && arch != "phi3";
        let sliding_window = match arch {
            // transformers 5 masks with the window whenever it is set (Phi3Model.forward)
            "mistral" | "phi3" => self.sliding_window.map(|w| w as i64),
            "qwen2" | "qwen3" if self.use_sliding_window == Some(true) => {
                self.sliding_window.map(|w| w as i64)
            }
            _ => None,
        };
        Ok(Config {
            vocab_size: self.vocab_size as i64,
            hidden_size: self.hidden_size as i64,
            intermediate_size: self.intermediate_size as i64,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: self.num_key_value_heads.map_or(heads, |k| k as i64),
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta,
            llama3_scaling,
            max_position_embeddings: self.max_position_embeddings as i64,
            tie_word_embeddings: self.tie_word_embeddings,
            qkv_bias: arch == "qwen2" || attention_bias,
            o_bias: arch != "qwen2" && attention_bias,
            mlp_bias: self.mlp_bias,
            qk_norm: arch == "qwen3" || arch == "gemma3_text",
            sliding_window,
            fused_projections: arch == "phi3",
            rotary_dim,
            longrope,
            hidden_act: if is_gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            gemma: gemma.map(|(g, _)| g),
            model_type: self.model_type,
        })
    }
}

/// RMSNorm, in fp32 whatever the activations' dtype (HF `LlamaRMSNorm`, TorchTune `RMSNorm`):
/// y = w · (x / sqrt(mean(x²) + ε)), with the normalisation cast back before the scale.
/// Gemma: y = (normed · (1 + w)) in fp32, cast back after the scale (`gemma::offset_scale`).
struct RmsNorm {
    weight: Tensor, // (C)
    eps: f64,
    /// Gemma's (1 + w) scale.
    offset: bool,
}

impl RmsNorm {
    /// The norm `name` of a model of `cfg` (Gemma's (1 + w) form for Gemma models).
    fn new(cfg: &Config, w: &mut Weights, name: &str, dim: i64) -> Result<Self> {
        Ok(RmsNorm {
            weight: w.take(&format!("{name}.weight"), &[dim])?,
            eps: cfg.rms_norm_eps,
            offset: cfg.gemma.is_some(),
        })
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let dtype = xs.kind();
        let x32 = xs.to_kind(Kind::Float);
        let variance = x32.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = &x32 * (variance + self.eps).rsqrt();
        if self.offset {
            return gemma::offset_scale(&normed, &self.weight).to_kind(dtype);
        }
        &self.weight * normed.to_kind(dtype)
    }
}

/// Rotary position embedding tables, built once up to `max_position_embeddings`.
///
/// inv_freq[i] = 1 / θ^(2i/Dr) (Llama 3: low frequencies divided by `factor`, a smooth ramp in
/// between; Phi-3 LongRoPE: divided by a factor per frequency); angle[t, i] = t · inv_freq[i];
/// cos/sin of [angle, angle] (rotate-half layout) over the first Dr = `rotary_dim` dimensions
/// of a head (all of them but for Phi-3's `partial_rotary_factor`).
struct RotaryEmbedding {
    cos: Tensor, // (maxT, Dr)
    sin: Tensor, // (maxT, Dr)
    /// LongRoPE: the tables with the long factors, used when a batch's largest position + 1
    /// exceeds the original context (transformers `dynamic_rope_update`).
    long: Option<(Tensor, Tensor, i64)>,
}

impl RotaryEmbedding {
    fn new(cfg: &Config, device: tch::Device) -> Self {
        let d = cfg.rotary_dim;
        let max_t = cfg.max_position_embeddings;
        let Some(lr) = &cfg.longrope else {
            let linear = cfg.gemma.as_ref().and_then(|g| g.global_rope_factor);
            return Self::plain(cfg, cfg.rope_theta, linear, device);
        };
        let original = lr.original_max_position_embeddings;
        let table = |factors: &[f64], n: i64| {
            let inv_freq = phi3::longrope_inv_freq(cfg.rope_theta, d, factors, device);
            rope_tables(&inv_freq, n, Some(lr.attention_factor))
        };
        let (cos, sin) = table(&lr.short_factor, original.min(max_t));
        let (long_cos, long_sin) = table(&lr.long_factor, max_t);
        RotaryEmbedding {
            cos,
            sin,
            long: Some((long_cos, long_sin, original)),
        }
    }

    /// Gemma 3's local layers: a θ of their own, unscaled (`None` for other models).
    fn local(cfg: &Config, device: tch::Device) -> Option<Self> {
        let theta = cfg.gemma.as_ref()?.local_rope_theta?;
        Some(Self::plain(cfg, theta, None, device))
    }

    /// Tables for base `theta`, with `cfg`'s Llama 3 scaling if any and inverse frequencies
    /// divided by `linear` if given (`_compute_linear_scaling_rope_parameters`).
    fn plain(cfg: &Config, theta: f64, linear: Option<f64>, device: tch::Device) -> Self {
        let d = cfg.rotary_dim;
        // HF: 1.0 / (base ** (arange(0, dim, 2, int64).float() / dim)), all in fp32.
        let exponent = Tensor::arange_start_step(0, d, 2, (Kind::Int64, device))
            .to_kind(Kind::Float)
            / (d as f64);
        let mut inv_freq = Tensor::pow_scalar(theta, &exponent).reciprocal();
        if let Some(s) = &cfg.llama3_scaling {
            inv_freq = llama3_inv_freq(&inv_freq, s);
        }
        if let Some(f) = linear {
            inv_freq /= f;
        }
        let (cos, sin) = rope_tables(&inv_freq, cfg.max_position_embeddings, None);
        RotaryEmbedding {
            cos,
            sin,
            long: None,
        }
    }

    /// The (cos, sin) tables for a batch whose largest position is `seq_len` − 1.
    fn tables(&self, seq_len: impl FnOnce() -> i64) -> (&Tensor, &Tensor) {
        match &self.long {
            Some((cos, sin, original)) if seq_len() > *original => (cos, sin),
            _ => (&self.cos, &self.sin),
        }
    }

    /// As [`Self::apply`] at explicit positions (B, T) (packed rows restart at each document).
    fn apply_at(&self, xs: &Tensor, positions: &Tensor) -> Tensor {
        let (b, t) = positions.size2().expect("positions are (B, T)");
        let (cos, sin) = self.tables(|| positions.max().int64_value(&[]) + 1);
        let d = cos.size()[1];
        let at = |table: &Tensor| {
            table
                .index_select(0, &positions.view([-1]))
                .view([b, 1, t, d])
                .to_kind(xs.kind())
        }; // (B, 1, T, Dr)
        rotate(xs, &at(cos), &at(sin))
    }

    /// x · cos + rotate_half(x) · sin, for x of shape (B, H, T, D).
    fn apply(&self, xs: &Tensor, seq_len: i64) -> Tensor {
        let (cos, sin) = self.tables(|| seq_len);
        let cos = cos.narrow(0, 0, seq_len).to_kind(xs.kind()); // (T, Dr)
        let sin = sin.narrow(0, 0, seq_len).to_kind(xs.kind());
        rotate(xs, &cos, &sin)
    }
}

/// cos and sin tables (n, Dr) of angle[t, i] = t · inv_freq[i], in fp32, multiplied by
/// `scaling` if any (LongRoPE's attention factor, as `PhiRotaryEmbedding.forward`).
fn rope_tables(inv_freq: &Tensor, n: i64, scaling: Option<f64>) -> (Tensor, Tensor) {
    let t = Tensor::arange(n, (Kind::Float, inv_freq.device()));
    // outer product: exact, as HF's (D/2, 1) @ (1, T) matmul with a length-1 inner dimension
    let freqs = t.unsqueeze(1) * inv_freq.unsqueeze(0); // (n, Dr/2)
    let emb = Tensor::cat(&[&freqs, &freqs], -1); // (n, Dr)
    match scaling {
        Some(s) => (emb.cos() * s, emb.sin() * s),
        None => (emb.cos(), emb.sin()),
    }
}

/// x · cos + rotate_half(x) · sin on the first Dr dimensions of x (…, D); the rest passes
/// through (Phi-3 `apply_rotary_pos_emb` with a partial rotary factor).
fn rotate(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let (d, dr) = (xs.size()[xs.dim() - 1], cos.size()[cos.dim() - 1]);
    if dr == d {
        return xs * cos + rotate_half(xs) * sin;
    }
    let x_rot = xs.narrow(-1, 0, dr);
    let x_pass = xs.narrow(-1, dr, d - dr);
    Tensor::cat(&[&x_rot * cos + rotate_half(&x_rot) * sin, x_pass], -1)
}

/// [x1, x2] → [-x2, x1] on the last dimension.
fn rotate_half(xs: &Tensor) -> Tensor {
    let half = xs.size()[xs.dim() - 1] / 2;
    let x1 = xs.narrow(-1, 0, half);
    let x2 = xs.narrow(-1, half, half);
    Tensor::cat(&[&x2.neg(), &x1], -1)
}

/// transformers `_compute_llama3_parameters`: wavelengths longer than the original context /
/// low_freq_factor are divided by `factor`, shorter than context / high_freq_factor kept, and
/// the band between interpolated with smooth = (ctx/λ − lo)/(hi − lo).
fn llama3_inv_freq(inv_freq: &Tensor, s: &Llama3Scaling) -> Tensor {
    let ctx = s.original_max_position_embeddings as f64;
    let low_freq_wavelen = ctx / s.low_freq_factor;
    let high_freq_wavelen = ctx / s.high_freq_factor;
    let wavelen = inv_freq.reciprocal() * (2.0 * std::f64::consts::PI);
    let scaled = inv_freq / s.factor;
    let inv_freq_llama = scaled.where_self(&wavelen.gt(low_freq_wavelen), inv_freq);
    let smooth =
        (wavelen.reciprocal() * ctx - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    let smoothed =
        (smooth.ones_like() - &smooth) * &inv_freq_llama / s.factor + &smooth * &inv_freq_llama;
    let is_medium = wavelen
        .lt(high_freq_wavelen)
        .logical_not()
        .logical_and(&wavelen.gt(low_freq_wavelen).logical_not());
    smoothed.where_self(&is_medium, &inv_freq_llama)
}

/// One of a decoder layer's linear modules. This enum is the one list of them: their
/// checkpoint names, their shapes, and the order each consumer visits them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerLinear {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
    /// Phi-3: q, k and v rows in one module.
    QkvProj,
    /// Phi-3: gate then up rows in one module.
    GateUpProj,
}

impl LayerLinear {
    /// The order HF declares them (`LlamaAttention` q, k, v, o, then `LlamaMLP` gate, up,
    /// down), which is also the order the checkpoint lists them, PEFT's `get_peft_model` wraps
    /// them and the forward runs them.
    pub const ALL: [LayerLinear; 7] = [
        LayerLinear::QProj,
        LayerLinear::KProj,
        LayerLinear::VProj,
        LayerLinear::OProj,
        LayerLinear::GateProj,
        LayerLinear::UpProj,
        LayerLinear::DownProj,
    ];

    /// Phi-3's modules in the order `Phi3DecoderLayer` declares and runs them (attention
    /// `qkv_proj`, `o_proj`, then `Phi3MLP` `gate_up_proj`, `down_proj`).
    pub const FUSED: [LayerLinear; 4] = [
        LayerLinear::QkvProj,
        LayerLinear::OProj,
        LayerLinear::GateUpProj,
        LayerLinear::DownProj,
    ];

    /// The modules of a decoder layer of `cfg`, in HF declaration (= forward) order.
    pub fn of(cfg: &Config) -> &'static [LayerLinear] {
        if cfg.fused_projections {
            &Self::FUSED
        } else {
            &Self::ALL
        }
    }

    /// The order TorchTune's component builders construct them (torchtune 0.6.1
    /// `models/*/_component_builders.py`): attention q, k, v, output_proj, then the MLP's
    /// w1 (gate), w2 (down), w3 (up).
    pub const TORCHTUNE_BUILD_ORDER: [LayerLinear; 7] = [
        LayerLinear::QProj,
        LayerLinear::KProj,
        LayerLinear::VProj,
        LayerLinear::OProj,
        LayerLinear::GateProj,
        LayerLinear::DownProj,
        LayerLinear::UpProj,
    ];

    /// `lora_gemma2`'s order (torchtune 0.6.1 `models/gemma2/_component_builders.py`): the
    /// MLP (`lora_gemma_mlp`: gate, down, up) is built before the attention.
    pub const TORCHTUNE_GEMMA2_BUILD_ORDER: [LayerLinear; 7] = [
        LayerLinear::GateProj,
        LayerLinear::DownProj,
        LayerLinear::UpProj,
        LayerLinear::QProj,
        LayerLinear::KProj,
        LayerLinear::VProj,
        LayerLinear::OProj,
    ];

    /// The module path inside a decoder layer (`self_attn.q_proj`).
    pub fn path(self) -> &'static str {
        match self {
            LayerLinear::QProj => "self_attn.q_proj",
            LayerLinear::KProj => "self_attn.k_proj",
            LayerLinear::VProj => "self_attn.v_proj",
            LayerLinear::OProj => "self_attn.o_proj",
            LayerLinear::GateProj => "mlp.gate_proj",
            LayerLinear::UpProj => "mlp.up_proj",
            LayerLinear::DownProj => "mlp.down_proj",
            LayerLinear::QkvProj => "self_attn.qkv_proj",
            LayerLinear::GateUpProj => "mlp.gate_up_proj",
        }
    }

    /// The HF module name, as `target_modules` lists it (`q_proj`).
    pub fn name(self) -> &'static str {
        let path = self.path();
        path.rsplit('.').next().unwrap_or(path)
    }

    /// (in, out, bias) of the module in `cfg` with head dimension `head_dim` (the model's is
    /// `cfg.head_dim`; TorchTune's builders take C / H).
    pub fn dims(self, cfg: &Config, head_dim: i64) -> (i64, i64, bool) {
        let (c, i) = (cfg.hidden_size, cfg.intermediate_size);
        let q = cfg.num_attention_heads * head_dim; // H·D
        let kv = cfg.num_key_value_heads * head_dim; // KV·D
        match self {
            LayerLinear::QProj => (c, q, cfg.qkv_bias),
            LayerLinear::KProj | LayerLinear::VProj => (c, kv, cfg.qkv_bias),
            LayerLinear::OProj => (q, c, cfg.o_bias),
            LayerLinear::GateProj | LayerLinear::UpProj => (c, i, cfg.mlp_bias),
            LayerLinear::DownProj => (i, c, cfg.mlp_bias),
            LayerLinear::QkvProj => (c, q + 2 * kv, cfg.qkv_bias),
            LayerLinear::GateUpProj => (c, 2 * i, cfg.mlp_bias),
        }
    }

    /// Take this module of decoder layer `layer` (`model.layers.{i}`) from the checkpoint.
    fn take(self, cfg: &Config, w: &mut Weights, layer: &str) -> Result<Linear> {
        let (d_in, d_out, bias) = self.dims(cfg, cfg.head_dim);
        w.linear(&format!("{layer}.{}", self.path()), d_in, d_out, bias)
    }
}

/// SwiGLU: down(silu(gate(x)) · up(x)).
struct Mlp {
    gate_up: GateUpProj, // (C → I, C → I), or Phi-3's fused (C → 2·I)
    down_proj: Linear,   // (I → C)
    act: Activation,     // silu, or Gemma's gelu (tanh)
}

impl Mlp {
    /// The MLP of decoder layer `layer` (`model.layers.{i}`).
    fn new(cfg: &Config, w: &mut Weights, layer: &str) -> Result<Self> {
        let gate_up = if cfg.fused_projections {
            GateUpProj::Fused {
                gate_up_proj: LayerLinear::GateUpProj.take(cfg, w, layer)?,
                intermediate: cfg.intermediate_size,
            }
        } else {
            GateUpProj::Split {
                gate_proj: LayerLinear::GateProj.take(cfg, w, layer)?,
                up_proj: LayerLinear::UpProj.take(cfg, w, layer)?,
            }
        };
        Ok(Mlp {
            gate_up,
            down_proj: LayerLinear::DownProj.take(cfg, w, layer)?,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, xs: &Tensor, drop: &Dropout) -> Tensor {
        let h = self.gate_up.forward(xs, drop, self.act); // (B, T, I)
        self.down_proj.forward(&h, drop) // (B, T, C)
    }
}

/// How attention scores are computed. Both give the same function; they round differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionImpl {
    /// `torch.nn.functional.scaled_dot_product_attention` (HF `sdpa`, TorchTune).
    Sdpa,
    /// softmax(q·kᵀ·scale + mask) in fp32, then ·v (HF `eager`).
    Eager,
}

struct Attention {
    qkv: QkvProj,            // (C → H·D, KV·D, KV·D), or Phi-3's fused (C → H·D + 2·KV·D)
    o_proj: Linear,          // (H·D → C)
    q_norm: Option<RmsNorm>, // (D), Qwen3
    k_norm: Option<RmsNorm>, // (D), Qwen3
    num_heads: i64,
    num_kv_heads: i64,
    head_dim: i64,
    sliding_window: Option<i64>,
    /// Scores are multiplied by this: D^-½, Gemma's `query_pre_attn_scalar`^-½.
    scale: f64,
    /// Gemma 2: s ↦ c·tanh(s/c) on the scores (eager attention only, as transformers).
    softcap: Option<f64>,
}

impl Attention {
    /// The attention of decoder layer `i`, named `layer` (`model.layers.{i}`).
    fn new(cfg: &Config, w: &mut Weights, layer: &str, i: usize) -> Result<Self> {
        let (h, kv, d) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let norm = |w: &mut Weights, n: &str| -> Result<Option<RmsNorm>> {
            if cfg.qk_norm {
                Ok(Some(RmsNorm::new(
                    cfg,
                    w,
                    &format!("{layer}.self_attn.{n}"),
                    d,
                )?))
            } else {
                Ok(None)
            }
        };
        let qkv = if cfg.fused_projections {
            QkvProj::Fused {
                qkv_proj: LayerLinear::QkvProj.take(cfg, w, layer)?,
                q_size: h * d,
                kv_size: kv * d,
            }
        } else {
            QkvProj::Split {
                q_proj: LayerLinear::QProj.take(cfg, w, layer)?,
                k_proj: LayerLinear::KProj.take(cfg, w, layer)?,
                v_proj: LayerLinear::VProj.take(cfg, w, layer)?,
            }
        };
        Ok(Attention {
            qkv,
            o_proj: LayerLinear::OProj.take(cfg, w, layer)?,
            q_norm: norm(w, "q_norm")?,
            k_norm: norm(w, "k_norm")?,
            num_heads: h,
            num_kv_heads: kv,
            head_dim: d,
            sliding_window: match &cfg.gemma {
                Some(g) => g.local_layers[i].then_some(g.sliding_window),
                None => cfg.sliding_window,
            },
            scale: match &cfg.gemma {
                Some(g) => g.query_pre_attn_scalar.powf(-0.5),
                None => (d as f64).powf(-0.5),
            },
            softcap: cfg.gemma.as_ref().and_then(|g| g.attn_softcap),
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        rope: &RotaryEmbedding,
        attn: AttentionImpl,
        drop: &Dropout,
        docs: Option<&DocLayout>,
    ) -> Tensor {
        let (b, t, _c) = xs.size3().expect("decoder input is (B, T, C)");
        let (h, kv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let (q, k, v) = self.qkv.forward(xs, drop);
        let q = q.view([b, t, h, d]); // (B, T, H, D)
        let k = k.view([b, t, kv, d]); // (B, T, KV, D)
        let v = v.view([b, t, kv, d]); // (B, T, KV, D)
                                       // Qwen3 normalises each head before RoPE.
        let q = self
            .q_norm
            .as_ref()
            .map_or(q.shallow_clone(), |n| n.forward(&q));
        let k = self
            .k_norm
            .as_ref()
            .map_or(k.shallow_clone(), |n| n.forward(&k));
        let q = q.transpose(1, 2); // (B, H, T, D)
        let k = k.transpose(1, 2); // (B, KV, T, D)
        let v = v.transpose(1, 2); // (B, KV, T, D)
        let (q, k) = match docs {
            Some(l) => (
                rope.apply_at(&q, &l.positions),
                rope.apply_at(&k, &l.positions),
            ),
            None => (rope.apply(&q, t), rope.apply(&k, t)),
        };
        let scale = self.scale;
        let window_mask = self
            .sliding_window
            .filter(|&w| t > w)
            .map(|w| sliding_window_mask(t, w, xs.device()));
        // Packed rows: block-diagonal causal, (B, 1, T, T), true = masked.
        let window_mask = match (docs, window_mask) {
            (Some(l), Some(w)) => Some(l.mask.logical_or(&w)),
            (Some(l), None) => Some(l.mask.shallow_clone()),
            (None, w) => w,
        };
        if attn == AttentionImpl::Sdpa && window_mask.is_none() && h != kv && sdpa_gqa(xs) {
            // SDPA's own GQA (`enable_gqa`): K and V stay (B, KV, T, D), no repeated copies.
            let y = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                true,
                scale,
                true,
            ); // (B, H, T, D)
            let y = y.transpose(1, 2).contiguous().view([b, t, h * d]); // (B, T, H·D)
            return self.o_proj.forward(&y, drop);
        }
        // GQA: KV head j serves query heads j·H/KV … (j+1)·H/KV − 1 (HF repeat_kv).
        let k = repeat_kv(&k, h / kv); // (B, H, T, D)
        let v = repeat_kv(&v, h / kv); // (B, H, T, D)
        let y = match (attn, &window_mask) {
            (AttentionImpl::Sdpa, None) => Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                true,
                scale,
                false,
            ),
            (AttentionImpl::Sdpa, Some(m)) => Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(m.logical_not()),
                0.0,
                false,
                scale,
                false,
            ),
            (AttentionImpl::Eager, m) => {
                let masked = m
                    .as_ref()
                    .map_or_else(|| causal_mask(t, xs.device()), |m| m.shallow_clone());
                let mut scores = q.matmul(&k.transpose(2, 3)) * scale; // (B, H, T, T)
                if let Some(cap) = self.softcap {
                    scores = gemma::softcap(&scores, cap);
                }
                let scores = scores.masked_fill(&masked, f64::NEG_INFINITY);
                let probs = scores.softmax(-1, Kind::Float).to_kind(q.kind());
                probs.matmul(&v) // (B, H, T, D)
            }
        }; // (B, H, T, D)
        let y = y.transpose(1, 2).contiguous().view([b, t, h * d]); // (B, T, H·D)
        self.o_proj.forward(&y, drop) // (B, T, C)
    }
}

/// Whether SDPA gets K/V with KV heads and `enable_gqa` (as transformers 5 calls it without a
/// mask) instead of repeated heads. Only on CUDA, and only with `TUNEBRIDGE_SDPA_GQA=1` for
/// now (an experiment of the benchmark); CPU runs keep the path the goldens were matched on.
fn sdpa_gqa(xs: &Tensor) -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    xs.device().is_cuda()
        && *ON.get_or_init(|| std::env::var("TUNEBRIDGE_SDPA_GQA").is_ok_and(|v| v == "1"))
}

/// (B, KV, T, D) → (B, KV·n, T, D), each KV head repeated n times in place.
fn repeat_kv(xs: &Tensor, n: i64) -> Tensor {
    if n == 1 {
        return xs.shallow_clone();
    }
    let (b, kv, t, d) = xs.size4().expect("kv is (B, KV, T, D)");
    xs.unsqueeze(2)
        .expand([b, kv, n, t, d], false)
        .reshape([b, kv * n, t, d])
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    /// Llama: the norm before the MLP; Gemma: the norm of the attention's output.
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
    /// Gemma's sandwich: norms before and after the MLP.
    feedforward_norms: Option<(RmsNorm, RmsNorm)>,
    /// Gemma 3: a local layer (its own RoPE θ).
    local: bool,
}

impl DecoderLayer {
    /// Decoder layer `i`, named `p` (`model.layers.{i}`).
    fn new(cfg: &Config, w: &mut Weights, p: &str, i: usize) -> Result<Self> {
        let c = cfg.hidden_size;
        let input_layernorm = RmsNorm::new(cfg, w, &format!("{p}.input_layernorm"), c)?;
        let self_attn = Attention::new(cfg, w, p, i)?;
        let post_attention_layernorm =
            RmsNorm::new(cfg, w, &format!("{p}.post_attention_layernorm"), c)?;
        let mlp = Mlp::new(cfg, w, p)?;
        let feedforward_norms = match cfg.gemma {
            Some(_) => Some((
                RmsNorm::new(cfg, w, &format!("{p}.pre_feedforward_layernorm"), c)?,
                RmsNorm::new(cfg, w, &format!("{p}.post_feedforward_layernorm"), c)?,
            )),
            None => None,
        };
        Ok(DecoderLayer {
            input_layernorm,
            self_attn,
            post_attention_layernorm,
            mlp,
            feedforward_norms,
            local: cfg.gemma.as_ref().is_some_and(|g| g.local_layers[i]),
        })
    }

    /// Module `m`, if this layer has it (Llama's split or Phi-3's fused modules).
    fn linear(&self, m: LayerLinear) -> Option<&Linear> {
        let (a, mlp) = (&self.self_attn, &self.mlp);
        match (m, &a.qkv, &mlp.gate_up) {
            (LayerLinear::QProj, QkvProj::Split { q_proj, .. }, _) => Some(q_proj),
            (LayerLinear::KProj, QkvProj::Split { k_proj, .. }, _) => Some(k_proj),
            (LayerLinear::VProj, QkvProj::Split { v_proj, .. }, _) => Some(v_proj),
            (LayerLinear::QkvProj, QkvProj::Fused { qkv_proj, .. }, _) => Some(qkv_proj),
            (LayerLinear::OProj, _, _) => Some(&a.o_proj),
            (LayerLinear::GateProj, _, GateUpProj::Split { gate_proj, .. }) => Some(gate_proj),
            (LayerLinear::UpProj, _, GateUpProj::Split { up_proj, .. }) => Some(up_proj),
            (LayerLinear::GateUpProj, _, GateUpProj::Fused { gate_up_proj, .. }) => {
                Some(gate_up_proj)
            }
            (LayerLinear::DownProj, _, _) => Some(&mlp.down_proj),
            _ => None,
        }
    }

    fn linear_mut(&mut self, m: LayerLinear) -> Option<&mut Linear> {
        let (a, mlp) = (&mut self.self_attn, &mut self.mlp);
        match (m, &mut a.qkv, &mut mlp.gate_up) {
            (LayerLinear::QProj, QkvProj::Split { q_proj, .. }, _) => Some(q_proj),
            (LayerLinear::KProj, QkvProj::Split { k_proj, .. }, _) => Some(k_proj),
            (LayerLinear::VProj, QkvProj::Split { v_proj, .. }, _) => Some(v_proj),
            (LayerLinear::QkvProj, QkvProj::Fused { qkv_proj, .. }, _) => Some(qkv_proj),
            (LayerLinear::OProj, _, _) => Some(&mut a.o_proj),
            (LayerLinear::GateProj, _, GateUpProj::Split { gate_proj, .. }) => Some(gate_proj),
            (LayerLinear::UpProj, _, GateUpProj::Split { up_proj, .. }) => Some(up_proj),
            (LayerLinear::GateUpProj, _, GateUpProj::Fused { gate_up_proj, .. }) => {
                Some(gate_up_proj)
            }
            (LayerLinear::DownProj, _, _) => Some(&mut mlp.down_proj),
            _ => None,
        }
    }

    /// Every parameter of the layer under `p` (`model.layers.{i}`), in checkpoint order:
    /// the linears (Qwen3's q/k norms right after the attention's), then the two norms.
    /// `modules`: [`LayerLinear::of`] the model's config.
    fn push_params(&self, p: &str, modules: &[LayerLinear], out: &mut Vec<(String, Tensor)>) {
        let a = &self.self_attn;
        for &m in modules {
            let Some(lin) = self.linear(m) else { continue };
            lin.push_params(&format!("{p}.{}", m.path()), out);
            if m == LayerLinear::OProj {
                for (n, norm) in [
                    ("self_attn.q_norm", &a.q_norm),
                    ("self_attn.k_norm", &a.k_norm),
                ] {
                    if let Some(norm) = norm {
                        out.push((format!("{p}.{n}.weight"), norm.weight.shallow_clone()));
                    }
                }
            }
        }
        out.push((
            format!("{p}.input_layernorm.weight"),
            self.input_layernorm.weight.shallow_clone(),
        ));
        out.push((
            format!("{p}.post_attention_layernorm.weight"),
            self.post_attention_layernorm.weight.shallow_clone(),
        ));
        if let Some((pre, post)) = &self.feedforward_norms {
            for (n, norm) in [
                ("pre_feedforward_layernorm", pre),
                ("post_feedforward_layernorm", post),
            ] {
                out.push((format!("{p}.{n}.weight"), norm.weight.shallow_clone()));
            }
        }
    }

    fn forward(
        &self,
        xs: &Tensor,
        rope: &RotaryEmbedding,
        attn: AttentionImpl,
        drop: &Dropout,
        docs: Option<&DocLayout>,
    ) -> Tensor {
        let h = self.input_layernorm.forward(xs);
        let a = self.self_attn.forward(&h, rope, attn, drop, docs); // (B, T, C)
        if let Some((pre, post)) = &self.feedforward_norms {
            // Gemma: x + norm(attn(norm(x))), then x + norm(mlp(norm(x))).
            let xs = xs + self.post_attention_layernorm.forward(&a);
            let m = self.mlp.forward(&pre.forward(&xs), drop);
            return &xs + post.forward(&m); // (B, T, C)
        }
        let xs = xs + a; // (B, T, C)
        let h = self.post_attention_layernorm.forward(&xs);
        &xs + self.mlp.forward(&h, drop) // (B, T, C)
    }
}

/// The decoder stack without its output head: tokens → final normed hidden states.
struct Model {
    embed_tokens: Tensor, // (V, C)
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rotary: RotaryEmbedding,
    /// Gemma 3's local layers' RoPE.
    rotary_local: Option<RotaryEmbedding>,
    /// Gemma: √C as transformers holds it (0-dim, the weights' dtype).
    embed_scale: Option<Tensor>,
}

/// A causal language model: `Model` plus `lm_head` (tied to `embed_tokens` or its own).
pub struct ModelForCausalLM {
    pub config: Config,
    model: Model,
    /// `None` when tied: logits = h · embed_tokensᵀ.
    lm_head: Option<Linear>, // (C → V)
    pub attention: AttentionImpl,
}

impl ModelForCausalLM {
    /// Build from checkpoint weights (already converted to the compute dtype and device).
    /// Every tensor is consumed by name; leftovers are reported by the caller.
    pub fn new(cfg: Config, w: &mut Weights, attention: AttentionImpl) -> Result<Self> {
        let (v, c) = (cfg.vocab_size, cfg.hidden_size);
        let embed_tokens = w.take("model.embed_tokens.weight", &[v, c])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            layers.push(DecoderLayer::new(&cfg, w, &format!("model.layers.{i}"), i)?);
        }
        let norm = RmsNorm::new(&cfg, w, "model.norm", c)?;
        // Tied unless the checkpoint carries its own head (qwen2.rs probes the same way).
        let lm_head = if w.contains("lm_head.weight") {
            Some(w.linear("lm_head", c, v, false)?)
        } else if cfg.tie_word_embeddings {
            None
        } else {
            return Err(EngineError::tensor(
                "lm_head.weight",
                "missing, and config.json does not tie the embeddings",
            ));
        };
        let rotary = RotaryEmbedding::new(&cfg, embed_tokens.device());
        let rotary_local = RotaryEmbedding::local(&cfg, embed_tokens.device());
        let embed_scale = cfg
            .gemma
            .as_ref()
            .map(|_| gemma::embed_scale(c, &embed_tokens));
        Ok(ModelForCausalLM {
            model: Model {
                embed_tokens,
                layers,
                norm,
                rotary,
                rotary_local,
                embed_scale,
            },
            lm_head,
            attention,
            config: cfg,
        })
    }

    /// input_ids (B, T) int64 → final hidden states (B, T, C), before the output head.
    /// `docs`: the packed-row layout of the batch, `None` for ordinary causal rows.
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        docs: Option<&DocLayout>,
        train: bool,
    ) -> Tensor {
        self.final_norm(&self.decoder(input_ids, docs, &Dropout::train(train)))
    }

    /// input_ids (B, T) int64 → the last decoder layer's output (B, T, C), before the final norm.
    pub fn decoder(&self, input_ids: &Tensor, docs: Option<&DocLayout>, drop: &Dropout) -> Tensor {
        let mut xs = self.embed(input_ids); // (B, T, C)
        for i in 0..self.num_layers() {
            xs = self.layer_forward(i, &xs, docs, drop);
        }
        xs
    }

    /// input_ids (B, T) int64 → token embeddings (B, T, C).
    pub fn embed(&self, input_ids: &Tensor) -> Tensor {
        let e = Tensor::embedding(&self.model.embed_tokens, input_ids, -1, false, false);
        match &self.model.embed_scale {
            Some(scale) => e * scale, // Gemma: · √C
            None => e,
        }
    }

    /// Whether the embedding table trains (full fine-tune).
    pub fn embed_requires_grad(&self) -> bool {
        self.model.embed_tokens.requires_grad()
    }

    pub fn num_layers(&self) -> usize {
        self.model.layers.len()
    }

    /// Decoder layer `i`: (B, T, C) → (B, T, C), over packed rows laid out as `docs` if any.
    pub fn layer_forward(
        &self,
        i: usize,
        xs: &Tensor,
        docs: Option<&DocLayout>,
        drop: &Dropout,
    ) -> Tensor {
        let m = &self.model;
        let layer = &m.layers[i];
        let rope = match &m.rotary_local {
            Some(local) if layer.local => local,
            _ => &m.rotary,
        };
        layer.forward(xs, rope, self.attention, drop, docs)
    }

    /// The final RMSNorm, row by row: (…, C) → (…, C).
    pub fn final_norm(&self, xs: &Tensor) -> Tensor {
        let h = self.model.norm.forward(xs);
        match self.config.gemma.as_ref() {
            // TorchTune's Gemma2FinalNorm: c·tanh(norm(x) / c), the head then uncapped
            Some(g) if g.final_softcap_on_hidden => match g.final_softcap {
                Some(cap) => gemma::softcap(&h, cap),
                None => h,
            },
            _ => h,
        }
    }

    /// hidden (…, C) → logits (…, V).
    pub fn lm_head(&self, hidden: &Tensor, train: bool) -> Tensor {
        self.lm_head_with(hidden, &Dropout::train(train))
    }

    /// hidden (…, C) → logits (…, V), with LoRA dropout as `drop` says.
    pub fn lm_head_with(&self, hidden: &Tensor, drop: &Dropout) -> Tensor {
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden, drop),
            None => hidden.linear::<Tensor>(&self.model.embed_tokens, None),
        };
        let capped = self
            .config
            .gemma
            .as_ref()
            .filter(|g| !g.final_softcap_on_hidden);
        match capped.and_then(|g| g.final_softcap) {
            Some(cap) => gemma::softcap(&logits, cap), // Gemma 2: c·tanh(logits / c)
            None => logits,
        }
    }

    /// input_ids (B, T) → logits (B, T, V); `docs` as in [`Self::hidden_states`].
    pub fn forward(&self, input_ids: &Tensor, docs: Option<&DocLayout>, train: bool) -> Tensor {
        self.lm_head(&self.hidden_states(input_ids, docs, train), train)
    }

    /// Every parameter with its checkpoint name, in checkpoint order (LoRA tensors under
    /// `<module>.lora_A.weight` / `.lora_B.weight`). Tied heads appear once, as the embedding.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            self.model.embed_tokens.shallow_clone(),
        )];
        for (i, l) in self.model.layers.iter().enumerate() {
            l.push_params(
                &format!("model.layers.{i}"),
                LayerLinear::of(&self.config),
                &mut out,
            );
        }
        out.push((
            "model.norm.weight".into(),
            self.model.norm.weight.shallow_clone(),
        ));
        if let Some(head) = &self.lm_head {
            head.push_params("lm_head", &mut out);
        }
        out
    }

    /// Call `f` on every linear layer with its HF module name, layer by layer in
    /// [`LayerLinear::of`] order, then `lm_head` (untied).
    pub fn for_each_linear_mut(
        &mut self,
        mut f: impl FnMut(&str, &mut Linear) -> Result<()>,
    ) -> Result<()> {
        let modules = LayerLinear::of(&self.config);
        for (i, l) in self.model.layers.iter_mut().enumerate() {
            for &m in modules {
                if let Some(lin) = l.linear_mut(m) {
                    f(&format!("model.layers.{i}.{}", m.path()), lin)?;
                }
            }
        }
        if let Some(head) = &mut self.lm_head {
            f("lm_head", head)?;
        }
        Ok(())
    }

    /// Store every decoder linear quantised (NF4 for QLoRA, LLM.int8 for `load_in_8bit`),
    /// bitsandbytes-compatible. The output head stays dense, as transformers' bitsandbytes
    /// integration keeps `lm_head` in 16 bits; so do modules named in `skip`. Returns how
    /// many were quantised.
    pub fn quantize_linears(&mut self, format: QuantFormat, skip: &[String]) -> Result<usize> {
        let mut n = 0;
        self.for_each_linear_mut(|name, lin| {
            let last = name.rsplit('.').next().unwrap_or(name);
            if name == "lm_head" || skip.iter().any(|s| s == last || *s == name) {
                return Ok(());
            }
            match format {
                QuantFormat::Nf4 { double_quant } => lin.quantize(double_quant)?,
                QuantFormat::Int8 { threshold } => lin.quantize_int8(threshold)?,
            }
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    pub fn has_tied_head(&self) -> bool {
        self.lm_head.is_none()
    }
}
