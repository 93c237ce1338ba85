//! Curve parsers: TorchTune DiskLogger text, HF `trainer_state.json`, JSONL and CSV.
//!
//! Every parser returns points in file order; [`finish`] sorts them, merges duplicate steps
//! (the later value wins: a resumed run logs them again) and rejects empty curves. Python's
//! `json` writes NaN and Infinity as bare tokens, which are not JSON; [`sanitize_json`] turns
//! them into strings first so they can be reported by line instead of failing the parse.

use super::error::IngestError;
use super::run::{Curve, CurvePoint, EvalPoint};
use serde_json::Value;
use std::path::Path;

/// Read a whole text file.
pub(crate) fn read_text(path: &Path) -> Result<String, IngestError> {
    std::fs::read_to_string(path).map_err(|e| IngestError::io(path, e))
}

/// How tokens are counted in a row: cumulative already, or per step (to be summed).
#[derive(Clone, Copy, PartialEq)]
enum Tokens {
    Cumulative(f64),
    PerStep(f64),
}

/// A point as read, before tokens are made cumulative.
struct Raw {
    point: CurvePoint,
    tokens: Option<Tokens>,
    line: Option<usize>,
}

/// TorchTune DiskLogger: `Step {n} | {name}:{value} {name}:{value} \n` per optimizer step
/// (torchtune `training/metric_logging.py::DiskLogger.log_dict`). Other lines are ignored.
pub(crate) fn torchtune_log(path: &Path) -> Result<Curve, IngestError> {
    let text = read_text(path)?;
    let ends_with_newline = text.ends_with('\n');
    let n_lines = text.lines().count();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let Some(rest) = line.strip_prefix("Step ") else {
            continue;
        };
        let last = lineno == n_lines && !ends_with_newline;
        // DiskLogger ends every line with "value \n"; a last line without the newline and
        // without the trailing space was cut off mid-write.
        if last && !line.ends_with(' ') {
            return Err(IngestError::Truncated {
                path: path.into(),
                line: lineno,
            });
        }
        let (step_s, metrics) = rest.split_once('|').ok_or_else(|| {
            IngestError::parse(path, Some(lineno), "expected `Step N | name:value …`")
        })?;
        let step: u64 = step_s.trim().parse().map_err(|_| {
            IngestError::parse(
                path,
                Some(lineno),
                format!("step `{}` is not an integer", step_s.trim()),
            )
        })?;
        let mut p = CurvePoint {
            step,
            loss: f64::NAN,
            lr: None,
            grad_norm: None,
            tokens: None,
            epoch: None,
        };
        let mut has_loss = false;
        for item in metrics.split_whitespace() {
            let (k, v) = item.split_once(':').ok_or_else(|| {
                IngestError::parse(path, Some(lineno), format!("`{item}` is not name:value"))
            })?;
            let parse = |v: &str| -> Result<f64, IngestError> {
                parse_python_float(v).ok_or_else(|| {
                    IngestError::parse(path, Some(lineno), format!("{k}: `{v}` is not a number"))
                })
            };
            match k {
                "loss" => {
                    p.loss = parse(v)?;
                    has_loss = true;
                }
                "lr" => p.lr = Some(parse(v)?),
                "grad_norm" => p.grad_norm = Some(parse(v)?),
                _ => {}
            }
        }
        if !has_loss {
            // Validation-only or custom lines carry no training loss.
            continue;
        }
        rows.push(Raw {
            point: p,
            tokens: None,
            line: Some(lineno),
        });
    }
    finish(path, rows, "no `Step N | loss:…` lines")
}

/// Python `str(float)`: `nan`, `inf`, `-inf`, or a decimal.
fn parse_python_float(s: &str) -> Option<f64> {
    match s {
        "nan" | "NaN" => Some(f64::NAN),
        "inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Replace bare `NaN`, `Infinity`, `-Infinity` tokens outside strings by the strings
/// `"NaN"`, … so serde_json accepts the document. Returns the new text and the 1-based lines
/// where replacements happened.
pub(crate) fn sanitize_json(text: &str) -> (std::borrow::Cow<'_, str>, Vec<usize>) {
    if !text.contains("NaN") && !text.contains("Infinity") {
        return (std::borrow::Cow::Borrowed(text), Vec::new());
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut lines = Vec::new();
    let (mut in_str, mut escaped, mut line) = (false, false, 1usize);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if !in_str {
            if let Some(tok) = ["-Infinity", "Infinity", "NaN"]
                .iter()
                .find(|t| text[i..].starts_with(**t))
            {
                out.push('"');
                out.push_str(tok);
                out.push('"');
                lines.push(line);
                i += tok.len();
                continue;
            }
        }
        if c == b'\n' {
            line += 1;
        }
        if in_str {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        }
        // Copy one UTF-8 character.
        let ch_len = utf8_len(c);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    (std::borrow::Cow::Owned(out), lines)
}

fn utf8_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// A JSON number, or one of the strings `sanitize_json` produced.
fn json_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_python_float(s),
        _ => None,
    }
}

/// Read the curve fields of one metrics object (HF log entry, JSONL row).
fn point_from_object(
    obj: &serde_json::Map<String, Value>,
) -> Option<(u64, Option<f64>, CurvePoint, Option<Tokens>)> {
    let step = obj
        .get("step")
        .or_else(|| obj.get("global_step"))
        .or_else(|| obj.get("_step"))?;
    let step = match step {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })?,
        _ => return None,
    };
    let loss = obj
        .get("loss")
        .or_else(|| obj.get("train/loss"))
        .or_else(|| obj.get("train_loss_step"))
        .and_then(json_f64);
    let get = |keys: &[&str]| keys.iter().find_map(|k| obj.get(*k).and_then(json_f64));
    let tokens = get(&["tokens_seen", "num_input_tokens_seen", "tokens/total"])
        .filter(|t| *t > 0.0)
        .map(Tokens::Cumulative)
        .or_else(|| get(&["tokens"]).map(Tokens::PerStep));
    let p = CurvePoint {
        step,
        loss: loss.unwrap_or(f64::NAN),
        lr: get(&["lr", "learning_rate", "train/learning_rate"]),
        grad_norm: get(&["grad_norm", "train/grad_norm"]),
        tokens: None,
        epoch: get(&["epoch", "train/epoch"]),
    };
    Some((step, loss, p, tokens))
}

/// HF `TrainerState` JSON: the train entries of `log_history` (those with `loss`) and the eval
/// entries (`eval_loss`); the final `train_loss` summary is skipped.
pub(crate) fn trainer_state(path: &Path) -> Result<Curve, IngestError> {
    let text = read_text(path)?;
    if text.trim().is_empty() {
        return Err(IngestError::Empty {
            path: path.into(),
            what: "the file is empty".into(),
        });
    }
    let (clean, nan_lines) = sanitize_json(&text);
    let doc: Value = serde_json::from_str(&clean).map_err(|e| {
        if e.is_eof() {
            IngestError::Truncated {
                path: path.into(),
                line: e.line(),
            }
        } else {
            IngestError::parse(path, Some(e.line()), e.to_string())
        }
    })?;
    let history = doc
        .get("log_history")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            IngestError::parse(
                path,
                None,
                "no `log_history` array (is this a trainer_state.json?)",
            )
        })?;
    let mut rows = Vec::new();
    let mut evals = Vec::new();
    let mut nan_iter = nan_lines.iter();
    for entry in history {
        let Some(obj) = entry.as_object() else {
            continue;
        };
        if let Some(e) = eval_from_object(obj) {
            evals.push(e);
            continue;
        }
        let Some((_, loss, p, tokens)) = point_from_object(obj) else {
            continue;
        };
        if loss.is_none() {
            continue;
        }
        // The line of a non-finite value, when there is one, for the error message.
        let line = if !p.loss.is_finite() {
            nan_iter.next().copied()
        } else {
            None
        };
        rows.push(Raw {
            point: p,
            tokens,
            line,
        });
    }
    let mut curve = finish(path, rows, "`log_history` has no entries with a `loss`")?;
    curve.eval = sorted_evals(evals);
    Ok(curve)
}

/// JSONL: one object per line with `step` and `loss` (and optionally lr, grad_norm, tokens,
/// epoch), or `step` and `eval_loss` (an evaluation). Other lines (summaries) are skipped.
pub(crate) fn jsonl(path: &Path) -> Result<Curve, IngestError> {
    let text = read_text(path)?;
    let n_lines = text.lines().count();
    let ends_with_newline = text.ends_with('\n');
    let mut rows = Vec::new();
    let mut evals = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (clean, _) = sanitize_json(line);
        let v: Value = match serde_json::from_str(&clean) {
            Ok(v) => v,
            Err(e) => {
                if lineno == n_lines && !ends_with_newline && e.is_eof() {
                    return Err(IngestError::Truncated {
                        path: path.into(),
                        line: lineno,
                    });
                }
                return Err(IngestError::parse(path, Some(lineno), e.to_string()));
            }
        };
        let obj = v.as_object().ok_or_else(|| {
            IngestError::parse(path, Some(lineno), "expected a JSON object per line")
        })?;
        if !obj.contains_key("loss") {
            if let Some(e) = eval_from_object(obj) {
                evals.push(e);
                continue;
            }
        }
        let Some((_, loss, p, tokens)) = point_from_object(obj) else {
            if obj.contains_key("loss") {
                return Err(IngestError::parse(
                    path,
                    Some(lineno),
                    "a row with `loss` needs an integer `step`",
                ));
            }
            continue;
        };
        if loss.is_none() {
            continue;
        }
        rows.push(Raw {
            point: p,
            tokens,
            line: Some(lineno),
        });
    }
    let mut curve = finish(path, rows, "no lines with `step` and `loss`")?;
    curve.eval = sorted_evals(evals);
    Ok(curve)
}

/// The columns of a CSV curve, found by name in its header (`train/` and `train_` prefixes
/// dropped, case ignored).
struct CsvColumns {
    names: Vec<String>,
    step: usize,
    loss: usize,
    lr: Option<usize>,
    grad_norm: Option<usize>,
    epoch: Option<usize>,
    /// Cumulative tokens seen.
    tokens_seen: Option<usize>,
    /// Tokens of this step only.
    tokens: Option<usize>,
}

impl CsvColumns {
    fn of_header(path: &Path, header: &str) -> Result<CsvColumns, IngestError> {
        let names: Vec<String> = split_csv(header)
            .iter()
            .map(|h| {
                let h = h.to_ascii_lowercase();
                let h = h
                    .strip_prefix("train/")
                    .or_else(|| h.strip_prefix("train_"))
                    .unwrap_or(&h)
                    .to_string();
                h
            })
            .collect();
        let col = |keys: &[&str]| keys.iter().find_map(|k| names.iter().position(|n| n == k));
        let step_c = col(&["step", "global_step", "_step"]).ok_or_else(|| {
            IngestError::parse(
                path,
                Some(1),
                format!("no `step` column (columns: {})", names.join(", ")),
            )
        })?;
        let loss_c = col(&["loss"]).ok_or_else(|| {
            IngestError::parse(
                path,
                Some(1),
                format!("no `loss` column (columns: {})", names.join(", ")),
            )
        })?;
        let (lr_c, gn_c, ep_c) = (
            col(&["lr", "learning_rate"]),
            col(&["grad_norm"]),
            col(&["epoch"]),
        );
        let tok_cum_c = col(&["tokens_seen", "num_input_tokens_seen", "tokens/total"]);
        let tok_step_c = col(&["tokens"]);
        Ok(CsvColumns {
            step: step_c,
            loss: loss_c,
            lr: lr_c,
            grad_norm: gn_c,
            epoch: ep_c,
            tokens_seen: tok_cum_c,
            tokens: tok_step_c,
            names,
        })
    }
}

/// CSV with a header row. Column names are matched case-insensitively after dropping a
/// `train/` or `train_` prefix (W&B exports): step|global_step, loss, lr|learning_rate,
/// grad_norm, tokens_seen|num_input_tokens_seen (cumulative), tokens (per step), epoch.
pub(crate) fn csv(path: &Path) -> Result<Curve, IngestError> {
    let text = read_text(path)?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(IngestError::Empty {
            path: path.into(),
            what: "the file is empty".into(),
        });
    };
    let cols = CsvColumns::of_header(path, header)?;
    let names = &cols.names;
    let n_lines = text.lines().count();
    let ends_with_newline = text.ends_with('\n');
    let mut rows = Vec::new();
    for (i, line) in lines {
        let lineno = i + 1;
        let cells = split_csv(line);
        if cells.len() < names.len() {
            if lineno == n_lines && !ends_with_newline {
                return Err(IngestError::Truncated {
                    path: path.into(),
                    line: lineno,
                });
            }
            return Err(IngestError::parse(
                path,
                Some(lineno),
                format!("{} cells, the header has {}", cells.len(), names.len()),
            ));
        }
        let num = |c: Option<usize>, what: &str| -> Result<Option<f64>, IngestError> {
            let Some(c) = c else { return Ok(None) };
            let s = cells[c].trim();
            if s.is_empty() {
                return Ok(None);
            }
            parse_python_float(s).map(Some).ok_or_else(|| {
                IngestError::parse(path, Some(lineno), format!("{what}: `{s}` is not a number"))
            })
        };
        let Some(loss) = num(Some(cols.loss), "loss")? else {
            continue;
        };
        let step = num(Some(cols.step), "step")?
            .filter(|s| s.fract() == 0.0 && *s >= 0.0)
            .ok_or_else(|| {
                IngestError::parse(path, Some(lineno), "step must be a non-negative integer")
            })?;
        let tokens = match (
            num(cols.tokens_seen, "tokens")?,
            num(cols.tokens, "tokens")?,
        ) {
            (Some(t), _) => Some(Tokens::Cumulative(t)),
            (None, Some(t)) => Some(Tokens::PerStep(t)),
            _ => None,
        };
        let p = CurvePoint {
            step: step as u64,
            loss,
            lr: num(cols.lr, "lr")?,
            grad_norm: num(cols.grad_norm, "grad_norm")?,
            tokens: None,
            epoch: num(cols.epoch, "epoch")?,
        };
        rows.push(Raw {
            point: p,
            tokens,
            line: Some(lineno),
        });
    }
    finish(path, rows, "no data rows")
}

/// Split one CSV line on commas, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Validate and normalise: finite losses, sorted unique steps, cumulative tokens, rounding.
fn finish(path: &Path, rows: Vec<Raw>, empty_what: &str) -> Result<Curve, IngestError> {
    if rows.is_empty() {
        let what = if std::fs::metadata(path)
            .map(|m| m.len() == 0)
            .unwrap_or(false)
        {
            "the file is empty".to_string()
        } else {
            empty_what.to_string()
        };
        return Err(IngestError::Empty {
            path: path.into(),
            what,
        });
    }
    for r in &rows {
        if !r.point.loss.is_finite() {
            return Err(IngestError::NonFinite {
                path: path.into(),
                line: r.line,
                step: r.point.step,
                field: "loss",
                value: r.point.loss,
            });
        }
    }
    // Tokens: per-step counts become a running sum (in file order, before de-duplication).
    let mut rows = rows;
    let mut running = 0.0;
    let all_have_tokens = rows.iter().all(|r| r.tokens.is_some());
    for r in &mut rows {
        r.point.tokens = match r.tokens {
            Some(Tokens::Cumulative(t)) if all_have_tokens => Some(t),
            Some(Tokens::PerStep(t)) if all_have_tokens => {
                running += t;
                Some(running)
            }
            _ => None,
        };
    }
    let mut points: Vec<CurvePoint> = Vec::with_capacity(rows.len());
    for r in rows {
        points.push(r.point);
    }
    // Stable sort by step, then keep the last of each run of equal steps.
    points.sort_by_key(|p| p.step);
    let mut dedup: Vec<CurvePoint> = Vec::with_capacity(points.len());
    for p in points {
        match dedup.last_mut() {
            Some(last) if last.step == p.step => *last = p,
            _ => dedup.push(p),
        }
    }
    let quantum = detect_rounding(&dedup);
    Ok(Curve {
        source: path.into(),
        points: dedup,
        quantum,
        eval: Vec::new(),
    })
}

/// An evaluation row: `step` and a finite `eval_loss` (HF log entry, engine `metrics.jsonl`).
fn eval_from_object(obj: &serde_json::Map<String, Value>) -> Option<EvalPoint> {
    let loss = obj.get("eval_loss").and_then(json_f64)?;
    let step = obj.get("step").and_then(Value::as_u64)?;
    Some(EvalPoint { step, loss })
}

/// Sort evaluations by step; a repeated step keeps the later one (a resumed run).
fn sorted_evals(mut evals: Vec<EvalPoint>) -> Vec<EvalPoint> {
    evals.sort_by_key(|e| e.step);
    let mut out: Vec<EvalPoint> = Vec::with_capacity(evals.len());
    for e in evals {
        match out.last_mut() {
            Some(last) if last.step == e.step => *last = e,
            _ => out.push(e),
        }
    }
    out
}

/// Whether every loss is a multiple of 1e-4 (transformers < 4.47 logged `round(loss, 4)`).
fn detect_rounding(points: &[CurvePoint]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let rounded = points.iter().all(|p| {
        let x = p.loss * 1e4;
        (x - x.round()).abs() < 1e-6
    });
    rounded.then_some(1e-4)
}

/// Count how many steps a curve has fewer than its first-to-last span (logging gaps).
pub(crate) fn duplicate_or_gap_notes(curve: &Curve) -> Vec<String> {
    let mut notes = Vec::new();
    let pts = &curve.points;
    if pts.len() >= 2 {
        let span = pts[pts.len() - 1].step - pts[0].step + 1;
        if span as usize != pts.len() {
            notes.push(format!(
                "{}: {} logged steps over steps {}..={} (logging every few steps, or gaps)",
                curve.source.display(),
                pts.len(),
                pts[0].step,
                pts[pts.len() - 1].step
            ));
        }
    }
    if curve.quantum.is_some() {
        notes.push(format!(
            "{}: losses are rounded to 4 decimals (older transformers); comparisons allow 5e-5",
            curve.source.display()
        ));
    }
    notes
}

#[cfg(test)]
mod tests;
