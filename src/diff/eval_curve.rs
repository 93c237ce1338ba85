//! The eval-loss half of a curve comparison: each run's evaluations on its held-out rows (HF
//! `eval_loss` entries, engine `metrics.jsonl` rows with `eval_loss`) paired on equal steps,
//! with the same band as the train curve (`atol + rtol·|loss_A|`, A the reference).
//!
//! Step 0 is an evaluation before training (HF `eval_on_start`). The evals do not enter the
//! verdict; they are reported and plotted beside the train curve.

use super::band::gap;
use crate::ingest::EvalPoint;
use serde::Serialize;

/// One pair of evaluations at the same step.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub step: u64,
    pub loss_a: f64,
    pub loss_b: f64,
    pub abs: f64,
    pub rel: f64,
    /// atol + rtol·|loss_A|
    pub band: f64,
    pub within: bool,
}

/// The eval curves of A and B compared.
#[derive(Debug, Clone, Serialize)]
pub struct EvalDiff {
    pub rows: Vec<EvalRow>,
    pub len_a: usize,
    pub len_b: usize,
    pub max_rel: f64,
    /// Row index of the first pair outside the band.
    pub first_divergent: Option<usize>,
    pub outside: usize,
    /// Each run's evals as (x, loss) on the comparison's x axis, for plotting.
    pub series_a: Vec<(f64, f64)>,
    pub series_b: Vec<(f64, f64)>,
}

/// Pair A's and B's evaluations by step; `None` when neither run logged any. `x_a`/`x_b` put
/// a step on the plot's x axis (the step itself, or the tokens seen by then).
pub fn diff_evals(
    a: &[EvalPoint],
    b: &[EvalPoint],
    x_a: impl Fn(u64) -> f64,
    x_b: impl Fn(u64) -> f64,
    rtol: f64,
    atol: f64,
) -> Option<EvalDiff> {
    if a.is_empty() && b.is_empty() {
        return None;
    }
    let rows: Vec<EvalRow> = a
        .iter()
        .filter_map(|pa| {
            let pb = b.iter().find(|pb| pb.step == pa.step)?;
            let g = gap(pa.loss, pb.loss, rtol, atol);
            Some(EvalRow {
                step: pa.step,
                loss_a: pa.loss,
                loss_b: pb.loss,
                abs: g.abs,
                rel: g.rel,
                band: g.band,
                within: g.within,
            })
        })
        .collect();
    let series = |v: &[EvalPoint], x: &dyn Fn(u64) -> f64| -> Vec<(f64, f64)> {
        v.iter().map(|p| (x(p.step), p.loss)).collect()
    };
    Some(EvalDiff {
        len_a: a.len(),
        len_b: b.len(),
        max_rel: rows.iter().map(|r| r.rel).fold(0.0, f64::max),
        first_divergent: rows.iter().position(|r| !r.within),
        outside: rows.iter().filter(|r| !r.within).count(),
        series_a: series(a, &x_a),
        series_b: series(b, &x_b),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evals(v: &[(u64, f64)]) -> Vec<EvalPoint> {
        v.iter()
            .map(|&(step, loss)| EvalPoint { step, loss })
            .collect()
    }

    #[test]
    fn pairs_equal_steps_and_finds_the_first_pair_outside_the_band() {
        let a = evals(&[(0, 6.0), (4, 5.0), (8, 4.0)]);
        let b = evals(&[(0, 6.0), (4, 5.1), (12, 3.0)]);
        let d = diff_evals(&a, &b, |s| s as f64, |s| s as f64, 1e-4, 0.0).unwrap();
        assert_eq!(d.rows.iter().map(|r| r.step).collect::<Vec<_>>(), [0, 4]);
        assert_eq!(d.first_divergent, Some(1));
        assert_eq!(d.outside, 1);
        assert!((d.max_rel - 0.02).abs() < 1e-12);
        assert_eq!(d.series_b.len(), 3);
        assert!(diff_evals(&[], &[], |s| s as f64, |s| s as f64, 1e-4, 0.0).is_none());
    }
}
