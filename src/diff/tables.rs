//! Curve tables through polars (cargo feature `tables`): the aligned rows as a DataFrame,
//! written as Parquet. CSV needs no polars and lives in `report::csv`.

use super::curves::CurveDiff;
use super::report::error::ReportError;
use polars::prelude::*;
use std::path::Path;

/// The aligned rows as a DataFrame, one column per field of `CurveRow`.
pub fn curve_frame(cd: &CurveDiff) -> PolarsResult<DataFrame> {
    let r = &cd.rows;
    let f = |g: &dyn Fn(&super::curves::CurveRow) -> f64| r.iter().map(g).collect::<Vec<f64>>();
    let o = |g: &dyn Fn(&super::curves::CurveRow) -> Option<f64>| {
        r.iter().map(g).collect::<Vec<Option<f64>>>()
    };
    DataFrame::new(
        r.len(),
        vec![
            Column::new("x".into(), f(&|r| r.x)),
            Column::new(
                "step_a".into(),
                r.iter().map(|r| r.step_a).collect::<Vec<u64>>(),
            ),
            Column::new(
                "step_b".into(),
                r.iter().map(|r| r.step_b).collect::<Vec<u64>>(),
            ),
            Column::new("loss_a".into(), f(&|r| r.loss_a)),
            Column::new("loss_b".into(), f(&|r| r.loss_b)),
            Column::new("abs_diff".into(), f(&|r| r.abs)),
            Column::new("rel_diff".into(), f(&|r| r.rel)),
            Column::new("band".into(), f(&|r| r.band)),
            Column::new(
                "within".into(),
                r.iter().map(|r| r.within).collect::<Vec<bool>>(),
            ),
            Column::new("lr_a".into(), o(&|r| r.lr_a)),
            Column::new("lr_b".into(), o(&|r| r.lr_b)),
            Column::new("grad_norm_a".into(), o(&|r| r.grad_norm_a)),
            Column::new("grad_norm_b".into(), o(&|r| r.grad_norm_b)),
        ],
    )
}

/// Write the aligned rows as Parquet.
pub fn write_parquet(cd: &CurveDiff, path: &Path) -> Result<(), ReportError> {
    let err = |e: PolarsError| ReportError::Table {
        path: path.into(),
        message: e.to_string(),
    };
    let mut df = curve_frame(cd).map_err(err)?;
    let file = std::fs::File::create(path).map_err(|e| ReportError::Io {
        path: path.into(),
        source: e,
    })?;
    ParquetWriter::new(file).finish(&mut df).map_err(err)?;
    Ok(())
}
