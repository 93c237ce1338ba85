//! The verdict: pass or differs, with one finding per reason.
//!
//! Each finding has a stable kebab-case id (shown in every report and in `--json`):
//!
//! | id | fails? | meaning |
//! |----|--------|---------|
//! | `curve-outside-tolerance` | yes | a loss point lies outside atol + rtol·\|loss_A\| |
//! | `length-mismatch` | yes | the runs end at different steps (or token counts) |
//! | `no-common-points` | yes | the curves share no step (or token range) |
//! | `weights-outside-tolerance` | yes | a module's ΔW (or a tensor) differs beyond wtol |
//! | `tensors-missing` / `tensors-extra` | yes | modules or tensors on one side only |
//! | `targets-differ` | yes | the adapters' target_modules differ |
//! | `tensor-mismatch` | yes | same name, incomparable shape, layout or dtype |
//! | `non-finite-weights` | yes | NaN or infinity in the weights |
//! | `weights-kind-mismatch` | yes | an adapter against a full checkpoint |
//! | `logging-differs` | no | the runs logged at different steps |
//! | `lr-differs` | no | the logged learning rates differ (schedule conventions) |
//! | `rank-differs` | no | LoRA ranks differ: only ΔW is compared |

use super::curves::{Axis, CurveDiff};
use super::weights::WeightDiff;
use serde::Serialize;

/// One reason or remark.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: String,
    pub message: String,
}

impl Finding {
    pub fn new(id: &str, message: impl Into<String>) -> Finding {
        Finding {
            id: id.to_string(),
            message: message.into(),
        }
    }
}

/// Pass or differs, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub pass: bool,
    /// Findings that make the verdict "differs".
    pub reasons: Vec<Finding>,
    /// Findings worth knowing that do not fail the comparison.
    pub info: Vec<Finding>,
}

/// Format a number compactly for messages: 4 significant digits.
pub fn num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if !x.is_finite() {
        format!("{x}")
    } else if x.abs() >= 1e-3 && x.abs() < 1e5 {
        let digits = (3 - x.abs().log10().floor() as i32).max(0) as usize;
        format!("{x:.digits$}")
    } else {
        format!("{x:.3e}")
    }
}

fn list(v: &[String], max: usize) -> String {
    let mut s = v
        .iter()
        .take(max)
        .map(|x| format!("`{x}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if v.len() > max {
        s.push_str(&format!(" and {} more", v.len() - max));
    }
    s
}

/// Judge a comparison.
pub fn judge(
    curves: Option<&CurveDiff>,
    weights: Option<&WeightDiff>,
    extra: Vec<Finding>,
) -> Verdict {
    let mut reasons = extra;
    let mut info = Vec::new();
    if let Some(c) = curves {
        curve_findings(c, &mut reasons, &mut info);
    }
    if let Some(w) = weights {
        weight_findings(w, &mut reasons, &mut info);
    }
    Verdict {
        pass: reasons.is_empty(),
        reasons,
        info,
    }
}

fn curve_findings(c: &CurveDiff, reasons: &mut Vec<Finding>, info: &mut Vec<Finding>) {
    let unit = if c.by == Axis::Step { "step" } else { "tokens" };
    if c.rows.is_empty() {
        reasons.push(Finding::new(
            "no-common-points",
            format!(
                "the curves share no {unit}: A has {} points ending at step {}, B has {} ending at step {}",
                c.len_a, c.last_step_a, c.len_b, c.last_step_b
            ),
        ));
        return;
    }
    if let Some(r) = c.first_divergent_row() {
        let at = if c.by == Axis::Step {
            format!("step {}", r.step_a)
        } else {
            format!("{} tokens (step {})", r.x, r.step_a)
        };
        reasons.push(Finding::new(
            "curve-outside-tolerance",
            format!(
                "loss leaves the tolerance band at {at}: A {}, B {}, |Δ| {} > {} (rtol {} + atol {}); {} of {} compared points outside, max rel {}",
                num(r.loss_a),
                num(r.loss_b),
                num(r.abs),
                num(r.band),
                num(c.rtol),
                num(c.atol),
                c.outside,
                c.rows.len(),
                num(c.max_rel)
            ),
        ));
    }
    let ends_differ = match c.by {
        Axis::Step => c.last_step_a != c.last_step_b,
        Axis::Tokens => c.only_in_a > 0 && c.rows.last().is_some_and(|r| r.step_a != c.last_step_a),
    };
    if ends_differ {
        reasons.push(Finding::new(
            "length-mismatch",
            format!(
                "the runs have different lengths: A ends at step {} ({} points), B at step {} ({} points); {} points compared",
                c.last_step_a,
                c.len_a,
                c.last_step_b,
                c.len_b,
                c.rows.len()
            ),
        ));
    } else if c.only_in_a > 0 || c.only_in_b > 0 {
        info.push(Finding::new(
            "logging-differs",
            format!(
                "{} points of A and {} of B have no partner (different logging steps); {} compared",
                c.only_in_a,
                c.only_in_b,
                c.rows.len()
            ),
        ));
    }
    if let Some(l) = &c.lr_first_diff {
        info.push(Finding::new(
            "lr-differs",
            format!(
                "logged learning rates first differ at step {}: A {}, B {} (frameworks log the lr before or after the scheduler step differently)",
                l.step,
                num(l.lr_a),
                num(l.lr_b)
            ),
        ));
    }
}

fn weight_findings(w: &WeightDiff, reasons: &mut Vec<Finding>, info: &mut Vec<Finding>) {
    let s = &w.summary;
    let what = if w.kind == super::weights::WeightKind::Adapter {
        "ΔW of"
    } else {
        ""
    };
    let unit = if w.kind == super::weights::WeightKind::Adapter {
        "modules"
    } else {
        "tensors"
    };
    if s.within < s.compared {
        reasons.push(Finding::new(
            "weights-outside-tolerance",
            format!(
                "{what} {} of {} {unit} differ beyond {} (relative Frobenius); worst `{}` at {}",
                s.compared - s.within,
                s.compared,
                num(w.wtol),
                s.worst.clone().unwrap_or_default(),
                num(s.max_rel)
            )
            .trim_start()
            .to_string(),
        ));
    }
    if !w.only_in_a.is_empty() {
        reasons.push(Finding::new(
            "tensors-missing",
            format!(
                "B lacks {} {unit} that A has: {}",
                w.only_in_a.len(),
                list(&w.only_in_a, 4)
            ),
        ));
    }
    if !w.only_in_b.is_empty() {
        reasons.push(Finding::new(
            "tensors-extra",
            format!(
                "B has {} {unit} that A lacks: {}",
                w.only_in_b.len(),
                list(&w.only_in_b, 4)
            ),
        ));
    }
    if let Some((ta, tb)) = &w.targets_differ {
        reasons.push(Finding::new(
            "targets-differ",
            format!(
                "LoRA target_modules differ: A [{}], B [{}]",
                ta.join(", "),
                tb.join(", ")
            ),
        ));
    }
    for p in &w.mismatched {
        reasons.push(Finding::new(
            "tensor-mismatch",
            format!("`{}`: {}", p.name, p.what),
        ));
    }
    let bad: u64 = w
        .modules
        .iter()
        .map(|m| m.delta.non_finite)
        .chain(w.tensors.iter().map(|t| t.stats.non_finite))
        .sum();
    if bad > 0 {
        reasons.push(Finding::new(
            "non-finite-weights",
            format!("{bad} weight values are NaN or infinite"),
        ));
    }
    let ranks: std::collections::BTreeSet<(usize, usize)> = w
        .modules
        .iter()
        .filter(|m| m.rank_a != m.rank_b)
        .map(|m| (m.rank_a, m.rank_b))
        .collect();
    for (ra, rb) in ranks {
        info.push(Finding::new(
            "rank-differs",
            format!("LoRA ranks differ (A r={ra}, B r={rb}): factors not compared element-wise, ΔW = s·B·A compared"),
        ));
    }
}

#[cfg(test)]
mod tests;
