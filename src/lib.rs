//! tunebridge: port, run and verify LLM fine-tunes across Unsloth, Axolotl and TorchTune
//! through one explicit intermediate representation.

// Errors carry whole diagnostics (message, span, help); they sit on cold paths, so boxing
// them would only add noise.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod device;
pub mod diag;
pub mod diff;
#[cfg(feature = "engine")]
pub mod engine;
pub mod gen;
pub mod ingest;
pub mod ir;
pub mod translate;
#[cfg(feature = "engine")]
pub mod workflow;
