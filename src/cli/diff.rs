//! `tunebridge diff A B`: compare two runs' loss curves and weights; exit 0 pass, 1 differs,
//! 2 bad input.

use super::args::JsonArgs;
use super::exit::{EXIT_DIFFERS, EXIT_OK};
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
#[command(mut_arg("json", |a| a.help("Print the comparison as JSON instead of the table")))]
pub struct DiffArgs {
    /// The reference run: folder or file.
    pub a: PathBuf,
    /// The run to check against A.
    pub b: PathBuf,
    /// Read both runs in this layout instead of detecting it.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Layout of A only (overrides --format).
    #[arg(long, value_enum, hide_possible_values = true)]
    pub format_a: Option<Format>,
    /// Layout of B only (overrides --format).
    #[arg(long, value_enum, hide_possible_values = true)]
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
    #[command(flatten)]
    pub print: JsonArgs,
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
    if a.print.json {
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
        if !a.print.json {
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
        EXIT_OK
    } else {
        EXIT_DIFFERS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: DiffArgs,
    }

    fn parse(args: &[&str]) -> Result<DiffArgs, clap::Error> {
        T::try_parse_from(std::iter::once("diff").chain(args.iter().copied())).map(|t| t.a)
    }

    #[test]
    fn defaults() {
        let a = parse(&["x", "y"]).unwrap();
        assert_eq!(
            (a.by, a.last_k, a.format, a.print.json),
            (Axis::Step, 10, None, false)
        );
        let o = a.options();
        assert!(o.curves && o.weights && o.rtol.is_none());
    }

    #[test]
    fn format_spellings_and_per_side_override() {
        for (flag, want) in [
            ("hf", Format::Hf),
            ("axolotl", Format::Hf),
            ("unsloth", Format::Hf),
            ("trl", Format::Hf),
            ("torchtune", Format::Torchtune),
            ("tunebridge", Format::Tunebridge),
            ("csv", Format::Csv),
            ("jsonl", Format::Jsonl),
            ("weights", Format::Weights),
        ] {
            assert_eq!(
                parse(&["x", "y", "--format", flag]).unwrap().format,
                Some(want),
                "{flag}"
            );
            assert_eq!(
                parse(&["x", "y", &format!("--format={flag}")])
                    .unwrap()
                    .format,
                Some(want)
            );
        }
        let a = parse(&["x", "y", "--format", "hf", "--format-b", "torchtune"]).unwrap();
        assert_eq!(
            (a.format_a.or(a.format), a.format_b.or(a.format)),
            (Some(Format::Hf), Some(Format::Torchtune))
        );
        assert!(parse(&["x", "y", "--format", "wandb"]).is_err());
    }

    #[test]
    fn tolerances_axis_ema_and_halves() {
        let a = parse(&[
            "x", "y", "--rtol", "1e-3", "--atol=0", "--wtol", "0.1", "--by", "tokens", "--ema",
            "0.9",
        ])
        .unwrap();
        let o = a.options();
        assert_eq!(
            (o.rtol, o.atol, o.wtol, o.by, o.ema),
            (Some(1e-3), Some(0.0), Some(0.1), Axis::Tokens, Some(0.9))
        );
        let o = parse(&["x", "y", "--curves-only"]).unwrap().options();
        assert!(o.curves && !o.weights);
        let o = parse(&["x", "y", "--weights-only"]).unwrap().options();
        assert!(!o.curves && o.weights);
        assert!(parse(&["x", "y", "--curves-only", "--weights-only"]).is_err());
        assert!(parse(&["x", "y", "--by", "epoch"]).is_err());
        assert!(parse(&["x"]).is_err(), "two runs are required");
    }

    #[test]
    fn negative_tolerance_is_bad_input() {
        let a = parse(&["x", "y", "--rtol=-1"]).unwrap();
        let e = run(a).unwrap_err();
        assert!(
            e.to_string()
                .contains("--rtol -1: a tolerance must be a finite number ≥ 0"),
            "{e}"
        );
    }
}
