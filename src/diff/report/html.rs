//! The HTML report (`report.html`): one self-contained page with the content of the Markdown
//! report, rendered from the same model, and the SVG plot inline.

use super::markdown::CURVE_ROWS;
use super::model::{CurveSection, Report, WeightSection};
use super::text::{html_escape, html_inline};
use crate::diff::comparison::Comparison;
use std::fmt::Write as _;

/// A self-contained HTML page, the SVG plot (if drawn) inline.
pub fn html(c: &Comparison, svg: Option<&str>) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tunebridge diff: {} vs {}</title>\n<style>\n{CSS}</style></head>\n<body>\n{}</body></html>\n",
        html_escape(&c.a.label),
        html_escape(&c.b.label),
        body(&Report::new(c), svg)
    )
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1.pass{color:#1a7f37}h1.fail{color:#c62828}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}td.bad{background:#fde8e8}
code{background:#f4f4f4;padding:0 3px;border-radius:3px}.plot svg{max-width:100%;height:auto}
";

fn body(r: &Report, svg: Option<&str>) -> String {
    let mut b = String::new();
    let cls = if r.pass { "pass" } else { "fail" };
    let _ = writeln!(b, "<h1 class=\"{cls}\">tunebridge diff: {}</h1>", r.verdict);
    b.push_str(&r.runs_table().html());
    paragraph(&mut b, &r.tolerances_sentence());
    let _ = writeln!(b, "<h2>Verdict: {}</h2>", r.verdict);
    if r.reasons.is_empty() {
        paragraph(&mut b, "Everything compared is within tolerance.");
    }
    let findings = r
        .reasons
        .iter()
        .map(|f| {
            format!(
                "<b><code>{}</code></b> {}",
                html_escape(&f.id),
                html_inline(&f.message)
            )
        })
        .chain(r.info.iter().map(|f| {
            format!(
                "<code>{}</code> (info) {}",
                html_escape(&f.id),
                html_inline(&f.message)
            )
        }));
    list(&mut b, findings);
    if let Some(cs) = &r.curves {
        curves(&mut b, cs, svg);
    }
    if let Some(ws) = &r.weights {
        weights(&mut b, ws);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(b, "<h2>Notes</h2>");
        list(&mut b, r.notes.iter().map(|n| html_inline(n.text)));
    }
    b
}

fn curves(b: &mut String, cs: &CurveSection, svg: Option<&str>) {
    let _ = writeln!(b, "<h2>Loss curves</h2>");
    if let Some(svg) = svg {
        let _ = writeln!(b, "<div class=\"plot\">{svg}</div>");
    }
    list(b, cs.summary.iter().map(|l| html_inline(l)));
    b.push_str(&cs.table(CURVE_ROWS).html());
    if cs.diff.rows.len() > CURVE_ROWS {
        paragraph(
            b,
            &format!(
                "Showing {CURVE_ROWS} of {} rows; all are in `curves.csv`.",
                cs.diff.rows.len()
            ),
        );
    }
}

fn weights(b: &mut String, ws: &WeightSection) {
    let _ = writeln!(b, "<h2>Weights</h2>");
    list(b, ws.summary.iter().map(|l| html_inline(l)));
    b.push_str(&ws.table().html());
    let w = ws.diff;
    for (what, v) in [("Only in A", &w.only_in_a), ("Only in B", &w.only_in_b)] {
        if !v.is_empty() {
            let names = v
                .iter()
                .map(|x| format!("<code>{}</code>", html_escape(x)))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(b, "<p>{what}: {names}</p>");
        }
    }
    for p in &w.mismatched {
        let _ = writeln!(
            b,
            "<p>Mismatched <code>{}</code>: {}</p>",
            html_escape(&p.name),
            html_inline(&p.what)
        );
    }
}

/// A paragraph of prose (backtick code spans allowed).
fn paragraph(b: &mut String, text: &str) {
    let _ = writeln!(b, "<p>{}</p>", html_inline(text));
}

/// A bullet list of items already in HTML; nothing when there are none.
fn list(b: &mut String, items: impl Iterator<Item = String>) {
    let mut open = false;
    for item in items {
        if !open {
            b.push_str("<ul>\n");
            open = true;
        }
        let _ = writeln!(b, "<li>{item}</li>");
    }
    if open {
        b.push_str("</ul>\n");
    }
}
