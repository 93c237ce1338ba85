//! The report model: what the terminal, Markdown and HTML reports show, built once from a
//! [`Comparison`]. The renderers only lay it out; every number is formatted here, so the three
//! agree digit for digit.

use super::table::{code, text, Cell, Column, Row, Span, Table};
use super::text::{fmt_x, sci, x_name};
use crate::diff::comparison::{Comparison, RunInfo, Tolerances};
use crate::diff::curves::CurveDiff;
use crate::diff::eval_curve::EvalDiff;
use crate::diff::verdict::{num, Finding};
use crate::diff::weights::{WeightDiff, WeightKind};

/// Everything a human-readable report shows.
pub struct Report<'a> {
    pub pass: bool,
    /// `PASS` or `DIFFERS`.
    pub verdict: &'static str,
    /// ("A", run A) and ("B", run B); A is the reference.
    pub sides: [(&'static str, &'a RunInfo); 2],
    pub tolerances: &'a Tolerances,
    /// Findings that fail the comparison.
    pub reasons: &'a [Finding],
    /// Findings worth knowing that do not fail it.
    pub info: &'a [Finding],
    pub curves: Option<CurveSection<'a>>,
    pub weights: Option<WeightSection<'a>>,
    /// The comparison's notes, then run A's, run B's and the weight comparison's.
    pub notes: Vec<Note<'a>>,
}

/// A remark, and the run it is about when it came from one side's reader.
pub struct Note<'a> {
    pub side: Option<&'static str>,
    pub text: &'a str,
}

/// The loss-curve half.
pub struct CurveSection<'a> {
    pub diff: &'a CurveDiff,
    /// One statement a line: what was compared, the differences, the final losses, where the
    /// curves leave the band.
    pub summary: Vec<String>,
}

/// The weight half.
pub struct WeightSection<'a> {
    pub diff: &'a WeightDiff,
    /// One statement a line: what was compared and how close, then what was not comparable.
    pub summary: Vec<String>,
    /// Modules, then plain tensors, in comparison order.
    pub rows: Vec<WeightRow>,
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

impl<'a> Report<'a> {
    pub fn new(c: &'a Comparison) -> Report<'a> {
        let notes = c
            .notes
            .iter()
            .map(|n| (None, n))
            .chain(c.a.notes.iter().map(|n| (Some("A"), n)))
            .chain(c.b.notes.iter().map(|n| (Some("B"), n)))
            .chain(c.weights.iter().flat_map(|w| &w.notes).map(|n| (None, n)))
            .map(|(side, n)| Note {
                side,
                text: n.as_str(),
            })
            .collect();
        Report {
            pass: c.verdict.pass,
            verdict: if c.verdict.pass { "PASS" } else { "DIFFERS" },
            sides: [("A", &c.a), ("B", &c.b)],
            tolerances: &c.tolerances,
            reasons: &c.verdict.reasons,
            info: &c.verdict.info,
            curves: c.curves.as_ref().map(CurveSection::new),
            weights: c.weights.as_ref().map(WeightSection::new),
            notes,
        }
    }

    /// The tolerances in force, as one sentence.
    pub fn tolerances_sentence(&self) -> String {
        let t = self.tolerances;
        format!(
            "Tolerances: curve rtol {} + atol {} (band = atol + rtol·|loss A|), weights {} relative Frobenius — {}.",
            sci(t.rtol),
            sci(t.atol),
            sci(t.wtol),
            t.origin
        )
    }

    /// The two runs: path, format, precision and where it was read, curve, weight files.
    pub fn runs_table(&self) -> Table {
        let mut t = Table::new(
            ["", "run", "format", "precision", "curve", "weights"]
                .into_iter()
                .map(|h| Column::left(h, 0))
                .collect(),
        );
        for (n, i) in self.sides {
            let mut precision = text(i.precision.to_string());
            if let Some(p) = &i.precision_source {
                precision.extend([
                    Span::Text(" (".into()),
                    Span::Code(p.clone()),
                    Span::Text(")".into()),
                ]);
            }
            let curve = match &i.curve {
                Some(p) => vec![
                    Span::Code(p.display().to_string()),
                    Span::Text(format!(" ({} points)", i.curve_points)),
                ],
                None => text("—"),
            };
            let weights = if i.weight_files.is_empty() {
                text("—")
            } else {
                let mut cell = Cell::new();
                for (k, p) in i.weight_files.iter().enumerate() {
                    if k > 0 {
                        cell.push(Span::Break);
                    }
                    cell.push(Span::Code(p.display().to_string()));
                }
                cell
            };
            t.push(vec![
                text(n),
                code(i.path.display().to_string()),
                text(i.format.to_string()),
                precision,
                curve,
                weights,
            ]);
        }
        t
    }
}

impl<'a> CurveSection<'a> {
    fn new(cd: &'a CurveDiff) -> CurveSection<'a> {
        CurveSection {
            diff: cd,
            summary: curve_summary(cd),
        }
    }

    /// The aligned rows, at most about `max_rows` of them (see [`sample_rows`]).
    pub fn table(&self, max_rows: usize) -> Table {
        let cd = self.diff;
        let mut t = Table::new(vec![
            Column::right(x_name(cd.by), 8),
            Column::right("loss A", 12),
            Column::right("loss B", 12),
            Column::right("|Δ|", 10),
            Column::right("rel", 10),
            Column::right("band", 10),
            Column::left("", 0),
        ]);
        for i in sample_rows(cd, max_rows) {
            let Some(i) = i else {
                t.rows.push(Row::Gap);
                continue;
            };
            let r = &cd.rows[i];
            t.push(vec![
                text(fmt_x(cd.by, r)),
                text(format!("{:.6}", r.loss_a)),
                text(format!("{:.6}", r.loss_b)),
                text(sci(r.abs)),
                text(sci(r.rel)),
                text(sci(r.band)),
                vec![Span::Within(r.within)],
            ]);
        }
        t
    }
}

fn curve_summary(cd: &CurveDiff) -> Vec<String> {
    let mut s = vec![format!(
        "loss curves by {}: A {} points (last step {}), B {} points (last step {}), {} compared{}",
        x_name(cd.by),
        cd.len_a,
        cd.last_step_a,
        cd.len_b,
        cd.last_step_b,
        cd.rows.len(),
        cd.ema.map(|w| format!(", EMA {w}")).unwrap_or_default()
    )];
    if cd.rows.is_empty() {
        return s;
    }
    let at = |i: Option<usize>| i.map(|i| fmt_x(cd.by, &cd.rows[i])).unwrap_or_default();
    s.push(format!(
        "max |Δ| {}  mean |Δ| {}  max rel {} (at {} {})  mean rel {}",
        sci(cd.max_abs),
        sci(cd.mean_abs),
        sci(cd.max_rel),
        x_name(cd.by),
        at(cd.max_rel_row),
        sci(cd.mean_rel)
    ));
    let last = cd
        .rows
        .last()
        .map(|r| (r.loss_a, r.loss_b))
        .unwrap_or_default();
    s.push(format!(
        "final loss A {} B {} (B − A {});  mean of last {}: A {} B {} (B − A {})",
        num(last.0),
        num(last.1),
        sci(cd.final_delta),
        cd.last_k,
        num(cd.last_k_mean_a),
        num(cd.last_k_mean_b),
        sci(cd.last_k_mean_b - cd.last_k_mean_a)
    ));
    s.push(match cd.first_divergent_row() {
        Some(r) => format!(
            "first {} outside the band: {} ({} of {} outside)",
            x_name(cd.by),
            fmt_x(cd.by, r),
            cd.outside,
            cd.rows.len()
        ),
        None => "every compared point is inside the band".into(),
    });
    if let Some(e) = &cd.eval {
        s.push(eval_summary(e));
    }
    s
}

/// One line on the eval losses: how many, how close, where they leave the band.
fn eval_summary(e: &EvalDiff) -> String {
    let head = format!(
        "eval loss: A {} evals, B {}, {} compared by step",
        e.len_a,
        e.len_b,
        e.rows.len()
    );
    let Some(last) = e.rows.last() else {
        return head;
    };
    let band = match e.first_divergent.map(|i| &e.rows[i]) {
        Some(r) => format!(
            "first step outside the band: {} ({} of {} outside)",
            r.step,
            e.outside,
            e.rows.len()
        ),
        None => "all inside the band".into(),
    };
    format!(
        "{head};  max rel {};  last (step {}) A {} B {};  {band}",
        sci(e.max_rel),
        last.step,
        num(last.loss_a),
        num(last.loss_b)
    )
}

/// The rows worth showing in a short table: the start, around the first divergence, the
/// largest difference and the end. `None` marks a gap.
pub fn sample_rows(c: &CurveDiff, max_rows: usize) -> Vec<Option<usize>> {
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

impl<'a> WeightSection<'a> {
    fn new(w: &'a WeightDiff) -> WeightSection<'a> {
        WeightSection {
            diff: w,
            summary: weight_summary(w),
            rows: weight_rows(w),
        }
    }

    /// Whether the rows are LoRA modules (ΔW = s·B·A) rather than plain tensors.
    pub fn adapter(&self) -> bool {
        self.diff.kind == WeightKind::Adapter
    }

    /// Every module or tensor: ΔW statistics (and the factors' for adapters).
    pub fn table(&self) -> Table {
        let adapter = self.adapter();
        let mut t = Table::new(if adapter {
            vec![
                Column::left("module", 0),
                Column::left("ΔW shape", 0),
                Column::left("rank", 0),
                Column::right("rel ΔW", 0),
                Column::right("cos ΔW", 0),
                Column::right("max|Δ| ΔW", 0),
                Column::right("‖ΔW‖ A", 0),
                Column::right("‖ΔW‖ B", 0),
                Column::right("rel A", 0),
                Column::right("rel B", 0),
                Column::left("", 0),
            ]
        } else {
            vec![
                Column::left("tensor", 0),
                Column::left("shape", 0),
                Column::right("rel", 0),
                Column::right("cos", 0),
                Column::right("max|Δ|", 0),
                Column::right("‖A‖", 0),
                Column::right("‖B‖", 0),
                Column::left("", 0),
            ]
        });
        let or_dash = |x: Option<f64>| text(x.map(sci).unwrap_or_else(|| "—".into()));
        for r in &self.rows {
            let mut cells = vec![code(r.name.clone()), text(r.shape.clone())];
            // A plain tensor in an adapter file has no rank and no factors.
            let module = !r.rank.is_empty();
            if adapter {
                cells.push(if module {
                    text(r.rank.clone())
                } else {
                    Cell::new()
                });
            }
            cells.extend([
                text(sci(r.rel)),
                text(cos_text(r.cos)),
                or_dash(r.max_abs),
                text(sci(r.norm_a)),
                text(sci(r.norm_b)),
            ]);
            if adapter && module {
                cells.extend([or_dash(r.factor_a_rel), or_dash(r.factor_b_rel)]);
            } else if adapter {
                cells.extend([Cell::new(), Cell::new()]);
            }
            cells.push(vec![Span::Within(r.within)]);
            t.push(cells);
        }
        t
    }
}

/// A cosine similarity to six places, `—` when undefined.
pub fn cos_text(c: Option<f64>) -> String {
    c.map(|c| format!("{c:.6}")).unwrap_or_else(|| "—".into())
}

fn weight_summary(w: &WeightDiff) -> Vec<String> {
    let sm = &w.summary;
    let what = match w.kind {
        WeightKind::Adapter => "adapter modules (ΔW = s·B·A)",
        WeightKind::Full => "tensors",
    };
    let secs = sm.seconds.max(1e-9);
    let compared = format!(
        "weights: {} {what} compared, {} within {}; max rel {} ({}), min cos {}, overall rel {}",
        sm.compared,
        sm.within,
        sci(w.wtol),
        sci(sm.max_rel),
        sm.worst.as_deref().unwrap_or("—"),
        cos_text(sm.min_cos),
        sci(sm.global_rel)
    );
    // Read speed is only worth a mention for files large enough to take a while.
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
    let missing = format!(
        "{speed}only in A: {}, only in B: {}, mismatched: {}",
        w.only_in_a.len(),
        w.only_in_b.len(),
        w.mismatched.len()
    );
    vec![compared, missing]
}

/// The weight table's rows: modules, then plain tensors.
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
