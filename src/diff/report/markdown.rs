//! The Markdown report (`report.md`): runs, tolerances, verdict, curve summary and table (up
//! to 200 rows), weight table, notes.

use super::model::{CurveSection, Report, WeightSection};
use super::text::md_escape;
use crate::diff::comparison::Comparison;
use std::fmt::Write as _;

/// Curve rows in the Markdown and HTML reports; `curves.csv` has them all.
pub const CURVE_ROWS: usize = 200;

/// The Markdown report. `png` is the plot's file name relative to the report, if written.
pub fn markdown(c: &Comparison, png: Option<&str>) -> String {
    render(&Report::new(c), png)
}

fn render(r: &Report, png: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# tunebridge diff: {}\n", r.verdict);
    s.push_str(&r.runs_table().markdown());
    let _ = writeln!(s, "\n{}\n", r.tolerances_sentence());
    let _ = writeln!(s, "## Verdict: {}\n", r.verdict);
    if r.reasons.is_empty() {
        let _ = writeln!(s, "Everything compared is within tolerance.\n");
    }
    for f in r.reasons {
        let _ = writeln!(s, "- **`{}`** {}", f.id, md_escape(&f.message));
    }
    for f in r.info {
        let _ = writeln!(s, "- `{}` (info) {}", f.id, md_escape(&f.message));
    }
    if let Some(cs) = &r.curves {
        curves(&mut s, cs, png);
    }
    if let Some(ws) = &r.weights {
        weights(&mut s, ws);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {}", md_escape(n.text));
        }
    }
    s
}

fn curves(s: &mut String, cs: &CurveSection, png: Option<&str>) {
    let _ = writeln!(s, "\n## Loss curves\n");
    for line in &cs.summary {
        let _ = writeln!(s, "- {line}");
    }
    if let Some(p) = png {
        let _ = writeln!(s, "\n![loss curves]({p})\n");
    }
    let _ = writeln!(s);
    s.push_str(&cs.table(CURVE_ROWS).markdown());
    if cs.diff.rows.len() > CURVE_ROWS {
        let _ = writeln!(
            s,
            "\nShowing {CURVE_ROWS} of {} rows; all are in `curves.csv`.",
            cs.diff.rows.len()
        );
    }
}

fn weights(s: &mut String, ws: &WeightSection) {
    let _ = writeln!(s, "\n## Weights\n");
    for line in &ws.summary {
        let _ = writeln!(s, "- {line}");
    }
    let _ = writeln!(s);
    s.push_str(&ws.table().markdown());
    let w = ws.diff;
    for (what, v) in [("Only in A", &w.only_in_a), ("Only in B", &w.only_in_b)] {
        if !v.is_empty() {
            let _ = writeln!(
                s,
                "\n{what}: {}",
                v.iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    for p in &w.mismatched {
        let _ = writeln!(s, "\nMismatched `{}`: {}", p.name, md_escape(&p.what));
    }
}
