//! Verify: diff two runs (loss curves and weights) into a verdict, a report and a plot.
//!
//! The entry points are [`compare`] (two [`Run`](crate::ingest::Run)s already read) and
//! [`diff_paths`] (read and compare); [`report::write_report`] writes the
//! Markdown/HTML/PNG/SVG/CSV/JSON files. The CLI's `diff` and the engine's `verify` both go
//! through these. Run A is the reference throughout: bands and relative errors are measured
//! against A.
//!
//! Tolerances default from the runs' precision, the looser of the two ([`Tolerances::for_runs`]):
//!
//! | precision | curve rtol | curve atol | weight tol (rel. Frobenius) |
//! |-----------|-----------:|-----------:|----------------------------:|
//! | fp32      | 1e-4       | 1e-6       | 1e-3                        |
//! | tf32      | 2e-3       | 1e-4       | 1e-2                        |
//! | bf16/fp16 | 2e-2       | 1e-3       | 5e-2                        |
//! | unknown   | 1e-3       | 1e-5       | 1e-2                        |
//!
//! fp32 matches TorchTune's recipe tests (losses pinned at 1e-5) with room for another
//! kernel order; bf16 follows llm.c's 2e-2 for bf16 tensors. The weight tolerance is looser
//! because Adam normalises updates, so tiny gradient differences become relative weight
//! differences of similar size after a few steps.

pub mod band;
pub mod comparison;
pub mod curves;
pub mod eval_curve;
pub mod names;
pub mod plot;
pub mod report;
#[cfg(feature = "tables")]
pub mod tables;
pub mod tensors;
pub mod verdict;
pub mod weights;

pub use comparison::{
    compare, diff_paths, Comparison, DiffError, DiffOptions, RunInfo, Tolerances,
};
pub use curves::{Axis, CurveDiff, CurveOptions};
pub use verdict::{Finding, Verdict};
pub use weights::{WeightDiff, WeightOptions};
