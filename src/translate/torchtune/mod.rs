//! TorchTune YAML (target: TorchTune 0.6.1, the last release) ⇄ IR.
//!
//! A TorchTune config names Python callables by dotted path (`_component_`) and the recipe
//! that runs it is chosen on the command line (`tune run <recipe> --config x.yaml`). The
//! simple top-level keys come from `translators/torchtune/fields.toml`; the component nodes
//! are read and written against `builders.toml` (every model builder of 0.6.1, generated from
//! the release) and `components.toml` (tokenizers, optimizers, schedulers, losses, loggers,
//! datasets, recipes). TorchTune behaviour that differs from Hugging Face stacks is explicit in
//! `defaults.toml`: pure bf16 including the adapters, a data order fixed by sampler seed 0,
//! Alpaca framed as a chat turn with the prompt trained, the first step at LR 0 and the logged
//! LR being the next step's, token-sum loss normalisation across accumulation and ranks.
//!
//! - [`read`] / [`write()`]: the translator pair, over the tables in `tables.rs` and what both
//!   sides share in `common.rs`. Reading: `read.rs` (entry point, scope), `interpolate.rs`
//!   (`${…}`), `read_component.rs` (one `_component_` node), `read_model.rs`,
//!   `read_model_files.rs` (tokenizer, checkpointer), `read_data.rs`, `read_training.rs`.
//!   Writing: `write.rs` (entry point, layout), `write_common.rs`, `write_model.rs`,
//!   `write_model_files.rs`, `write_data.rs`, `write_training.rs`.
//! - [`apply_overrides`]: `tune run … key=value` overrides, applied to the config text.
//! - [`recipe_for`] / [`command_for`]: the recipe and `tune run` command for a spec.
//!
//! Left out: running Python, TorchTune's `main` branch (Qwen3, Llama 4, step-based
//! checkpoints), and RL, distillation, vision, evaluation, generation and quantisation
//! configs (refused as not supported).

mod common;
mod interpolate;
mod launch;
mod overrides;
mod read;
mod read_component;
mod read_data;
mod read_model;
mod read_model_files;
mod read_training;
mod tables;
mod write;
mod write_common;
mod write_data;
mod write_model;
mod write_model_files;
mod write_training;

pub use overrides::apply_overrides;
pub use read::read;
pub use write::{command_for, recipe_for, write};

pub use common::RANDOM_SEED_RULE;

#[cfg(test)]
mod tests;
