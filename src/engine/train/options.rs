//! What a run takes (the command line's overrides) and what it reports.

use crate::engine::dist::World;
use crate::engine::flavour::Flavour;
use crate::ir::Dtype;
use std::path::PathBuf;
use tch::Device;

/// How to run a spec (what the CLI flags override).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub flavour: Flavour,
    pub device: Device,
    /// Run directory; default: the spec's `checkpoint.output_dir`.
    pub output: Option<PathBuf>,
    /// Override `training.max_steps` (the schedule horizon follows, as in the frameworks).
    pub max_steps: Option<u64>,
    /// Stop after this optimizer step without changing the schedule (an interruption).
    pub stop_after: Option<u64>,
    /// Continue from a `checkpoint-<n>` folder.
    pub resume_from: Option<PathBuf>,
    /// Override `precision.compute_dtype` (e.g. `fp32` for a CPU parity run of a bf16 config).
    pub compute_dtype: Option<Dtype>,
    pub progress: bool,
    /// This process's rank in a multi-process run (from the launcher's environment); `None`
    /// for a plain single-process run.
    pub world: Option<World>,
    /// How a multi-process run sets its global batch ([`BatchOverRanks`]).
    pub batch_over_ranks: BatchOverRanks,
}

/// What a run on W ranks keeps of the config's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchOverRanks {
    /// The config's per-device micro-batch and accumulation, so the global batch is
    /// micro-batch × accumulation × W: what `torchrun` + Axolotl, TorchTune or TRL compute
    /// from the same file on W processes.
    #[default]
    PerDevice,
    /// The spec's global batch: the accumulation becomes global / (micro-batch × W), as
    /// `port --devices W` plans it (`run --keep-global-batch`).
    KeepGlobal,
}

impl RunOptions {
    pub fn new(flavour: Flavour) -> Self {
        RunOptions {
            flavour,
            device: Device::Cpu,
            output: None,
            max_steps: None,
            stop_after: None,
            resume_from: None,
            compute_dtype: None,
            progress: false,
            world: None,
            batch_over_ranks: BatchOverRanks::PerDevice,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub output: PathBuf,
    pub steps: u64,
    pub final_loss: f64,
    pub losses: Vec<f64>,
    pub flavour: Flavour,
    /// Loss over the held-out rows (`data.val_size`) after the last step, when there are any
    /// (the periodic evals are in `metrics.jsonl`).
    pub eval_loss: Option<f64>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepMetrics {
    pub step: u64,
    pub epoch: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: i64,
    pub label_tokens: i64,
    pub tokens_per_sec: f64,
    /// Peak memory in bytes: resident set of the process (CPU), or bytes allocated by
    /// libtorch's CUDA caching allocator (CUDA; `null` where its statistics cannot be read).
    pub mem_peak: Option<u64>,
    /// Full-shard runs: the frozen decoder weights this rank keeps (bytes) and the most
    /// decoder layers it held gathered at once during the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharded: Option<ShardStats>,
}

/// What a full-shard rank holds (see [`StepMetrics::sharded`]).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ShardStats {
    pub resident_bytes: i64,
    pub layers_gathered_max: usize,
}
