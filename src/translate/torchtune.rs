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
//! - [`read`] / [`write()`]: the translator pair (`read.rs`, `read_model.rs`, `read_data.rs`;
//!   `write.rs`, `write_model.rs`, `write_data.rs`), over the tables in `tables.rs`.
//! - [`apply_overrides`]: `tune run … key=value` overrides, applied to the config text.
//! - [`recipe_for`] / [`command_for`]: the recipe and `tune run` command for a spec.
//!
//! Left out: running Python, TorchTune's `main` branch (Qwen3, Llama 4, step-based
//! checkpoints), and RL, distillation, vision, evaluation, generation and quantisation
//! configs (refused as not supported).

mod launch;
mod overrides;
mod read;
mod read_data;
mod read_model;
mod tables;
mod write;
mod write_data;
mod write_model;

pub use overrides::apply_overrides;
pub use read::read;
pub use write::{command_for, recipe_for, write};

use super::Framework;

const FW: Framework = Framework::Torchtune;

/// Provenance rule that marks `seed: null` (a random seed per run); the writer turns it back
/// into `seed: null` for TorchTune.
pub const RANDOM_SEED_RULE: &str =
    "seed: null → TorchTune draws a random seed at start-up (training/seed.py); 0 stands in for it";

#[cfg(test)]
mod tests;
