//! The closed sets of the IR: every field whose value readers, writers or the engine match on.
//!
//! Each set is an enum whose serde spelling is the `run.toml` spelling (`method = "qlora"`),
//! so a typo fails when the spec is read, with the allowed values and a location, instead of
//! deep inside a writer or the first training step. `Display` gives the same spelling.
//! Open sets (optimizer names, model families, chat templates, prompt styles, paths) stay
//! strings in [`super::spec`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A value that is not one of a closed set's spellings (from [`FromStr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSpelling {
    pub found: String,
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownSpelling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value `{}`, expected one of {}",
            self.found,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownSpelling {}

/// One closed set: the enum, its serde spellings, `as_str`, `SPELLINGS`, `Display` and
/// `FromStr`, all from one list so a spelling is written once.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $spelling:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $spelling)] $variant, )+
        }

        impl $name {
            /// Every spelling, in declaration order.
            pub const SPELLINGS: &'static [&'static str] = &[$($spelling),+];

            /// The `run.toml` spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $spelling, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownSpelling;
            fn from_str(s: &str) -> Result<Self, UnknownSpelling> {
                match s {
                    $( $spelling => Ok($name::$variant), )+
                    _ => Err(UnknownSpelling {
                        found: s.to_string(),
                        expected: Self::SPELLINGS,
                    }),
                }
            }
        }
    };
}

closed_set! {
    /// `adapter.method`: what trains.
    pub enum Method {
        /// LoRA adapters over 16-bit base weights (PEFT `LoraConfig`, TorchTune `lora_*` builders).
        Lora = "lora",
        /// LoRA over 4-bit NF4 base weights (Axolotl `adapter: qlora`, Unsloth `load_in_4bit`,
        /// TorchTune `qlora_*` builders).
        Qlora = "qlora",
        /// Every weight trains; no adapters.
        Full = "full",
    }
}

closed_set! {
    /// `quantization.base_weights`: how the frozen base weights are stored.
    pub enum BaseWeights {
        /// Unquantised, in the model dtype.
        None = "none",
        /// bitsandbytes / torchao 4-bit NormalFloat (QLoRA).
        Nf4 = "nf4",
        /// bitsandbytes 4-bit float (`bnb_4bit_quant_type: fp4`).
        Fp4 = "fp4",
        /// bitsandbytes LLM.int8 (Axolotl `load_in_8bit`, Unsloth `load_in_8bit`).
        Int8 = "int8",
    }
}

impl BaseWeights {
    /// NF4 or FP4: the storage QLoRA means.
    pub fn is_four_bit(self) -> bool {
        match self {
            BaseWeights::Nf4 | BaseWeights::Fp4 => true,
            BaseWeights::None | BaseWeights::Int8 => false,
        }
    }
}

closed_set! {
    /// `adapter.bias` (PEFT `bias`): which biases train next to the adapters.
    pub enum Bias {
        /// No bias trains (PEFT default; TorchTune's LoRALinear has none).
        None = "none",
        /// Every bias of the model trains.
        All = "all",
        /// Only the biases of the adapted layers train.
        LoraOnly = "lora_only",
    }
}

closed_set! {
    /// `adapter.init` (PEFT `init_lora_weights`): how the adapter pair starts.
    pub enum AdapterInit {
        /// A ~ Kaiming-uniform (a = √5), B = 0 (PEFT `True`, TorchTune `LoRALinear`).
        KaimingUniform = "kaiming_uniform",
        /// A ~ N(0, 1/r), B = 0 (PEFT `"gaussian"`).
        Gaussian = "gaussian",
        /// Principal singular vectors of the base weight (PEFT `"pissa"`).
        Pissa = "pissa",
        /// Orthonormal init from a QR of the base weight (PEFT `"olora"`).
        Olora = "olora",
        /// LoftQ: from the quantisation error (PEFT `"loftq"`).
        Loftq = "loftq",
        /// Explained-variance adaptation from activations (PEFT `"eva"`).
        Eva = "eva",
        /// Context-oriented decomposition (PEFT `"corda"`).
        Corda = "corda",
    }
}

closed_set! {
    /// A floating-point dtype: `precision.compute_dtype` and `adapter.weight_dtype`.
    pub enum Dtype {
        /// bfloat16.
        Bf16 = "bf16",
        /// IEEE half precision.
        Fp16 = "fp16",
        /// IEEE single precision.
        Fp32 = "fp32",
    }
}

closed_set! {
    /// `data.overlong`: what happens to a sample longer than `sequence_len`.
    pub enum Overlong {
        /// The sample is left out (Axolotl's default `excess_length_strategy`).
        Drop = "drop",
        /// The sample is cut to `sequence_len` (TorchTune, HF/TRL).
        Truncate = "truncate",
        /// The sample is cut into several of `sequence_len`.
        Split = "split",
        /// The run stops with an error (Axolotl `excess_length_strategy: raise`).
        Raise = "raise",
    }
}

closed_set! {
    /// `data.datasets.N.format`: how a row becomes a prompt and a response.
    pub enum DatasetFormat {
        /// Stanford Alpaca columns (`instruction`, `input`, `output`) and prompt.
        Alpaca = "alpaca",
        /// Conversations framed by the chat template.
        ChatTemplate = "chat_template",
        /// Raw text, every token trained (Axolotl `completion`, TorchTune `text_completion`).
        Completion = "completion",
        /// Axolotl `input_output`: segments with their own `label` flag.
        InputOutput = "input_output",
        /// User-defined columns and prompt format strings (Axolotl's `type:` mapping,
        /// TorchTune `instruct_dataset`).
        Instruct = "instruct",
    }
}

closed_set! {
    /// `data.datasets.N.loader`: the `datasets` builder that reads a file, or the Hub.
    #[derive(Default)]
    pub enum Loader {
        /// A Hub dataset (or a folder): no builder named. Written as an absent key.
        #[default]
        Hub = "",
        /// JSON or JSON Lines.
        Json = "json",
        /// Comma-separated values.
        Csv = "csv",
        /// Apache Parquet.
        Parquet = "parquet",
        /// One sample per line.
        Text = "text",
        /// Axolotl reads a `.txt` path extension as this loader name.
        Txt = "txt",
        /// Arrow IPC files.
        Arrow = "arrow",
        /// Pickled pandas frames (Unsloth `load_dataset("pandas", …)`).
        Pandas = "pandas",
        /// WebDataset tar shards (TorchTune `source: webdataset`).
        Webdataset = "webdataset",
    }
}

impl Loader {
    /// `run.toml` leaves the key out for a Hub dataset (`skip_serializing_if`).
    pub fn is_hub(&self) -> bool {
        *self == Loader::Hub
    }
}

closed_set! {
    /// `loss.normalization`: how token losses of an optimizer step become one scalar.
    pub enum LossNormalization {
        /// Σ token CE over every micro-batch of the step / the step's label-token count
        /// (HF ≥ 4.46 / TRL, Unsloth).
        TokenMeanOverStep = "token_mean_over_step",
        /// Each micro-batch's token mean, averaged (HF < 4.46; Axolotl 0.19 under
        /// transformers 5 as measured).
        MeanOfMicrobatchMeans = "mean_of_microbatch_means",
        /// Each micro-batch's token mean weighted by its label count counted before the
        /// shift, normalised by the step's total (TorchTune 0.6.1 recipes).
        TokenWeightedUnshifted = "token_weighted_unshifted",
    }
}

closed_set! {
    /// `loss.across_ranks`: how data-parallel ranks combine their losses.
    pub enum AcrossRanks {
        /// Token counts summed over ranks (TorchTune; HF `average_tokens_across_devices`).
        GlobalTokens = "global_tokens",
        /// Each rank's mean, averaged (HF DDP default).
        MeanOfRanks = "mean_of_ranks",
    }
}

closed_set! {
    /// `loss.kind`: how the cross entropy is computed (same value up to rounding, different memory).
    pub enum LossKind {
        /// Plain cross entropy over the full logits.
        CrossEntropy = "cross_entropy",
        /// TorchTune `CEWithChunkedOutputLoss`.
        ChunkedCrossEntropy = "chunked_cross_entropy",
        /// Apple's Cut Cross-Entropy (Axolotl `CutCrossEntropyPlugin`).
        CutCrossEntropy = "cut_cross_entropy",
        /// Liger's fused linear cross entropy (Axolotl `LigerPlugin`).
        FusedLinearCrossEntropy = "fused_linear_cross_entropy",
    }
}

closed_set! {
    /// `precision.mode`: where the master weights live.
    pub enum PrecisionMode {
        /// fp32 master weights, math in the compute dtype (HF AMP).
        Autocast = "autocast",
        /// The whole model in the compute dtype (TorchTune).
        Pure = "pure",
    }
}

closed_set! {
    /// `memory.gradient_checkpointing`: activation recomputation.
    pub enum Recompute {
        /// Activations kept for backward.
        Off = "off",
        /// Each decoder layer recomputed in backward.
        On = "on",
        /// Recomputed, with the checkpoints offloaded to CPU (Unsloth `"unsloth"`, Axolotl
        /// `offload`).
        Offload = "offload",
    }
}

impl Recompute {
    /// Whether layers are recomputed in backward at all.
    pub fn is_on(self) -> bool {
        match self {
            Recompute::Off => false,
            Recompute::On | Recompute::Offload => true,
        }
    }
}

closed_set! {
    /// `parallel.strategy`: how several devices share the run.
    pub enum Strategy {
        /// One device.
        Single = "single",
        /// Data parallel, full replicas (torch DDP).
        Ddp = "ddp",
        /// FullyShardedDataParallel (FSDP1).
        Fsdp1 = "fsdp1",
        /// `fully_shard` (FSDP2; TorchTune's distributed recipes).
        Fsdp2 = "fsdp2",
        /// DeepSpeed ZeRO (stage in `parallel.zero_stage`).
        Deepspeed = "deepspeed",
    }
}

closed_set! {
    /// `schedule.kind`: the learning-rate schedule (HF `SchedulerType` names, plus Axolotl's own).
    pub enum ScheduleKind {
        /// Warmup, then half a cosine (`num_cycles`) down to 0.
        Cosine = "cosine",
        /// Warmup, then linear decay to 0.
        Linear = "linear",
        /// The peak LR throughout, no warmup.
        Constant = "constant",
        /// Warmup, then the peak LR.
        ConstantWithWarmup = "constant_with_warmup",
        /// Cosine down to `min_lr_ratio` of the peak (HF `cosine_with_min_lr`).
        CosineWithMinLr = "cosine_with_min_lr",
        /// HF `cosine_warmup_with_min_lr`.
        CosineWarmupWithMinLr = "cosine_warmup_with_min_lr",
        /// HF `cosine_with_restarts` (hard restarts, `num_cycles` cycles).
        CosineWithRestarts = "cosine_with_restarts",
        /// HF `polynomial` decay.
        Polynomial = "polynomial",
        /// HF `inverse_sqrt`.
        InverseSqrt = "inverse_sqrt",
        /// HF `reduce_lr_on_plateau` (driven by the eval loss).
        ReduceLrOnPlateau = "reduce_lr_on_plateau",
        /// HF `warmup_stable_decay`.
        WarmupStableDecay = "warmup_stable_decay",
        /// Axolotl `greedy`.
        Greedy = "greedy",
        /// Axolotl `one_cycle` (torch `OneCycleLR`).
        OneCycle = "one_cycle",
        /// Axolotl `rex`.
        Rex = "rex",
    }
}

closed_set! {
    /// `logging.lr_reported`: which LR a log line shows.
    pub enum LrReported {
        /// The LR the logged step used (HF Trainer).
        Applied = "applied",
        /// Read after `scheduler.step()`: the next step's LR (TorchTune).
        Next = "next",
    }
}

closed_set! {
    /// `logging.tracker`: the experiment tracker.
    pub enum Tracker {
        /// No tracker.
        None = "none",
        /// Weights & Biases.
        Wandb = "wandb",
        /// TensorBoard event files.
        Tensorboard = "tensorboard",
        /// MLflow.
        Mlflow = "mlflow",
        /// Comet (TorchTune `CometLogger`).
        Comet = "comet",
    }
}

closed_set! {
    /// `model.attention`: the attention kernel (HF `attn_implementation`). Affects numerics
    /// slightly and packing semantics strongly.
    pub enum Attention {
        /// The reference matmul-softmax-matmul.
        Eager = "eager",
        /// `torch.nn.functional.scaled_dot_product_attention`.
        Sdpa = "sdpa",
        /// FlashAttention 2 kernels.
        FlashAttention2 = "flash_attention_2",
        /// FlashAttention 3 kernels (Hopper).
        FlashAttention3 = "flash_attention_3",
        /// `torch.nn.attention.flex_attention`.
        FlexAttention = "flex_attention",
        /// Axolotl `xformers_attention`.
        Xformers = "xformers",
        /// Axolotl `sage_attention`.
        Sage = "sage",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_through_serde_display_and_from_str() {
        for s in Method::SPELLINGS {
            let m: Method = s.parse().unwrap();
            assert_eq!(m.to_string(), *s);
            assert_eq!(serde_json::to_value(m).unwrap(), serde_json::json!(s));
        }
        assert_eq!(
            "qlorra".parse::<Method>().unwrap_err().to_string(),
            "unknown value `qlorra`, expected one of lora, qlora, full"
        );
        assert_eq!(
            serde_json::from_value::<Loader>(serde_json::json!("")).unwrap(),
            Loader::Hub
        );
    }
}
