//! Workflows: library steps chained into one answer, so that any command (or another
//! program) can run them and render the outcome its own way.
//!
//! - [`verify`]: port a config, run both sides on the engine, diff the runs, write the report.

pub mod verify;
