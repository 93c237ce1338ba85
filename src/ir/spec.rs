//! `RunSpec`: the one explicit intermediate representation of a fine-tuning run.
//!
//! Every choice that changes the numbers is a field with a value, never "whatever the
//! framework does". Readers fill each framework's documented defaults in explicitly; where
//! each value came from lives beside the spec in [`super::Provenance`], keyed by the field's
//! dotted path (`adapter.alpha`). Names are ours and say what they count
//! (`micro_batch_per_device`, `grad_accum_steps`), never a bare `batch_size`.
//!
//! Left out on purpose: RL objectives (DPO, GRPO, …), reward models and vision towers. Readers
//! refuse those with a `not supported` error instead of half-representing them.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::kinds::{
    AcrossRanks, AdapterInit, Attention, BaseWeights, Bias, DatasetFormat, Dtype, Loader, LossKind,
    LossNormalization, LrReported, Method, Overlong, PrecisionMode, Recompute, ScheduleKind,
    Strategy, Tracker,
};

/// Version of the `run.toml` schema written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// One fine-tuning run, framework-neutral. Serialised as `run.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub schema: u32,
    pub model: Model,
    pub quantization: Quantization,
    pub adapter: Adapter,
    pub data: Data,
    pub batch: Batch,
    pub training: Training,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub loss: Loss,
    pub precision: Precision,
    pub memory: Memory,
    pub parallel: Parallel,
    pub checkpoint: Checkpoint,
    pub logging: Logging,
    /// Source keys that tunebridge read but cannot express in the IR, kept verbatim
    /// (`"axolotl.neftune_noise_alpha" = 5`). Only the same framework writes them back;
    /// every other target reports them as not expressible.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub passthrough: IndexMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Hub id or local folder of the base weights, as the user wrote it.
    pub base: String,
    /// Architecture family and version (`llama3_2`, `qwen2_5`, `mistral`, …); see
    /// `translators/families.toml`. Drives TorchTune builders and chat framing.
    pub family: String,
    /// Parameter-count tag (`1B`, `8B`, `0.5B`) where known, else empty.
    #[serde(default)]
    pub size: String,
    /// Tokenizer location; usually the same as `base`.
    pub tokenizer: String,
    /// Chat template used to frame conversations: `tokenizer_default`, a named template
    /// (`chatml`, `llama3`, `qwen_25`, …), `jinja` (an inline template kept in
    /// `passthrough`) or `none`.
    pub chat_template: String,
    /// Special tokens the run overrides or adds (`pad_token = "<|pad|>"`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub special_tokens: IndexMap<String, String>,
    /// `eager`, `sdpa`, `flash_attention_2`, `flex_attention`. Affects numerics slightly
    /// and packing semantics strongly.
    pub attention: Attention,
    pub trust_remote_code: bool,
}

/// How the frozen base weights are stored during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantization {
    /// `none`, `nf4` (QLoRA: bitsandbytes 4-bit NormalFloat), `fp4`, `int8`.
    pub base_weights: BaseWeights,
    /// bitsandbytes double quantisation of the absmax statistics.
    pub double_quant: bool,
    /// Block size of the 4-bit quantiser (bitsandbytes default 64).
    pub block_size: u32,
    /// Modules kept in 16 bits (`lm_head`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_modules: Vec<String>,
}

/// The trained parameters: LoRA adapters (possibly on a quantised base) or all weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adapter {
    /// `lora`, `qlora` (LoRA over 4-bit NF4 base weights) or `full`.
    pub method: Method,
    /// LoRA rank r.
    pub rank: u32,
    /// LoRA alpha; the update is scaled by alpha/r (alpha/√r with rsLoRA).
    pub alpha: f64,
    pub dropout: f64,
    /// Hugging Face module names the adapters wrap (`q_proj`, …, `down_proj`). Resolved:
    /// "all linear layers" is spelled out per family.
    pub target_modules: Vec<String>,
    /// Whether `target_modules` was given as "every linear layer" (Axolotl
    /// `lora_target_linear`, PEFT `all-linear`) rather than listed.
    pub target_all_linear: bool,
    /// `none`, `all`, `lora_only` (PEFT `bias`).
    pub bias: Bias,
    pub use_rslora: bool,
    pub use_dora: bool,
    /// Modules trained in full next to the adapters (`embed_tokens`, `lm_head`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules_to_save: Vec<String>,
    /// `kaiming_uniform` (PEFT `init_lora_weights=True`: A ~ U(±1/√in), B = 0), `gaussian`, …
    pub init: AdapterInit,
    /// Seed drawn right before adapter init (Unsloth `random_state`), if the framework
    /// seeds it separately from the run seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_seed: Option<u64>,
    /// dtype the trainable adapter weights and their optimizer state live in:
    /// `fp32` (PEFT autocast, Axolotl/Unsloth) or `bf16` (TorchTune pure bf16).
    pub weight_dtype: Dtype,
    /// Start from this adapter instead of a fresh init (Axolotl `lora_model_dir`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub init_from: String,
    /// Fused LoRA kernels (Axolotl `lora_*_kernel`, Unsloth's fast path). Numerically
    /// close but not bit-equal to the reference LoRA path.
    pub fused_kernels: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    pub datasets: Vec<Dataset>,
    /// Maximum tokens per sample.
    pub sequence_len: u32,
    /// What happens to a sample longer than `sequence_len`: `drop`, `truncate`, `split`.
    pub overlong: Overlong,
    /// Compute loss on prompt tokens too (Axolotl `train_on_inputs`, TorchTune
    /// `train_on_input`); false masks them with -100.
    pub train_on_inputs: bool,
    /// Append the EOS token after the response.
    pub add_eos: bool,
    /// Prepend the BOS token to each sample.
    pub add_bos: bool,
    /// Concatenate samples into full rows (multipack / TorchTune `packed`).
    pub packing: bool,
    /// Batches flattened without padding (TRL `padding_free`, Unsloth's default).
    pub padding_free: bool,
    /// Shuffle the training samples each epoch.
    pub shuffle: bool,
    /// Seed of the data order. TorchTune uses a fixed sampler seed (0) independent of the
    /// run seed; HF-based stacks use the run seed.
    pub shuffle_seed: u64,
    /// Fraction (≤ 1) or row count (> 1) held out for validation.
    pub val_size: f64,
    /// Drop rows whose labels are all masked (Unsloth `train_on_responses_only`).
    pub drop_fully_masked: bool,
    /// Drop each epoch's last incomplete micro-batch (TorchTune's DataLoader and Axolotl's
    /// multipack sampler do; HF Trainer's default `dataloader_drop_last` does not). Changes the
    /// step count and which samples train. Written to `run.toml` only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_last: bool,
}

/// One dataset and how its rows become token sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Hub id, local file or folder.
    pub path: String,
    /// File loader when `path` is a file or a generic builder: `json`, `parquet`, `csv`,
    /// `text`, or empty for a hub dataset.
    #[serde(default, skip_serializing_if = "Loader::is_hub")]
    pub loader: Loader,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_files: Vec<String>,
    /// HF dataset config name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub split: String,
    /// `alpaca`, `chat_template`, `completion`, `input_output`, `instruct` (user-defined
    /// columns and prompt format).
    pub format: DatasetFormat,
    /// Exact prompt framing for instruction formats; see `translators/prompts.toml`
    /// (`alpaca` = the Stanford Alpaca strings, `alpaca_chat` = wrapped as a chat turn …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt_style: String,
    /// Column mapping, e.g. `instruction = "question"`, `messages = "conversations"`,
    /// `text = "content"`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub columns: IndexMap<String, String>,
    /// For `instruct`: prompt format strings (`format`, `no_input_format`, `system_format`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub templates: IndexMap<String, String>,
    /// For chat datasets: roles whose turns are trained on (`["assistant"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles_to_train: Vec<String>,
    /// Marker strings that delimit responses when masking by text (Unsloth
    /// `train_on_responses_only(instruction_part=…, response_part=…)`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub response_markers: IndexMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Samples per device per forward pass.
    pub micro_batch_per_device: u32,
    /// Micro-batches summed into one optimizer step.
    pub grad_accum_steps: u32,
    /// Data-parallel devices (GPUs) the run is planned for.
    pub devices: u32,
    /// Samples per optimizer step = micro_batch_per_device × grad_accum_steps × devices.
    /// Derived; validation checks it.
    pub global_batch: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    pub epochs: f64,
    /// Stop after this many optimizer steps (0 = run the epochs out).
    pub max_steps: u64,
    /// TorchTune `max_steps_per_epoch` (0 = no cap).
    pub max_steps_per_epoch: u64,
    /// Seed of torch/numpy/random (LoRA init, dropout, HF data order).
    pub seed: u64,
    /// Evaluate on the held-out rows (`data.val_size`) after every optimizer step whose
    /// number is a multiple of this (HF `eval_strategy="steps"` + `eval_steps`); 0 = only
    /// after the last step. Does not change training.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub eval_every_n_steps: u64,
    /// Also evaluate before the first step (HF `eval_on_start`, which Axolotl sets whenever
    /// `eval_steps` or `eval_strategy` is given).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eval_on_start: bool,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    /// `adamw` (torch AdamW), `adamw_fused`, `adamw_8bit` (bitsandbytes), `paged_adamw_8bit`,
    /// `paged_adamw_32bit`, `adamw_8bit_torchao`, `adamw_4bit_torchao`, `adamw_fp8_torchao`,
    /// `adam`, `sgd`, `adafactor`, `lion`, `paged_lion`; rarer optimizers keep the source's
    /// own name (`muon`, `came`) and are reported where a target lacks them.
    pub name: String,
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this value; 0 = no clipping.
    pub max_grad_norm: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// `cosine`, `linear`, `constant`, `constant_with_warmup`, `cosine_with_min_lr`, …
    pub kind: ScheduleKind,
    /// Linear warmup from 0 over this many optimizer steps. Resolved from a ratio where the
    /// source gave one (see `warmup_ratio`).
    pub warmup_steps: u64,
    /// The ratio the source gave, kept because frameworks floor it against different step
    /// estimates; 0 when the source gave steps.
    pub warmup_ratio: f64,
    /// Cosine cycles (HF/TorchTune `num_cycles`, 0.5 = half a cosine to 0).
    pub num_cycles: f64,
    /// Floor of the schedule as a fraction of the peak LR.
    pub min_lr_ratio: f64,
}

/// How token losses become the scalar that is back-propagated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    /// `token_mean_over_step`: Σ token CE over every micro-batch of the optimizer step,
    /// divided by the step's label-token count (HF ≥ 4.46 / TRL, Unsloth).
    /// `mean_of_microbatch_means`: each micro-batch's token mean, averaged (HF < 4.46, and
    /// Axolotl 0.19 under transformers 5 as measured).
    /// `token_weighted_unshifted`: each micro-batch's token mean weighted by its label count
    /// counted *before* the shift (TorchTune 0.6.1 recipes), normalised by the step's total.
    pub normalization: LossNormalization,
    /// Across data-parallel ranks: `global_tokens` (TorchTune, HF with
    /// `average_tokens_across_devices`) or `mean_of_ranks`.
    pub across_ranks: AcrossRanks,
    /// `cross_entropy`, `chunked_cross_entropy` (TorchTune), `cut_cross_entropy` or
    /// `fused_linear_cross_entropy` (Axolotl plugins): the same value up to rounding,
    /// different memory.
    pub kind: LossKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precision {
    /// Dtype of the forward/backward math: `bf16`, `fp16`, `fp32`.
    pub compute_dtype: Dtype,
    /// `autocast` (fp32 master weights, HF AMP) or `pure` (whole model in the compute
    /// dtype, TorchTune).
    pub mode: PrecisionMode,
    /// TF32 matmuls for fp32 math on Ampere+.
    pub tf32: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Activation recomputation: `off`, `on`, `offload` (Unsloth: recompute with CPU offload).
    pub gradient_checkpointing: Recompute,
    pub activation_offloading: bool,
    /// torch.compile of the model / loss.
    pub compile: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parallel {
    /// `single`, `ddp`, `fsdp1`, `fsdp2`, `deepspeed`.
    pub strategy: Strategy,
    /// DeepSpeed ZeRO stage when `strategy = "deepspeed"` (0 otherwise).
    pub zero_stage: u32,
    /// DeepSpeed JSON config path, as given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deepspeed_config: String,
    /// Offload parameters (FSDP `offload_params`, ZeRO-3 offload) to CPU.
    pub cpu_offload: bool,
    /// Re-shard parameters after forward (FSDP full shard) or keep them (ZeRO-2 style).
    pub reshard_after_forward: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub output_dir: String,
    /// Save every N optimizer steps; 0 = once per epoch.
    pub save_steps: u64,
    /// Keep at most this many checkpoints; 0 = all.
    pub save_total_limit: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resume_from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    pub every_n_steps: u64,
    /// Which LR a log line shows: `applied` (HF: the LR the logged step used) or `next`
    /// (TorchTune: read after `scheduler.step()`, so the next step's LR).
    pub lr_reported: LrReported,
    /// Experiment tracker: `none`, `wandb`, `tensorboard`, `mlflow`.
    pub tracker: Tracker,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
}
