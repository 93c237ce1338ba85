//! The training recipe: setup → train → save, like TorchTune's `lora_finetune_single_device`.
//!
//! Setup order (each step needs the one before): paths and dtype → tokenizer and samples (the
//! step count depends on them) → model → LoRA (its replayed init draws must follow the model's
//! construction order) → optimizer → schedule (needs the step count) → run directory.
//!
//! One optimizer step ("window") = `grad_accum_steps` micro-batches. The loss of a window is the
//! token mean over the whole window, per the IR's `loss.normalization = token_mean_over_step`:
//!
//! - HF flavours (Axolotl, Unsloth): each micro-batch backpropagates Σ CE / N with N = the
//!   window's count of shifted labels ≠ -100 (transformers `num_items_in_batch`); logged loss
//!   = Σ over micro-batches.
//! - TorchTune 0.6.1: each micro-batch backpropagates mean-CE · n_unshifted (its label count
//!   *before* the shift), grads are then scaled by 1/Σ n_unshifted; logged loss =
//!   Σ (mean-CE · n_unshifted) / Σ n_unshifted. The two counts differ by one per sequence
//!   whose first label is trained — a TorchTune quirk reproduced on purpose.
//!
//! Then: clip (pre-clip norm logged) → AdamW at the schedule's LR → zero grads → log.
//! `global_step` counts optimizer steps.
//!
//! Files: `options.rs` (what a run takes and reports), `plan.rs` (every step's micro-batches),
//! `multipack.rs` (the plan, rows and eval set of an Axolotl packed run),
//! `shard.rs` (a data-parallel rank's share of an epoch), `parallel.rs` (the process group and
//! what is reduced over ranks), `full_shard.rs` (frozen weights sharded over ranks, gathered
//! layer by layer),
//! `setup.rs` (the phases above), `step.rs` (one optimizer step; the eval loss), `run.rs` (the
//! loop), `checkpoints.rs` (saving, resuming).

mod checkpoints;
mod full_shard;
mod multipack;
mod options;
mod parallel;
mod plan;
mod run;
mod setup;
mod shard;
mod step;

pub use multipack::plan as multipack_plan;
pub use options::{BatchOverRanks, RunOptions, RunSummary, StepMetrics};
pub use parallel::DataParallel;
pub use plan::{plan, Plan, Window};
pub use run::run;
pub use shard::Shard;
pub use step::eval_loss;
