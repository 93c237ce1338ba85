//! Writing every report file into one folder.

use super::csv::{curves_csv, weights_csv};
use super::error::ReportError;
use super::html::html;
use super::json::json;
use super::markdown::markdown;
use crate::diff::comparison::Comparison;
use crate::diff::plot;
use std::path::{Path, PathBuf};

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|e| ReportError::Io {
        path: path.into(),
        source: e,
    })
}

/// Write every report file into `dir` (created if needed); returns the paths written.
pub fn write_report(c: &Comparison, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::Io {
        path: dir.into(),
        source: e,
    })?;
    let mut written = Vec::new();
    let mut svg = None;
    let mut png = None;
    if let Some(cd) = &c.curves {
        let p = dir.join("curves.png");
        plot::write_png(c, &p)?;
        written.push(p);
        png = Some("curves.png");
        let s = plot::svg(c)?;
        let p = dir.join("curves.svg");
        write(&p, &s)?;
        written.push(p);
        svg = Some(s);
        let p = dir.join("curves.csv");
        write(&p, &curves_csv(cd))?;
        written.push(p);
        #[cfg(feature = "tables")]
        {
            let p = dir.join("curves.parquet");
            crate::diff::tables::write_parquet(cd, &p)?;
            written.push(p);
        }
    }
    if let Some(w) = &c.weights {
        let p = dir.join("weights.csv");
        write(&p, &weights_csv(w))?;
        written.push(p);
    }
    let p = dir.join("report.md");
    write(&p, &markdown(c, png))?;
    written.push(p);
    let p = dir.join("report.html");
    write(&p, &html(c, svg.as_deref()))?;
    written.push(p);
    let p = dir.join("diff.json");
    write(
        &p,
        &serde_json::to_string_pretty(&json(c)).unwrap_or_default(),
    )?;
    written.push(p);
    Ok(written)
}
