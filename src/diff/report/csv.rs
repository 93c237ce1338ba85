//! The CSV tables (`curves.csv`, `weights.csv`): every row, full precision, for spreadsheets
//! and scripts.

use super::model::weight_rows;
use crate::diff::curves::CurveDiff;
use crate::diff::weights::WeightDiff;
use std::fmt::Write as _;

/// An optional number, empty when missing.
fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v}")).unwrap_or_default()
}

/// The aligned curve table as CSV.
pub fn curves_csv(cd: &CurveDiff) -> String {
    let mut s = String::from("x,step_a,step_b,loss_a,loss_b,abs_diff,rel_diff,band,within,lr_a,lr_b,grad_norm_a,grad_norm_b\n");
    for r in &cd.rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.x,
            r.step_a,
            r.step_b,
            r.loss_a,
            r.loss_b,
            r.abs,
            r.rel,
            r.band,
            r.within,
            opt(r.lr_a),
            opt(r.lr_b),
            opt(r.grad_norm_a),
            opt(r.grad_norm_b)
        );
    }
    s
}

/// The weight table as CSV.
pub fn weights_csv(w: &WeightDiff) -> String {
    let mut s = String::from("name,shape,rank,rel_frobenius,cosine,max_abs_diff,norm_a,norm_b,lora_a_rel,lora_b_rel,within\n");
    for r in weight_rows(w) {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.name,
            r.shape,
            r.rank,
            r.rel,
            opt(r.cos),
            opt(r.max_abs),
            r.norm_a,
            r.norm_b,
            opt(r.factor_a_rel),
            opt(r.factor_b_rel),
            r.within
        );
    }
    s
}
