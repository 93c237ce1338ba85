//! Writing a spec into a target format's keys, and accounting for every IR field on the way.
//!
//! A framework writer calls [`Emitter::apply_table`] for the simple keys and [`Emitter::put`]
//! for what it builds itself; [`Emitter::finish`] then classifies every IR leaf nobody wrote
//! as defaulted (the target does the same on its own) or not expressible.

use super::defaults::Defaults;
use super::report::{Entry, PortReport, Status};
use super::table::{Emit, Table};
use crate::diag::Diagnostic;
use crate::ir::{tree, Origin, Resolved};
use indexmap::IndexMap;
use serde_json::Value;

/// One key the target file will hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    /// Dotted target key (`optimizer.lr`, `lora_r`).
    pub key: String,
    pub value: Value,
    /// Short comment written beside the key.
    pub comment: String,
    /// Top-level IR section the key carries (`adapter`, `data`, …), for grouping output.
    pub section: String,
}

/// Output sections in the order configs are laid out, with their headings.
pub const SECTIONS: [(&str, &str); 11] = [
    ("model", "model"),
    ("quantization", "adapter"),
    ("adapter", "adapter"),
    ("data", "data"),
    ("batch", "batch and steps"),
    ("training", "batch and steps"),
    ("optimizer", "optimizer and schedule"),
    ("schedule", "optimizer and schedule"),
    ("loss", "optimizer and schedule"),
    ("precision", "precision and memory"),
    ("memory", "precision and memory"),
];

pub struct Emitter<'a> {
    pub resolved: &'a Resolved,
    pub flat: tree::Flat,
    pub tree: Value,
    pub target: &'a str,
    pub table: &'a Table,
    pub defaults: &'a Defaults,
    pub out: Vec<Out>,
    covered: IndexMap<String, (Status, String, String)>,
    pub warnings: Vec<Diagnostic>,
}

impl<'a> Emitter<'a> {
    pub fn new(
        resolved: &'a Resolved,
        target: &'a str,
        table: &'a Table,
        defaults: &'a Defaults,
    ) -> Self {
        Emitter {
            resolved,
            flat: resolved.spec.flat(),
            tree: resolved.spec.to_value(),
            target,
            table,
            defaults,
            out: Vec::new(),
            covered: IndexMap::new(),
            warnings: Vec::new(),
        }
    }

    pub fn value(&self, ir: &str) -> Option<&Value> {
        tree::get_path(&self.tree, ir)
    }

    /// Whether the spec's value differs from what the target does by default.
    pub fn differs_from_default(&self, ir: &str, v: &Value) -> bool {
        match self.defaults.get(ir) {
            Some(d) => !values_equal(d, v),
            None => true,
        }
    }

    /// Comment for a written value: when the source did not write it but the target's
    /// default differs, the value is written for parity and the comment says so.
    pub fn parity_comment(&self, ir: &str, v: &Value) -> String {
        let origin = self.resolved.provenance.get(ir);
        let why = match origin {
            Some(Origin::Explicit { .. }) | None => return String::new(),
            Some(Origin::Default { framework, .. }) => format!("{framework} default"),
            Some(Origin::Derived { .. }) => "derived".to_string(),
        };
        match self.defaults.get(ir) {
            Some(d) if !values_equal(d, v) => {
                format!(
                    "parity: {why}; {} would use {}",
                    self.target,
                    super::report::compact(d)
                )
            }
            _ => String::new(),
        }
    }

    /// Write every table field whose IR value exists.
    pub fn apply_table(&mut self) {
        let table = self.table;
        for f in table.field.iter().filter(|f| f.emit != Emit::Never) {
            if self.covered.contains_key(&f.ir) {
                continue;
            }
            let Some(v) = self.value(&f.ir).cloned() else {
                continue;
            };
            if f.emit == Emit::IfDiffers && !self.differs_from_default(&f.ir, &v) {
                self.cover(&f.ir, Status::Defaulted, "", "");
                continue;
            }
            // No spelling for this value: left to finish() as not expressible.
            if let Some(sv) = f.from_ir(&v) {
                let comment = self.parity_comment(&f.ir, &v);
                self.put(&f.key, sv, &[&f.ir], Status::Carried, &comment);
            }
        }
    }

    /// Write one target key carrying these IR fields.
    pub fn put(&mut self, key: &str, value: Value, irs: &[&str], status: Status, comment: &str) {
        for ir in irs {
            self.cover(
                ir,
                status,
                key,
                if status == Status::Carried {
                    ""
                } else {
                    comment
                },
            );
        }
        if let Some(existing) = self.out.iter_mut().find(|o| o.key == key) {
            existing.value = value;
            existing.comment = comment.to_string();
        } else {
            let section = irs
                .first()
                .and_then(|p| p.split('.').next())
                .unwrap_or("other")
                .to_string();
            self.out.push(Out {
                key: key.to_string(),
                value,
                comment: comment.to_string(),
                section,
            });
        }
    }

    /// Account for an IR field (and everything under it) without writing a key.
    pub fn cover(&mut self, ir: &str, status: Status, key: &str, note: &str) {
        let prefix = format!("{ir}.");
        let paths: Vec<String> = self
            .flat
            .keys()
            .filter(|k| *k == ir || k.starts_with(&prefix))
            .cloned()
            .collect();
        let paths = if paths.is_empty() {
            vec![ir.to_string()]
        } else {
            paths
        };
        for p in paths {
            // The most lossy classification wins when two writers touch one field.
            let entry =
                self.covered
                    .entry(p)
                    .or_insert((status, key.to_string(), note.to_string()));
            if status > entry.0 {
                *entry = (status, key.to_string(), note.to_string());
            }
        }
    }

    /// Group outputs under section headings, in [`SECTIONS`] order (others last).
    pub fn sectioned(outs: &[Out]) -> Vec<(String, Vec<Out>)> {
        let mut groups: Vec<(String, Vec<Out>)> = Vec::new();
        let heading = |s: &str| {
            SECTIONS
                .iter()
                .find(|(k, _)| *k == s)
                .map_or("run and output", |(_, h)| *h)
                .to_string()
        };
        let rank = |s: &str| {
            SECTIONS
                .iter()
                .position(|(k, _)| *k == s)
                .unwrap_or(SECTIONS.len())
        };
        let mut sorted: Vec<&Out> = outs.iter().collect();
        sorted.sort_by_key(|o| rank(&o.section)); // stable: keeps write order within a section
        for o in sorted {
            let h = heading(&o.section);
            match groups.last_mut() {
                Some((title, items)) if *title == h => items.push(o.clone()),
                _ => groups.push((h, vec![o.clone()])),
            }
        }
        groups
    }

    pub fn is_covered(&self, ir: &str) -> bool {
        self.covered.contains_key(ir)
    }

    /// Classify the remaining fields and build the report.
    pub fn finish(self, from: &str, source: &str) -> (Vec<Out>, PortReport) {
        let mut entries = Vec::new();
        let mut warnings = self.warnings;
        for (path, value) in &self.flat {
            if path.starts_with("schema") {
                continue;
            }
            let origin = self.resolved.provenance.get(path);
            let origin_text = origin.map(Origin::describe).unwrap_or_default();
            let (status, key, note) = match self.covered.get(path) {
                Some(c) => c.clone(),
                None if path.starts_with("passthrough.") => {
                    let same = path.starts_with(&format!("passthrough.{}.", self.target));
                    if same {
                        (
                            Status::Carried,
                            path.splitn(3, '.').nth(2).unwrap_or("").to_string(),
                            String::new(),
                        )
                    } else {
                        (
                            Status::NotExpressible,
                            String::new(),
                            format!("a {from} setting with no {} equivalent", self.target),
                        )
                    }
                }
                None => match self.defaults.get(path) {
                    Some(d) if values_equal(d, value) => {
                        (Status::Defaulted, String::new(), String::new())
                    }
                    Some(d) => (
                        Status::NotExpressible,
                        String::new(),
                        non_empty(self.defaults.note(path)).unwrap_or_else(|| {
                            format!("{} always uses {}", self.target, super::report::compact(d))
                        }),
                    ),
                    None => (
                        Status::NotExpressible,
                        String::new(),
                        format!("{} has no setting for this", self.target),
                    ),
                },
            };
            // A source default that the target would not reproduce on its own is the
            // classic silent change of a port: say so.
            if let (Some(Origin::Default { framework, .. }), Some(d)) =
                (origin, self.defaults.get(path))
            {
                if !values_equal(d, value) && status == Status::Carried {
                    warnings.push(
                        Diagnostic::warning(
                            "default-differs",
                            format!(
                                "`{path}`: {framework} defaults to {}, {} to {}; written explicitly as `{key}` so the run does not change",
                                super::report::compact(value),
                                self.target,
                                super::report::compact(d)
                            ),
                        ),
                    );
                }
            }
            entries.push(Entry {
                field: path.clone(),
                value: value.clone(),
                status,
                target_key: key,
                origin: origin_text,
                note,
            });
        }
        // Fields the source left unset (an absent Option such as `adapter.init_seed`) that
        // the target must set anyway: reported too, so the change is not silent.
        for (path, (status, key, note)) in &self.covered {
            let in_source = self.flat.contains_key(path)
                || self.flat.keys().any(|k| k.starts_with(&format!("{path}.")));
            if !in_source && *status > Status::Defaulted {
                entries.push(Entry {
                    field: path.clone(),
                    value: Value::Null,
                    status: *status,
                    target_key: key.clone(),
                    origin: "unset in the source".into(),
                    note: note.clone(),
                });
            }
        }
        let report = PortReport {
            from: from.to_string(),
            to: self.target.to_string(),
            source: source.to_string(),
            entries,
            warnings,
        };
        (self.out, report)
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Equality that treats 1 and 1.0 as the same number.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}
