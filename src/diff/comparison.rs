//! Comparing two runs: the options, the tolerances in force, and [`compare`], which diffs the
//! curves and the weights and judges the result into one [`Comparison`].

use crate::diff::curves::{self, Axis, CurveDiff, CurveOptions};
use crate::diff::tensors;
use crate::diff::verdict::{self, Finding, Verdict};
use crate::diff::weights::{self, WeightDiff, WeightOptions};
use crate::ingest::{self, Format, IngestError, Precision, Run};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to compare and how strictly.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub by: Axis,
    /// Overrides of the precision defaults.
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub wtol: Option<f64>,
    pub ema: Option<f64>,
    pub last_k: usize,
    pub curves: bool,
    pub weights: bool,
    pub threads: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            by: Axis::Step,
            rtol: None,
            atol: None,
            wtol: None,
            ema: None,
            last_k: 10,
            curves: true,
            weights: true,
            threads: tensors::default_threads(),
        }
    }
}

/// The tolerances in force and where they came from.
#[derive(Debug, Clone, Serialize)]
pub struct Tolerances {
    pub rtol: f64,
    pub atol: f64,
    pub wtol: f64,
    /// The precision the defaults came from.
    pub precision: Precision,
    /// e.g. "fp32 defaults", "fp32 defaults; --rtol".
    pub origin: String,
}

impl Tolerances {
    /// Defaults for one precision: (rtol, atol, wtol).
    pub fn defaults(p: Precision) -> (f64, f64, f64) {
        match p {
            Precision::Fp32 => (1e-4, 1e-6, 1e-3),
            Precision::Tf32 => (2e-3, 1e-4, 1e-2),
            Precision::Bf16 | Precision::Fp16 => (2e-2, 1e-3, 5e-2),
            Precision::Unknown => (1e-3, 1e-5, 1e-2),
        }
    }

    /// The looser of the two runs' defaults, then the user's overrides.
    pub fn for_runs(a: Precision, b: Precision, o: &DiffOptions) -> Tolerances {
        let p = [a, b]
            .into_iter()
            .max_by(|x, y| Self::defaults(*x).0.total_cmp(&Self::defaults(*y).0))
            .unwrap_or(a);
        let (rtol, atol, wtol) = Self::defaults(p);
        let mut origin = format!("{p} defaults");
        let mut pick = |v: Option<f64>, d: f64, flag: &str| match v {
            Some(v) => {
                origin.push_str(&format!("; {flag}"));
                v
            }
            None => d,
        };
        let rtol = pick(o.rtol, rtol, "--rtol");
        let atol = pick(o.atol, atol, "--atol");
        let wtol = pick(o.wtol, wtol, "--wtol");
        Tolerances {
            rtol,
            atol,
            wtol,
            precision: p,
            origin,
        }
    }
}

/// What a comparison says about one side.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub path: PathBuf,
    pub label: String,
    pub format: Format,
    pub precision: Precision,
    pub precision_source: Option<String>,
    pub curve: Option<PathBuf>,
    pub curve_points: usize,
    pub weight_files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

impl RunInfo {
    fn of(r: &Run) -> RunInfo {
        RunInfo {
            path: r.root.clone(),
            label: r.label(),
            format: r.format,
            precision: r.precision,
            precision_source: r.precision_source.clone(),
            curve: r.curve.as_ref().map(|c| c.source.clone()),
            curve_points: r.curve.as_ref().map_or(0, |c| c.points.len()),
            weight_files: r
                .weights
                .as_ref()
                .map(|w| w.files.clone())
                .unwrap_or_default(),
            notes: r.notes.clone(),
        }
    }
}

/// A finished comparison: everything the reports show.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: RunInfo,
    pub b: RunInfo,
    pub tolerances: Tolerances,
    pub curves: Option<CurveDiff>,
    pub weights: Option<WeightDiff>,
    pub verdict: Verdict,
    /// Why a half was not compared, and other remarks.
    pub notes: Vec<String>,
}

/// Errors of a comparison. All of them mean "bad input" (exit 2), never "differs".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// Run `side` (A or B) could not be read.
    #[error("run {side}")]
    Ingest {
        side: char,
        #[source]
        source: IngestError,
    },
    #[error(transparent)]
    Curves(#[from] curves::CurveError),
    #[error(transparent)]
    Weights(#[from] weights::WeightError),
    /// Neither curves nor weights could be compared.
    #[error("nothing to compare: {0}")]
    Nothing(String),
}

/// Read two runs and compare them.
pub fn diff_paths(
    a: &Path,
    b: &Path,
    fa: Option<Format>,
    fb: Option<Format>,
    o: &DiffOptions,
) -> Result<Comparison, DiffError> {
    let ra = ingest::read_run(a, fa).map_err(|e| DiffError::Ingest {
        side: 'A',
        source: e,
    })?;
    let rb = ingest::read_run(b, fb).map_err(|e| DiffError::Ingest {
        side: 'B',
        source: e,
    })?;
    compare(&ra, &rb, o)
}

/// Compare two runs; A is the reference.
pub fn compare(a: &Run, b: &Run, o: &DiffOptions) -> Result<Comparison, DiffError> {
    let tol = Tolerances::for_runs(a.precision, b.precision, o);
    let mut notes = Vec::new();
    let mut extra = Vec::new();
    let curves = match (o.curves, &a.curve, &b.curve) {
        (true, Some(ca), Some(cb)) => Some(curves::diff_curves(
            ca,
            cb,
            &CurveOptions {
                by: o.by,
                rtol: tol.rtol,
                atol: tol.atol,
                ema: o.ema,
                last_k: o.last_k,
            },
        )?),
        (true, ca, cb) => {
            if ca.is_some() || cb.is_some() {
                let missing = if ca.is_none() { "A" } else { "B" };
                notes.push(format!(
                    "loss curves not compared: run {missing} has no curve"
                ));
            }
            None
        }
        (false, ..) => None,
    };
    let weights = match (o.weights, &a.weights, &b.weights) {
        (true, Some(wa), Some(wb)) => {
            let wo = WeightOptions {
                wtol: tol.wtol,
                threads: o.threads,
                ..WeightOptions::default()
            };
            match weights::diff_weights(wa, wb, &wo) {
                Ok(d) => Some(d),
                Err(weights::WeightError::KindMismatch { a, b }) => {
                    extra.push(Finding::new(
                        "weights-kind-mismatch",
                        format!("one run left a LoRA adapter and the other a full checkpoint ({a} vs {b})"),
                    ));
                    None
                }
                Err(e) => return Err(e.into()),
            }
        }
        (true, wa, wb) => {
            if wa.is_some() || wb.is_some() {
                let missing = if wa.is_none() { "A" } else { "B" };
                notes.push(format!(
                    "weights not compared: run {missing} has no readable weights"
                ));
            }
            None
        }
        (false, ..) => None,
    };
    if curves.is_none() && weights.is_none() && extra.is_empty() {
        let what = |r: &Run| {
            format!(
                "{} has {} and {}",
                r.root.display(),
                if r.curve.is_some() {
                    "a curve"
                } else {
                    "no curve"
                },
                if r.weights.is_some() {
                    "weights"
                } else {
                    "no weights"
                }
            )
        };
        return Err(DiffError::Nothing(format!("{}; {}", what(a), what(b))));
    }
    let verdict = verdict::judge(curves.as_ref(), weights.as_ref(), extra);
    Ok(Comparison {
        a: RunInfo::of(a),
        b: RunInfo::of(b),
        tolerances: tol,
        curves,
        weights,
        verdict,
        notes,
    })
}
