//! Reports of a comparison: a terminal summary, JSON, Markdown, a self-contained HTML page
//! (the SVG plot inline), the PNG/SVG plots and CSV tables.
//!
//! [`write_report`] writes everything into one folder:
//! `report.md`, `report.html`, `curves.png`, `curves.svg`, `curves.csv`, `weights.csv`,
//! `diff.json` (and `curves.parquet` with the `tables` feature).

use super::comparison::Comparison;
use super::curves::{Axis, CurveDiff, CurveRow};
use super::verdict::num;
use super::weights::{WeightDiff, WeightKind};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A report file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Plot(#[from] super::plot::PlotError),
    /// Writing Parquet failed.
    #[error("{}: {message}", path.display())]
    Table { path: PathBuf, message: String },
}

fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if !x.is_finite() {
        format!("{x}")
    } else {
        format!("{x:.2e}")
    }
}

fn x_name(by: Axis) -> &'static str {
    match by {
        Axis::Step => "step",
        Axis::Tokens => "tokens",
    }
}

/// The rows worth showing in a short table: the start, around the first divergence, the
/// largest difference and the end. `None` marks a gap.
fn sample_rows(c: &CurveDiff, max_rows: usize) -> Vec<Option<usize>> {
    let n = c.rows.len();
    if n <= max_rows {
        return (0..n).map(Some).collect();
    }
    let mut keep = std::collections::BTreeSet::new();
    keep.extend(0..3.min(n));
    if let Some(f) = c.first_divergent {
        keep.extend(f.saturating_sub(1)..(f + 3).min(n));
    }
    if let Some(m) = c.max_rel_row {
        keep.insert(m);
    }
    keep.extend(n.saturating_sub(3)..n);
    let mut out = Vec::new();
    let mut prev: Option<usize> = None;
    for i in keep {
        if prev.is_some_and(|p| i > p + 1) {
            out.push(None);
        }
        out.push(Some(i));
        prev = Some(i);
    }
    out
}

fn mark(r: &CurveRow) -> &'static str {
    if r.within {
        "ok"
    } else {
        "OUT"
    }
}

/// The terminal summary.
pub fn terminal(c: &Comparison) -> String {
    let mut s = String::new();
    let side = |i: &super::comparison::RunInfo| {
        format!("{} ({}, {})", i.path.display(), i.format, i.precision)
    };
    let _ = writeln!(s, "A: {}", side(&c.a));
    let _ = writeln!(s, "B: {}", side(&c.b));
    let t = &c.tolerances;
    let _ = writeln!(
        s,
        "tolerances: rtol {} atol {} weights {} ({})",
        sci(t.rtol),
        sci(t.atol),
        sci(t.wtol),
        t.origin
    );
    if let Some(cd) = &c.curves {
        let _ = writeln!(s);
        curve_summary(&mut s, cd, "");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:>8}  {:>12}  {:>12}  {:>10}  {:>10}  {:>10}",
            x_name(cd.by),
            "loss A",
            "loss B",
            "|Δ|",
            "rel",
            "band"
        );
        for r in sample_rows(cd, 14) {
            match r {
                None => {
                    let _ = writeln!(s, "  {:>8}", "…");
                }
                Some(i) => {
                    let r = &cd.rows[i];
                    let _ = writeln!(
                        s,
                        "  {:>8}  {:>12.6}  {:>12.6}  {:>10}  {:>10}  {:>10}  {}",
                        fmt_x(cd.by, r),
                        r.loss_a,
                        r.loss_b,
                        sci(r.abs),
                        sci(r.rel),
                        sci(r.band),
                        mark(r)
                    );
                }
            }
        }
    }
    if let Some(w) = &c.weights {
        let _ = writeln!(s);
        weight_summary(&mut s, w, "");
        let mut rows = weight_rows(w);
        rows.sort_by(|a, b| b.rel.total_cmp(&a.rel));
        let _ = writeln!(
            s,
            "\n  {:<48}  {:>9}  {:>10}  {:>9}  {:>9}",
            "largest differences", "rel", "cos", "max|Δ|", ""
        );
        for r in rows.iter().take(8) {
            let _ = writeln!(
                s,
                "  {:<48}  {:>9}  {:>10}  {:>9}  {}",
                ellipsize(&r.name, 48),
                sci(r.rel),
                r.cos
                    .map(|c| format!("{c:.6}"))
                    .unwrap_or_else(|| "—".into()),
                r.max_abs.map(sci).unwrap_or_else(|| "—".into()),
                if r.within { "ok" } else { "OUT" }
            );
        }
    }
    for n in &c.notes {
        let _ = writeln!(s, "note: {n}");
    }
    for (side, info) in [("A", &c.a), ("B", &c.b)] {
        for n in &info.notes {
            let _ = writeln!(s, "note ({side}): {n}");
        }
    }
    if let Some(w) = &c.weights {
        for n in &w.notes {
            let _ = writeln!(s, "note: {n}");
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "verdict: {}",
        if c.verdict.pass { "PASS" } else { "DIFFERS" }
    );
    for f in &c.verdict.reasons {
        let _ = writeln!(s, "  ✗ [{}] {}", f.id, f.message);
    }
    for f in &c.verdict.info {
        let _ = writeln!(s, "  · [{}] {}", f.id, f.message);
    }
    s
}

fn ellipsize(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.to_string()
    } else {
        format!("…{}", s.chars().skip(count - n + 1).collect::<String>())
    }
}

fn fmt_x(by: Axis, r: &CurveRow) -> String {
    match by {
        Axis::Step => r.step_a.to_string(),
        Axis::Tokens => format!("{}", r.x),
    }
}

fn curve_summary(s: &mut String, cd: &CurveDiff, bullet: &str) {
    // Sub-lines are indented in the terminal and separate items in Markdown.
    let ind = if bullet.is_empty() { "  " } else { "" };
    let _ = writeln!(
        s,
        "{bullet}loss curves by {}: A {} points (last step {}), B {} points (last step {}), {} compared{}",
        x_name(cd.by),
        cd.len_a,
        cd.last_step_a,
        cd.len_b,
        cd.last_step_b,
        cd.rows.len(),
        cd.ema.map(|w| format!(", EMA {w}")).unwrap_or_default()
    );
    if cd.rows.is_empty() {
        return;
    }
    let at = |i: Option<usize>| i.map(|i| fmt_x(cd.by, &cd.rows[i])).unwrap_or_default();
    let _ = writeln!(
        s,
        "{bullet}{ind}max |Δ| {}  mean |Δ| {}  max rel {} (at {} {})  mean rel {}",
        sci(cd.max_abs),
        sci(cd.mean_abs),
        sci(cd.max_rel),
        x_name(cd.by),
        at(cd.max_rel_row),
        sci(cd.mean_rel)
    );
    let last = cd
        .rows
        .last()
        .map(|r| (r.loss_a, r.loss_b))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "{bullet}{ind}final loss A {} B {} (B − A {});  mean of last {}: A {} B {} (B − A {})",
        num(last.0),
        num(last.1),
        sci(cd.final_delta),
        cd.last_k,
        num(cd.last_k_mean_a),
        num(cd.last_k_mean_b),
        sci(cd.last_k_mean_b - cd.last_k_mean_a)
    );
    match cd.first_divergent_row() {
        Some(r) => {
            let _ = writeln!(
                s,
                "{bullet}{ind}first {} outside the band: {} ({} of {} outside)",
                x_name(cd.by),
                fmt_x(cd.by, r),
                cd.outside,
                cd.rows.len()
            );
        }
        None => {
            let _ = writeln!(s, "{bullet}{ind}every compared point is inside the band");
        }
    }
}

fn weight_summary(s: &mut String, w: &WeightDiff, bullet: &str) {
    let ind = if bullet.is_empty() { "  " } else { "" };
    let sm = &w.summary;
    let what = match w.kind {
        WeightKind::Adapter => "adapter modules (ΔW = s·B·A)",
        WeightKind::Full => "tensors",
    };
    let secs = sm.seconds.max(1e-9);
    let _ = writeln!(
        s,
        "{bullet}weights: {} {what} compared, {} within {}; max rel {} ({}), min cos {}, overall rel {}",
        sm.compared,
        sm.within,
        sci(w.wtol),
        sci(sm.max_rel),
        sm.worst.as_deref().unwrap_or("—"),
        sm.min_cos.map(|c| format!("{c:.6}")).unwrap_or_else(|| "—".into()),
        sci(sm.global_rel)
    );
    let speed = if sm.bytes_a + sm.bytes_b >= 64 << 20 {
        format!(
            "read {:.1} MB + {:.1} MB in {:.2} s ({:.2} GB/s); ",
            sm.bytes_a as f64 / 1e6,
            sm.bytes_b as f64 / 1e6,
            sm.seconds,
            (sm.bytes_a + sm.bytes_b) as f64 / secs / 1e9
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "{bullet}{ind}{speed}only in A: {}, only in B: {}, mismatched: {}",
        w.only_in_a.len(),
        w.only_in_b.len(),
        w.mismatched.len()
    );
}

/// One row of the weight table, for modules and tensors alike.
pub struct WeightRow {
    pub name: String,
    pub shape: String,
    pub rank: String,
    pub rel: f64,
    pub cos: Option<f64>,
    pub max_abs: Option<f64>,
    pub norm_a: f64,
    pub norm_b: f64,
    pub factor_a_rel: Option<f64>,
    pub factor_b_rel: Option<f64>,
    pub within: bool,
}

pub fn weight_rows(w: &WeightDiff) -> Vec<WeightRow> {
    let mut v: Vec<WeightRow> = w
        .modules
        .iter()
        .map(|m| WeightRow {
            name: m.module.clone(),
            shape: format!("{}×{}", m.shape[0], m.shape[1]),
            rank: if m.rank_a == m.rank_b {
                m.rank_a.to_string()
            } else {
                format!("{}/{}", m.rank_a, m.rank_b)
            },
            rel: m.delta.rel,
            cos: m.delta.cos,
            max_abs: m.delta.max_abs,
            norm_a: m.delta.norm_a,
            norm_b: m.delta.norm_b,
            factor_a_rel: m.lora_a.as_ref().map(|s| s.rel),
            factor_b_rel: m.lora_b.as_ref().map(|s| s.rel),
            within: m.within,
        })
        .collect();
    v.extend(w.tensors.iter().map(|t| {
        WeightRow {
            name: t.name.clone(),
            shape: t
                .shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×"),
            rank: String::new(),
            rel: t.stats.rel,
            cos: t.stats.cos,
            max_abs: t.stats.max_abs,
            norm_a: t.stats.norm_a,
            norm_b: t.stats.norm_b,
            factor_a_rel: None,
            factor_b_rel: None,
            within: t.within,
        }
    }));
    v
}

/// The comparison as JSON (for CI).
pub fn json(c: &Comparison) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
}

/// The aligned curve table as CSV.
pub fn curves_csv(cd: &CurveDiff) -> String {
    let mut s = String::from("x,step_a,step_b,loss_a,loss_b,abs_diff,rel_diff,band,within,lr_a,lr_b,grad_norm_a,grad_norm_b\n");
    let o = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
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
            o(r.lr_a),
            o(r.lr_b),
            o(r.grad_norm_a),
            o(r.grad_norm_b)
        );
    }
    s
}

/// The weight table as CSV.
pub fn weights_csv(w: &WeightDiff) -> String {
    let mut s = String::from("name,shape,rank,rel_frobenius,cosine,max_abs_diff,norm_a,norm_b,lora_a_rel,lora_b_rel,within\n");
    let o = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    for r in weight_rows(w) {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.name,
            r.shape,
            r.rank,
            r.rel,
            o(r.cos),
            o(r.max_abs),
            r.norm_a,
            r.norm_b,
            o(r.factor_a_rel),
            o(r.factor_b_rel),
            r.within
        );
    }
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The Markdown report. `png` is the plot's file name relative to the report, if written.
pub fn markdown(c: &Comparison, png: Option<&str>) -> String {
    let mut s = String::new();
    let verdict = if c.verdict.pass { "PASS" } else { "DIFFERS" };
    let _ = writeln!(s, "# tunebridge diff: {verdict}\n");
    let _ = writeln!(s, "| | run | format | precision | curve | weights |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for (n, i) in [("A", &c.a), ("B", &c.b)] {
        let _ = writeln!(
            s,
            "| {n} | `{}` | {} | {}{} | {} | {} |",
            i.path.display(),
            i.format,
            i.precision,
            i.precision_source
                .as_ref()
                .map(|p| format!(" (`{p}`)"))
                .unwrap_or_default(),
            i.curve
                .as_ref()
                .map(|p| format!("`{}` ({} points)", p.display(), i.curve_points))
                .unwrap_or_else(|| "—".into()),
            if i.weight_files.is_empty() {
                "—".into()
            } else {
                i.weight_files
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join("<br>")
            }
        );
    }
    let t = &c.tolerances;
    let _ = writeln!(
        s,
        "\nTolerances: curve rtol {} + atol {} (band = atol + rtol·|loss A|), weights {} relative Frobenius — {}.\n",
        sci(t.rtol),
        sci(t.atol),
        sci(t.wtol),
        t.origin
    );
    let _ = writeln!(s, "## Verdict: {verdict}\n");
    if c.verdict.reasons.is_empty() {
        let _ = writeln!(s, "Everything compared is within tolerance.\n");
    }
    for f in &c.verdict.reasons {
        let _ = writeln!(s, "- **`{}`** {}", f.id, md_escape(&f.message));
    }
    for f in &c.verdict.info {
        let _ = writeln!(s, "- `{}` (info) {}", f.id, md_escape(&f.message));
    }
    if let Some(cd) = &c.curves {
        let _ = writeln!(s, "\n## Loss curves\n");
        let mut summary = String::new();
        curve_summary(&mut summary, cd, "- ");
        s.push_str(&summary);
        if let Some(p) = png {
            let _ = writeln!(s, "\n![loss curves]({p})\n");
        }
        let limit = 200;
        let _ = writeln!(
            s,
            "\n| {} | loss A | loss B | \\|Δ\\| | rel | band | |",
            x_name(cd.by)
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---|");
        let idx: Vec<Option<usize>> = sample_rows(cd, limit);
        for r in idx {
            match r {
                None => {
                    let _ = writeln!(s, "| … | | | | | | |");
                }
                Some(i) => {
                    let r = &cd.rows[i];
                    let _ = writeln!(
                        s,
                        "| {} | {:.6} | {:.6} | {} | {} | {} | {} |",
                        fmt_x(cd.by, r),
                        r.loss_a,
                        r.loss_b,
                        sci(r.abs),
                        sci(r.rel),
                        sci(r.band),
                        if r.within { "" } else { "**outside**" }
                    );
                }
            }
        }
        if cd.rows.len() > limit {
            let _ = writeln!(
                s,
                "\nShowing {limit} of {} rows; all are in `curves.csv`.",
                cd.rows.len()
            );
        }
    }
    if let Some(w) = &c.weights {
        let _ = writeln!(s, "\n## Weights\n");
        let mut summary = String::new();
        weight_summary(&mut summary, w, "- ");
        s.push_str(&summary);
        let adapter = w.kind == WeightKind::Adapter;
        if adapter {
            let _ = writeln!(s, "\n| module | ΔW shape | rank | rel ΔW | cos ΔW | max\\|Δ\\| ΔW | ‖ΔW‖ A | ‖ΔW‖ B | rel A | rel B | |");
            let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        } else {
            let _ = writeln!(
                s,
                "\n| tensor | shape | rel | cos | max\\|Δ\\| | ‖A‖ | ‖B‖ | |"
            );
            let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|");
        }
        for r in weight_rows(w) {
            let flag = if r.within { "" } else { "**outside**" };
            let cos = r
                .cos
                .map(|c| format!("{c:.6}"))
                .unwrap_or_else(|| "—".into());
            if adapter && !r.rank.is_empty() {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.name,
                    r.shape,
                    r.rank,
                    sci(r.rel),
                    cos,
                    r.max_abs.map(sci).unwrap_or_else(|| "—".into()),
                    sci(r.norm_a),
                    sci(r.norm_b),
                    r.factor_a_rel.map(sci).unwrap_or_else(|| "—".into()),
                    r.factor_b_rel.map(sci).unwrap_or_else(|| "—".into()),
                    flag
                );
            } else if adapter {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | | {} | {} | {} | {} | {} | | | {} |",
                    r.name,
                    r.shape,
                    sci(r.rel),
                    cos,
                    r.max_abs.map(sci).unwrap_or_else(|| "—".into()),
                    sci(r.norm_a),
                    sci(r.norm_b),
                    flag
                );
            } else {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
                    r.name,
                    r.shape,
                    sci(r.rel),
                    cos,
                    r.max_abs.map(sci).unwrap_or_else(|| "—".into()),
                    sci(r.norm_a),
                    sci(r.norm_b),
                    flag
                );
            }
        }
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
    let notes: Vec<&String> = c
        .notes
        .iter()
        .chain(&c.a.notes)
        .chain(&c.b.notes)
        .chain(c.weights.iter().flat_map(|w| &w.notes))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(s, "- {}", md_escape(n));
        }
    }
    s
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A self-contained HTML page: the Markdown content rendered simply, the SVG plot inline.
pub fn html(c: &Comparison, svg: Option<&str>) -> String {
    let md = markdown(c, None);
    let mut body = String::new();
    let mut in_table = false;
    let mut in_list = false;
    for line in md.lines() {
        let is_row = line.starts_with('|');
        if in_table && !is_row {
            body.push_str("</table>\n");
            in_table = false;
        }
        let is_item = line.starts_with("- ");
        if in_list && !is_item {
            body.push_str("</ul>\n");
            in_list = false;
        }
        if is_row {
            if line.starts_with("|---") || line.starts_with("|--") {
                continue;
            }
            let cells: Vec<String> = split_md_row(line);
            if !in_table {
                body.push_str("<table>\n<tr>");
                for c in &cells {
                    let _ = write!(body, "<th>{}</th>", inline(c));
                }
                body.push_str("</tr>\n");
                in_table = true;
            } else {
                body.push_str("<tr>");
                for c in &cells {
                    let numeric = c == "—" || (!c.is_empty() && c.parse::<f64>().is_ok());
                    let cls = if c.contains("**outside**") {
                        " class=\"bad\""
                    } else if numeric {
                        " class=\"num\""
                    } else {
                        ""
                    };
                    let _ = write!(body, "<td{cls}>{}</td>", inline(c));
                }
                body.push_str("</tr>\n");
            }
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(body, "<h2>{}</h2>", inline(h));
            if h == "Loss curves" {
                if let Some(svg) = svg {
                    let _ = writeln!(body, "<div class=\"plot\">{svg}</div>");
                }
            }
        } else if let Some(h) = line.strip_prefix("# ") {
            let cls = if c.verdict.pass { "pass" } else { "fail" };
            let _ = writeln!(body, "<h1 class=\"{cls}\">{}</h1>", inline(h));
        } else if let Some(item) = line.strip_prefix("- ") {
            if !in_list {
                body.push_str("<ul>\n");
                in_list = true;
            }
            let _ = writeln!(body, "<li>{}</li>", inline(item));
        } else if !line.trim().is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        body.push_str("</table>\n");
    }
    if in_list {
        body.push_str("</ul>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tunebridge diff: {} vs {}</title>\n<style>\n{CSS}</style></head>\n<body>\n{body}</body></html>\n",
        html_escape(&c.a.label),
        html_escape(&c.b.label)
    )
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1.pass{color:#1a7f37}h1.fail{color:#c62828}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}td.bad{background:#fde8e8}
code{background:#f4f4f4;padding:0 3px;border-radius:3px}.plot svg{max-width:100%;height:auto}
";

fn split_md_row(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\\' && chars.peek() == Some(&'|') {
            cur.push('|');
            chars.next();
        } else if ch == '|' {
            cells.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(ch);
        }
    }
    cells.push(cur.trim().to_string());
    cells
}

/// `code`, **bold** and <br> in a line of our own Markdown.
fn inline(s: &str) -> String {
    let s = html_escape(s)
        .replace("&lt;br&gt;", "<br>")
        .replace("\\|", "|");
    let mut out = String::new();
    let (mut code, mut bold) = (false, false);
    let mut rest = s.as_str();
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = &rest[1..];
        } else if !code && rest.starts_with("**") {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = &rest[2..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</b>");
    }
    out
}

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
        super::plot::write_png(c, &p)?;
        written.push(p);
        png = Some("curves.png");
        let s = super::plot::svg(c)?;
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
            super::tables::write_parquet(cd, &p)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_markdown() {
        assert_eq!(
            inline("- **`id`** a `x` b"),
            "- <b><code>id</code></b> a <code>x</code> b"
        );
        assert_eq!(inline("a \\| b <c>"), "a | b &lt;c&gt;");
    }
}
