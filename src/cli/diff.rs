//! `tunebridge diff A B`: compare two runs' loss curves and weights; exit 0 pass, 1 differs,
//! 2 bad input.

use crate::diff::{self, Axis, DiffOptions};
use crate::ingest::Format;
use anyhow::Context;
use std::path::PathBuf;

/// Compare two runs (loss curves and adapter/model weights) and give a verdict.
///
/// A and B are run folders (tunebridge, Axolotl/Unsloth/TRL output_dir, TorchTune
/// output_dir), curve files (trainer_state.json, TorchTune log_*.txt, .csv, .jsonl) or
/// weight files (.safetensors, model.safetensors.index.json). A is the reference: tolerance
/// bands and relative errors are measured against it. Exit status: 0 pass, 1 differs,
/// 2 bad input.
#[derive(clap::Args)]
pub struct DiffArgs {
    /// The reference run: folder or file.
    pub a: PathBuf,
    /// The run to check against A.
    pub b: PathBuf,
    /// Read both runs in this layout instead of detecting it.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Layout of A only (overrides --format).
    #[arg(long, value_enum)]
    pub format_a: Option<Format>,
    /// Layout of B only (overrides --format).
    #[arg(long, value_enum)]
    pub format_b: Option<Format>,
    /// Relative loss tolerance (default from precision: fp32 1e-4, bf16 2e-2).
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute loss tolerance (default from precision: fp32 1e-6, bf16 1e-3).
    #[arg(long)]
    pub atol: Option<f64>,
    /// Weight tolerance, relative Frobenius error of ΔW or of a tensor (fp32 1e-3, bf16 5e-2).
    #[arg(long)]
    pub wtol: Option<f64>,
    /// Smooth both curves with an exponential moving average of this weight (0 ≤ w < 1).
    #[arg(long, value_name = "WEIGHT")]
    pub ema: Option<f64>,
    /// Align the curves by optimizer step or by tokens seen.
    #[arg(long, value_enum, default_value_t = Axis::Step)]
    pub by: Axis,
    /// Points in the final mean-of-last-k comparison.
    #[arg(long, default_value_t = 10)]
    pub last_k: usize,
    /// Compare the loss curves only.
    #[arg(long, conflicts_with = "weights_only")]
    pub curves_only: bool,
    /// Compare the weights only.
    #[arg(long)]
    pub weights_only: bool,
    /// Write report.md, report.html, curves.png/.svg/.csv, weights.csv and diff.json here.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Print the comparison as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Threads for streaming weights (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl DiffArgs {
    fn options(&self) -> DiffOptions {
        DiffOptions {
            by: self.by,
            rtol: self.rtol,
            atol: self.atol,
            wtol: self.wtol,
            ema: self.ema,
            last_k: self.last_k,
            curves: !self.weights_only,
            weights: !self.curves_only,
            threads: self.threads.unwrap_or_else(diff::tensors::default_threads),
        }
    }
}

pub fn run(a: DiffArgs) -> anyhow::Result<u8> {
    for (flag, v) in [("--rtol", a.rtol), ("--atol", a.atol), ("--wtol", a.wtol)] {
        if let Some(v) = v {
            anyhow::ensure!(
                v.is_finite() && v >= 0.0,
                "{flag} {v}: a tolerance must be a finite number ≥ 0"
            );
        }
    }
    let fa = a.format_a.or(a.format);
    let fb = a.format_b.or(a.format);
    let cmp = diff::diff_paths(&a.a, &a.b, fa, fb, &a.options())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&diff::report::json(&cmp))?
        );
    } else {
        print!("{}", diff::report::terminal(&cmp));
    }
    if let Some(dir) = &a.report {
        let files = diff::report::write_report(&cmp, dir)
            .with_context(|| format!("writing the report to {}", dir.display()))?;
        if !a.json {
            println!(
                "report: {}",
                files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(if cmp.verdict.pass {
        super::EXIT_OK
    } else {
        super::EXIT_DIFFERS
    })
}
