//! A run in tunebridge's common form, and its parts: the layout it was read from, the loss
//! curve, the precision, and where its weights are (adapter config and attention shape included).

use serde::Serialize;
use std::path::PathBuf;

/// The on-disk layouts tunebridge reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A tunebridge run directory (`run.toml`, `metrics.jsonl`, adapter files).
    Tunebridge,
    /// A Hugging Face Trainer output: Axolotl, Unsloth, TRL (`trainer_state.json`).
    #[value(alias = "axolotl", alias = "unsloth", alias = "trl")]
    Hf,
    /// A TorchTune output (`logs/log_*.txt`, `epoch_N/`).
    Torchtune,
    /// A CSV curve with a header row (`step,loss,…`).
    Csv,
    /// A JSONL curve, one `{"step": …, "loss": …}` object per line.
    Jsonl,
    /// Weights only: a safetensors file, a sharded index, or an adapter folder.
    Weights,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Tunebridge => "tunebridge",
            Format::Hf => "hf",
            Format::Torchtune => "torchtune",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Weights => "weights",
        })
    }
}

/// One logged optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Optimizer step, 1-based as every framework logs it.
    pub step: u64,
    pub loss: f64,
    pub lr: Option<f64>,
    pub grad_norm: Option<f64>,
    /// Input tokens seen so far (cumulative, padding included where the framework counts it).
    pub tokens: Option<f64>,
    pub epoch: Option<f64>,
}

/// One evaluation on the held-out rows: HF `eval_loss` in `log_history`, or an engine
/// `metrics.jsonl` row with `eval_loss`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalPoint {
    /// The optimizer step it ran after; 0 = before the first step (HF `eval_on_start`).
    pub step: u64,
    pub loss: f64,
}

/// A loss curve and the file it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub source: PathBuf,
    /// Sorted by step, one point per step.
    pub points: Vec<CurvePoint>,
    /// The rounding step of the logged losses when the writer rounded them
    /// (older transformers logged `round(loss, 4)`), so comparisons allow for it.
    pub quantum: Option<f64>,
    /// Evaluations, sorted by step, one per step (empty when the run logged none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub eval: Vec<EvalPoint>,
}

/// The precision a run trained in, as far as its files say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Tf32,
    Bf16,
    Fp16,
    Unknown,
}

impl Precision {
    /// Parse a dtype spelling as configs write it (`bf16`, `bfloat16`, `torch.float32`, …).
    pub fn parse(s: &str) -> Option<Precision> {
        let s = s.trim().trim_start_matches("torch.").to_ascii_lowercase();
        Some(match s.as_str() {
            "fp32" | "float32" | "float" | "f32" | "32" | "no" => Precision::Fp32,
            "tf32" => Precision::Tf32,
            "bf16" | "bfloat16" | "bf16-mixed" | "bf16_mixed" => Precision::Bf16,
            "fp16" | "float16" | "half" | "f16" | "16" | "16-mixed" => Precision::Fp16,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Unknown => "unknown",
        })
    }
}

/// How the tensor names and q/k row layout of a weight file were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightOrigin {
    /// PEFT / Hugging Face names and layout (also tunebridge's own files).
    Peft,
    /// TorchTune module names (`layers.0.attn.q_proj.lora_a.weight`), TorchTune q/k layout.
    TorchtuneNative,
    /// TorchTune's PEFT export (`epoch_N/adapter_model.safetensors`): PEFT names, but q/k
    /// `lora_B` rows permuted by `tune_to_peft_adapter_weights` for every model type.
    TorchtunePeftExport,
}

/// LoRA settings from `adapter_config.json` (PEFT or TorchTune's reduced form).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterConfig {
    pub source: PathBuf,
    pub r: u32,
    pub lora_alpha: f64,
    pub use_rslora: bool,
    pub use_dora: bool,
    pub target_modules: Vec<String>,
    /// Per-module rank overrides (PEFT `rank_pattern`), keys as written.
    pub rank_pattern: Vec<(String, u32)>,
    /// Per-module alpha overrides (PEFT `alpha_pattern`).
    pub alpha_pattern: Vec<(String, f64)>,
}

impl AdapterConfig {
    /// The LoRA scale of a module: α/r, or α/√r with rsLoRA (PEFT `LoraLayer.update_layer`).
    /// `rank` is the rank the tensors actually have.
    pub fn scale(&self, module: &str, rank: usize) -> f64 {
        let alpha = pattern_lookup(&self.alpha_pattern, module).unwrap_or(self.lora_alpha);
        let r = if rank > 0 { rank as f64 } else { self.r as f64 };
        if self.use_rslora {
            alpha / r.sqrt()
        } else {
            alpha / r
        }
    }
}

/// PEFT matches pattern keys against the end of the module name at a `.` boundary.
fn pattern_lookup<T: Copy>(patterns: &[(String, T)], module: &str) -> Option<T> {
    patterns
        .iter()
        .find(|(k, _)| module == k || module.ends_with(&format!(".{k}")))
        .map(|(_, v)| *v)
}

/// Attention shape, needed to undo TorchTune's per-head q/k row permutation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelShape {
    /// `llama`, `qwen2`, … as the config names it.
    pub family: String,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// Where the numbers came from.
    pub source: PathBuf,
}

impl ModelShape {
    /// Qwen 2/2.5/3 rotate halves in TorchTune as in HF, so TorchTune never permutes their q/k
    /// weights (torchtune `models/qwen2/_convert_weights.py`); Llama-style families do.
    pub fn torchtune_permutes_qk(&self) -> bool {
        !self.family.to_ascii_lowercase().contains("qwen")
    }
}

/// The weights a run left: one file, or the shards of a sharded checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct WeightSource {
    pub files: Vec<PathBuf>,
    pub origin: WeightOrigin,
    pub adapter_config: Option<AdapterConfig>,
    pub model: Option<ModelShape>,
}

/// A run in tunebridge's common form.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub root: PathBuf,
    pub format: Format,
    pub curve: Option<Curve>,
    pub precision: Precision,
    /// Where the precision was read from.
    pub precision_source: Option<String>,
    pub weights: Option<WeightSource>,
    /// Things a reader noticed that a user should know (duplicate steps, rounding, choices made).
    pub notes: Vec<String>,
}

impl Run {
    /// A short name for tables and legends: the folder or file name.
    pub fn label(&self) -> String {
        let p = if self.root.is_file()
            || self.root.file_name().is_some_and(|n| n == "." || n == "..")
        {
            self.root
                .canonicalize()
                .unwrap_or_else(|_| self.root.clone())
        } else {
            self.root.clone()
        };
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    }
}
