//! Axolotl YAML (target: Axolotl 0.18 schema, checked against the 0.19.0 wheel) ⇄ IR.
//!
//! Simple keys come from `translators/axolotl/fields.toml`; the data for everything else is in
//! `translators/axolotl/keys.toml`. This module handles what a table cannot say: the
//! adapter/quantisation pair, `special_tokens`, `lora_target_linear` and regex targets, the
//! batch-size triple, warmup given as a ratio, scheduler kwargs, precision flags, gradient
//! checkpointing and activation offloading, the loss plugins (Cut Cross Entropy, Liger), the
//! save cadence, trackers, and the fused LoRA kernels Axolotl turns on by itself. Dataset
//! lists are in `datasets.rs`, DeepSpeed and FSDP in `parallel.rs`, periodic evaluation in
//! `eval.rs`.
//!
//! - [`read()`] / [`write()`]: the translator pair. The keys.toml data is in `keys.rs`, the
//!   helpers both sides share in `common.rs`; the special cases are in `read.rs` (entry
//!   point, model, adapter, targets, fused kernels, batch), `read_run.rs` (schedule,
//!   precision, memory, loss, checkpoints, trackers, no-op and renamed keys), `write.rs`
//!   (entry point, output layout, model, adapter) and `write_run.rs` (the rest of the run).
//!
//! Every key is accounted for: mapped to the IR, dropped because its value is what Axolotl
//! does anyway (`keys.toml [noop]`), kept verbatim in `passthrough` with a reason
//! (`[[ignored]]`, `[[group]]`), refused (`[[unsupported]]`), or warned about as unknown.
//! Left out on purpose: RL trainers, reward models, vision towers (refused, exit 3).

mod common;
mod datasets;
mod eval;
mod keys;
mod parallel;
mod read;
mod read_run;
#[cfg(test)]
mod tests;
mod write;
mod write_run;

pub use read::read;
pub use write::write;
