//! The terminal summary: runs, tolerances, a short curve table, the largest weight differences,
//! notes and the verdict with its findings.

use super::model::{cos_text, CurveSection, Report, WeightSection};
use super::table::{text, Column, Span, Table};
use super::text::{ellipsize, sci};
use crate::diff::comparison::Comparison;
use std::fmt::Write as _;

/// Curve rows shown in the terminal (start, divergence, largest difference, end).
const CURVE_ROWS: usize = 14;
/// Weight rows shown in the terminal, largest relative difference first.
const WEIGHT_ROWS: usize = 8;

/// The terminal summary.
pub fn terminal(c: &Comparison) -> String {
    render(&Report::new(c))
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    for (n, i) in r.sides {
        let _ = writeln!(
            s,
            "{n}: {} ({}, {})",
            i.path.display(),
            i.format,
            i.precision
        );
    }
    let t = r.tolerances;
    let _ = writeln!(
        s,
        "tolerances: rtol {} atol {} weights {} ({})",
        sci(t.rtol),
        sci(t.atol),
        sci(t.wtol),
        t.origin
    );
    if let Some(cs) = &r.curves {
        curves(&mut s, cs);
    }
    if let Some(ws) = &r.weights {
        weights(&mut s, ws);
    }
    for n in &r.notes {
        let _ = match n.side {
            Some(side) => writeln!(s, "note ({side}): {}", n.text),
            None => writeln!(s, "note: {}", n.text),
        };
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "verdict: {}", r.verdict);
    for f in r.reasons {
        let _ = writeln!(s, "  ✗ [{}] {}", f.id, f.message);
    }
    for f in r.info {
        let _ = writeln!(s, "  · [{}] {}", f.id, f.message);
    }
    s
}

/// A summary's first line, then its details indented under it.
fn summary(s: &mut String, lines: &[String]) {
    for (k, line) in lines.iter().enumerate() {
        let ind = if k == 0 { "" } else { "  " };
        let _ = writeln!(s, "{ind}{line}");
    }
}

fn curves(s: &mut String, cs: &CurveSection) {
    let _ = writeln!(s);
    summary(s, &cs.summary);
    let _ = writeln!(s);
    s.push_str(&cs.table(CURVE_ROWS).terminal());
}

fn weights(s: &mut String, ws: &WeightSection) {
    let _ = writeln!(s);
    summary(s, &ws.summary);
    let mut rows: Vec<_> = ws.rows.iter().collect();
    rows.sort_by(|a, b| b.rel.total_cmp(&a.rel));
    let mut t = Table::new(vec![
        Column::left("largest differences", 48),
        Column::right("rel", 9),
        Column::right("cos", 10),
        Column::right("max|Δ|", 9),
        Column::left("", 0),
    ]);
    for r in rows.iter().take(WEIGHT_ROWS) {
        t.push(vec![
            text(ellipsize(&r.name, 48)),
            text(sci(r.rel)),
            text(cos_text(r.cos)),
            text(r.max_abs.map(sci).unwrap_or_else(|| "—".into())),
            vec![Span::Within(r.within)],
        ]);
    }
    let _ = writeln!(s);
    s.push_str(&t.terminal());
}
