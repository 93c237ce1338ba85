//! Unsloth scripts (target: Unsloth 2026.x notebooks and their TRL/HF trainers) ⇄ IR.
//!
//! Reading never runs the script: [`python`] parses it with tree-sitter and evaluates the
//! constants notebooks use, `script.rs` turns the calls that matter
//! (`FastLanguageModel.from_pretrained`, `get_peft_model`, `SFTTrainer(args=SFTConfig(…))`,
//! `train_on_responses_only`, the dataset chain and its formatting function) into the shared
//! `call → keyword → value` tree, and [`read`] applies `translators/unsloth/fields.toml`
//! plus the rules a table cannot say. Writing ([`write()`]) renders the IR as a notebook-shaped
//! script through `translators/unsloth/script.py.j2`.
//!
//! Left out on purpose: RL trainers (GRPO, DPO, ORPO, …), vision and audio models, reward
//! models; those scripts are refused with `not-supported`.

mod common;
mod format;
pub mod python;
mod read;
mod script;
mod script_data;
mod write;

pub use read::read;
pub use write::write;

#[cfg(test)]
mod tests;
