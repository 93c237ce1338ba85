//! Loss-curve diffs: alignment by optimizer step or by tokens seen, per-point differences,
//! the tolerance band and the first point outside it.
//!
//! Run A is the reference: the band at a point is `atol + rtol·|loss_A|` (numpy `isclose`),
//! and `rel = |loss_A − loss_B| / |loss_A|`. By step, points pair on equal step numbers;
//! by tokens, B's loss is interpolated linearly at A's cumulative token counts inside B's
//! range. Optional EMA smoothing (TensorBoard's, debiased: sₜ = w·sₜ₋₁ + (1−w)·xₜ, divided by
//! 1−wᵗ) is applied to each curve before the comparison; the raw curves stay in the result
//! for plotting. Evaluations (`eval_loss`) are paired by step in [`super::eval_curve`].
//! Left out: per-token losses.

use super::band::gap;
use super::eval_curve::{diff_evals, EvalDiff};
use crate::ingest::{Curve, CurvePoint};
use serde::Serialize;

/// The x axis of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    /// Optimizer step.
    Step,
    /// Cumulative input tokens seen.
    Tokens,
}

impl std::fmt::Display for Axis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Axis::Step => "step",
            Axis::Tokens => "tokens",
        })
    }
}

/// Settings of a curve comparison.
#[derive(Debug, Clone)]
pub struct CurveOptions {
    pub by: Axis,
    pub rtol: f64,
    pub atol: f64,
    /// EMA weight in [0, 1); None = no smoothing.
    pub ema: Option<f64>,
    /// How many final points the mean-of-last-k delta uses.
    pub last_k: usize,
}

/// Errors of a curve comparison.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CurveError {
    /// `--by tokens` on a curve that does not record tokens.
    #[error("{}: no token counts in this curve, so it cannot be aligned by tokens (use --by step){hint}", path.display())]
    NoTokens {
        path: std::path::PathBuf,
        hint: String,
    },
    /// The EMA weight is outside [0, 1).
    #[error("--ema {0}: the weight must be in [0, 1)")]
    BadEma(f64),
}

/// One aligned point.
#[derive(Debug, Clone, Serialize)]
pub struct CurveRow {
    /// Step or tokens, from A.
    pub x: f64,
    pub step_a: u64,
    /// B's step (by tokens: the nearest logged step of B).
    pub step_b: u64,
    pub loss_a: f64,
    pub loss_b: f64,
    pub abs: f64,
    pub rel: f64,
    /// atol + rtol·|loss_A|
    pub band: f64,
    pub within: bool,
    pub lr_a: Option<f64>,
    pub lr_b: Option<f64>,
    pub grad_norm_a: Option<f64>,
    pub grad_norm_b: Option<f64>,
}

/// A plotted curve: (x, loss) raw, and smoothed when EMA is on.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub raw: Vec<(f64, f64)>,
    pub smoothed: Option<Vec<(f64, f64)>>,
}

/// The learning rates first disagree here (informational).
#[derive(Debug, Clone, Serialize)]
pub struct LrDiff {
    pub step: u64,
    pub lr_a: f64,
    pub lr_b: f64,
}

/// The curve half of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CurveDiff {
    pub by: Axis,
    pub rtol: f64,
    pub atol: f64,
    pub ema: Option<f64>,
    pub source_a: std::path::PathBuf,
    pub source_b: std::path::PathBuf,
    pub rows: Vec<CurveRow>,
    pub len_a: usize,
    pub len_b: usize,
    pub last_step_a: u64,
    pub last_step_b: u64,
    /// Points of A with no partner in B (B shorter, or logged at other steps).
    pub only_in_a: usize,
    /// Points of B with no partner in A.
    pub only_in_b: usize,
    pub max_abs: f64,
    pub mean_abs: f64,
    pub max_rel: f64,
    pub mean_rel: f64,
    /// Row index of the largest relative difference.
    pub max_rel_row: Option<usize>,
    /// Row index of the first point outside the band.
    pub first_divergent: Option<usize>,
    pub outside: usize,
    /// Loss at the last common point: B − A.
    pub final_delta: f64,
    pub last_k: usize,
    pub last_k_mean_a: f64,
    pub last_k_mean_b: f64,
    pub lr_first_diff: Option<LrDiff>,
    pub series_a: Series,
    pub series_b: Series,
    /// The eval losses, when either run logged any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalDiff>,
}

impl CurveDiff {
    /// The first divergent row, if any.
    pub fn first_divergent_row(&self) -> Option<&CurveRow> {
        self.first_divergent.map(|i| &self.rows[i])
    }
}

/// Debiased exponential moving average (TensorBoard's smoothing).
pub fn ema(values: &[f64], w: f64) -> Vec<f64> {
    let mut s = 0.0;
    let mut wt = 1.0;
    values
        .iter()
        .map(|&x| {
            s = w * s + (1.0 - w) * x;
            wt *= w;
            if wt < 1.0 {
                s / (1.0 - wt)
            } else {
                x
            }
        })
        .collect()
}

fn x_of(p: &CurvePoint, by: Axis) -> Option<f64> {
    match by {
        Axis::Step => Some(p.step as f64),
        Axis::Tokens => p.tokens,
    }
}

/// Where an eval after step `s` sits on the x axis: the step, or the tokens seen by then.
fn eval_x(c: &Curve, by: Axis, s: u64) -> f64 {
    match by {
        Axis::Step => s as f64,
        Axis::Tokens if s == 0 => 0.0,
        Axis::Tokens => c
            .points
            .iter()
            .find(|p| p.step == s)
            .and_then(|p| p.tokens)
            .unwrap_or(f64::NAN),
    }
}

fn no_tokens(c: &Curve) -> CurveError {
    let hint = if c.source.to_string_lossy().contains("log") {
        "; TorchTune logs carry tokens_per_second only".to_string()
    } else {
        String::new()
    };
    CurveError::NoTokens {
        path: c.source.clone(),
        hint,
    }
}

/// Compare two curves; A is the reference.
pub fn diff_curves(a: &Curve, b: &Curve, o: &CurveOptions) -> Result<CurveDiff, CurveError> {
    if let Some(w) = o.ema {
        if !(0.0..1.0).contains(&w) {
            return Err(CurveError::BadEma(w));
        }
    }
    for c in [a, b] {
        if o.by == Axis::Tokens && c.points.iter().any(|p| p.tokens.is_none()) {
            return Err(no_tokens(c));
        }
    }
    // Rounded logs: allow half the rounding step on top of atol.
    let atol = o.atol + [a, b].iter().filter_map(|c| c.quantum).fold(0.0, f64::max) / 2.0;
    let loss = |c: &Curve| -> Vec<f64> {
        let raw: Vec<f64> = c.points.iter().map(|p| p.loss).collect();
        match o.ema {
            Some(w) => ema(&raw, w),
            None => raw,
        }
    };
    let (la, lb) = (loss(a), loss(b));
    let series = |c: &Curve, l: &[f64]| Series {
        raw: c
            .points
            .iter()
            .map(|p| (x_of(p, o.by).unwrap_or(f64::NAN), p.loss))
            .collect(),
        smoothed: o.ema.map(|_| {
            c.points
                .iter()
                .zip(l)
                .map(|(p, &v)| (x_of(p, o.by).unwrap_or(f64::NAN), v))
                .collect()
        }),
    };
    let band = Band { rtol: o.rtol, atol };
    let (rows, matched_b) = match o.by {
        Axis::Step => align_by_step(a, b, &la, &lb, band),
        Axis::Tokens => align_by_tokens(a, b, &la, &lb, band),
    };
    let n = rows.len();
    let first_divergent = rows.iter().position(|r| !r.within);
    let outside = rows.iter().filter(|r| !r.within).count();
    let mean = |f: &dyn Fn(&CurveRow) -> f64| {
        if n == 0 {
            0.0
        } else {
            rows.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let max_rel_row = (0..n).max_by(|&i, &j| rows[i].rel.total_cmp(&rows[j].rel));
    let k = o.last_k.clamp(1, n.max(1));
    let tail = &rows[n.saturating_sub(k)..];
    let tail_mean = |f: &dyn Fn(&CurveRow) -> f64| {
        if tail.is_empty() {
            f64::NAN
        } else {
            tail.iter().map(f).sum::<f64>() / tail.len() as f64
        }
    };
    let lr_first_diff = rows.iter().find_map(|r| match (r.lr_a, r.lr_b) {
        (Some(x), Some(y)) if (x - y).abs() > 1e-12 + 1e-6 * x.abs().max(y.abs()) => Some(LrDiff {
            step: r.step_a,
            lr_a: x,
            lr_b: y,
        }),
        _ => None,
    });
    // an eval after step s sits at the x of step s (by tokens: the tokens seen by then)
    let eval = diff_evals(
        &a.eval,
        &b.eval,
        |s| eval_x(a, o.by, s),
        |s| eval_x(b, o.by, s),
        o.rtol,
        atol,
    );
    Ok(CurveDiff {
        eval,
        by: o.by,
        rtol: o.rtol,
        atol,
        ema: o.ema,
        source_a: a.source.clone(),
        source_b: b.source.clone(),
        len_a: a.points.len(),
        len_b: b.points.len(),
        last_step_a: a.points.last().map_or(0, |p| p.step),
        last_step_b: b.points.last().map_or(0, |p| p.step),
        only_in_a: a.points.len() - n,
        only_in_b: b.points.len().saturating_sub(matched_b),
        max_abs: rows.iter().map(|r| r.abs).fold(0.0, f64::max),
        mean_abs: mean(&|r| r.abs),
        max_rel: rows.iter().map(|r| r.rel).fold(0.0, f64::max),
        mean_rel: mean(&|r| r.rel),
        max_rel_row,
        first_divergent,
        outside,
        final_delta: rows.last().map_or(f64::NAN, |r| r.loss_b - r.loss_a),
        last_k: tail.len(),
        last_k_mean_a: tail_mean(&|r| r.loss_a),
        last_k_mean_b: tail_mean(&|r| r.loss_b),
        lr_first_diff,
        series_a: series(a, &la),
        series_b: series(b, &lb),
        rows,
    })
}

/// The tolerance band of a point: `atol + rtol·|loss A|`.
#[derive(Clone, Copy)]
struct Band {
    rtol: f64,
    atol: f64,
}

/// Pair the points logged at the same step; returns the rows and how many points of B
/// found a partner. `la`/`lb` are the (possibly smoothed) losses of A and B.
fn align_by_step(
    a: &Curve,
    b: &Curve,
    la: &[f64],
    lb: &[f64],
    band: Band,
) -> (Vec<CurveRow>, usize) {
    let mut rows = Vec::new();
    let mut matched_b = 0usize;
    let mut j = 0;
    for (i, pa) in a.points.iter().enumerate() {
        while j < b.points.len() && b.points[j].step < pa.step {
            j += 1;
        }
        if j < b.points.len() && b.points[j].step == pa.step {
            rows.push(row(
                pa,
                &b.points[j],
                la[i],
                lb[j],
                pa.step as f64,
                band.rtol,
                band.atol,
            ));
            matched_b += 1;
        }
    }
    (rows, matched_b)
}

/// Pair every point of A inside B's token range with B's loss interpolated at A's token
/// count (B's nearest logged step names the row); returns the rows and the points of B
/// counted as matched.
fn align_by_tokens(
    a: &Curve,
    b: &Curve,
    la: &[f64],
    lb: &[f64],
    band: Band,
) -> (Vec<CurveRow>, usize) {
    let mut rows = Vec::new();
    let xb: Vec<f64> = b
        .points
        .iter()
        .map(|p| p.tokens.unwrap_or(f64::NAN))
        .collect();
    let (lo, hi) = (
        xb.first().copied().unwrap_or(0.0),
        xb.last().copied().unwrap_or(0.0),
    );
    for (i, pa) in a.points.iter().enumerate() {
        let x = pa.tokens.unwrap_or(f64::NAN);
        if !(x >= lo && x <= hi) {
            continue;
        }
        // First index with xb >= x.
        let k = xb.partition_point(|&t| t < x);
        let (yb, nearest) = if xb[k] == x || k == 0 {
            (lb[k], k)
        } else {
            let t = (x - xb[k - 1]) / (xb[k] - xb[k - 1]);
            let near = if t < 0.5 { k - 1 } else { k };
            (lb[k - 1] + t * (lb[k] - lb[k - 1]), near)
        };
        rows.push(row(
            pa,
            &b.points[nearest],
            la[i],
            yb,
            x,
            band.rtol,
            band.atol,
        ));
    }
    let matched_b = rows.len().min(b.points.len());
    (rows, matched_b)
}

fn row(
    pa: &CurvePoint,
    pb: &CurvePoint,
    la: f64,
    lb: f64,
    x: f64,
    rtol: f64,
    atol: f64,
) -> CurveRow {
    let g = gap(la, lb, rtol, atol);
    CurveRow {
        x,
        step_a: pa.step,
        step_b: pb.step,
        loss_a: la,
        loss_b: lb,
        abs: g.abs,
        rel: g.rel,
        band: g.band,
        within: g.within,
        lr_a: pa.lr,
        lr_b: pb.lr,
        grad_norm_a: pa.grad_norm,
        grad_norm_b: pb.grad_norm,
    }
}

#[cfg(test)]
mod tests;
