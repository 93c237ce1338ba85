//! Building a [`Resolved`] spec from a parsed input: start from the framework's defaults,
//! apply the field table, let the framework module handle the rest, then report every key
//! nobody consumed.

use super::defaults::Defaults;
use super::node::{Entry, Node};
use super::table::{value_text, Table};
use crate::diag::{did_you_mean, Diagnostic, Source, Span};
use crate::ir::{tree, validate, Origin, Provenance, Resolved, RunSpec, SpecError};
use serde_json::Value;
use std::collections::HashSet;

/// Outcome of reading one input.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub resolved: Resolved,
    /// Warnings and notes gathered while reading (errors make the read fail instead).
    pub diagnostics: Vec<Diagnostic>,
}

/// Why an input could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The text is not valid YAML/Python/TOML.
    #[error("{}", .0.message)]
    Syntax(Diagnostic),
    /// The run uses a feature tunebridge does not support (RL, vision, …).
    #[error("{}", .0.message)]
    NotSupported(Diagnostic),
    /// The input parsed but describes no valid run; every problem is listed.
    #[error("{} problem(s) in the input", .0.len())]
    Invalid(Vec<Diagnostic>),
}

impl ReadError {
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ReadError::Syntax(d) | ReadError::NotSupported(d) => vec![d.clone()],
            ReadError::Invalid(ds) => ds.clone(),
        }
    }
}

pub struct Reader<'a> {
    pub source: &'a Source,
    pub root: &'a Node,
    pub table: &'a Table,
    pub defaults: &'a Defaults,
    /// The IR being built, as a JSON tree.
    pub ir: Value,
    pub provenance: Provenance,
    pub diagnostics: Vec<Diagnostic>,
    consumed: HashSet<String>,
}

impl<'a> Reader<'a> {
    pub fn new(
        source: &'a Source,
        root: &'a Node,
        table: &'a Table,
        defaults: &'a Defaults,
    ) -> Self {
        let mut provenance = Provenance::default();
        for path in defaults.flat.keys() {
            provenance.set(
                path.clone(),
                Origin::Default {
                    framework: defaults.framework.clone(),
                    version: defaults.version.clone(),
                    note: defaults.note(path),
                },
            );
        }
        let mut ir = defaults.tree.clone();
        tree::set_path(&mut ir, "schema", Value::from(crate::ir::SCHEMA_VERSION));
        Reader {
            source,
            root,
            table,
            defaults,
            ir,
            provenance,
            diagnostics: Vec::new(),
            consumed: HashSet::new(),
        }
    }

    /// The entry at a source key (dotted), following `renamed` aliases.
    pub fn get(&self, key: &str) -> Option<&'a Entry> {
        self.root.lookup(key).or_else(|| {
            self.table
                .renamed
                .iter()
                .find(|r| r.to == key)
                .and_then(|r| self.root.lookup(&r.from))
        })
    }

    /// The entry's value unless it is absent or null.
    pub fn value(&self, key: &str) -> Option<Value> {
        self.get(key)
            .map(|e| e.node.to_value())
            .filter(|v| !v.is_null())
    }

    pub fn consume(&mut self, key: &str) {
        self.consumed.insert(key.to_string());
        for r in self.table.renamed.iter().filter(|r| r.to == key) {
            self.consumed.insert(r.from.clone());
        }
    }

    /// Where a key was written, as a provenance origin.
    pub fn origin_of(&self, key: &str, span: Option<Span>) -> Origin {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = self.source.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Origin::Explicit {
            key: key.to_string(),
            line,
            column,
        }
    }

    /// Set an IR path from a source key.
    pub fn set_from(&mut self, ir: &str, value: Value, key: &str, span: Option<Span>) {
        let origin = self.origin_of(key, span);
        self.set(ir, value, origin);
    }

    pub fn set(&mut self, ir: &str, value: Value, origin: Origin) {
        tree::set_path(&mut self.ir, ir, value);
        // A whole list replaced: drop stale per-item provenance.
        self.provenance
            .0
            .retain(|k, _| !k.starts_with(&format!("{ir}.")));
        self.provenance.set(ir, origin);
    }

    pub fn ir_value(&self, ir: &str) -> Option<&Value> {
        tree::get_path(&self.ir, ir)
    }

    pub fn warn(&mut self, d: Diagnostic) {
        let d = d.locate(self.source);
        self.diagnostics.push(d);
    }

    /// Refuse unsupported features before anything else is read.
    pub fn check_unsupported(&self) -> Result<(), ReadError> {
        for u in &self.table.unsupported {
            let Some(e) = self.root.lookup(&u.key) else {
                continue;
            };
            let v = e.node.to_value();
            let hit = if u.values.is_empty() {
                !matches!(&v, Value::Null | Value::Bool(false)) && v != Value::String(String::new())
            } else {
                u.values.iter().any(|x| *x == value_text(&v))
            };
            if hit {
                return Err(ReadError::NotSupported(
                    Diagnostic::error("not-supported", format!("not supported: {} (`{}`)", u.feature, u.key))
                        .at(Some(e.key_span))
                        .with_help("tunebridge ports and runs supervised fine-tuning of text models (LoRA, QLoRA, full)")
                        .locate(self.source),
                ));
            }
        }
        Ok(())
    }

    /// Apply every table field present in the input.
    pub fn apply_table(&mut self) {
        let table = self.table;
        for f in &table.field {
            let Some(entry) = self.get(&f.key) else {
                continue;
            };
            self.consume(&f.key);
            let raw = entry.node.to_value();
            if raw.is_null() {
                continue; // `key:` with no value means "framework default" in every format.
            }
            match f.to_ir(&raw) {
                Ok(v) => self.set_from(&f.ir, v, &f.key, Some(entry.key_span)),
                Err(expected) => {
                    let d = Diagnostic::error(
                        "type-mismatch",
                        format!(
                            "`{}` must be {expected}, found `{}`",
                            f.key,
                            value_text(&raw)
                        ),
                    )
                    .at(Some(entry.node.span()));
                    self.warn(d);
                }
            }
        }
    }

    /// Unknown keys become warnings (with a suggestion); ignored keys are kept verbatim in
    /// `passthrough` and noted; then derive, validate and build the spec.
    pub fn finish(mut self, framework: &str) -> Result<Parsed, ReadError> {
        let ignored: Vec<(String, String)> = self
            .table
            .ignored
            .iter()
            .map(|i| (i.key.clone(), i.reason.clone()))
            .collect();
        for (key, entry) in self.root.leaves() {
            if self.is_consumed(&key) {
                continue;
            }
            if let Some((ikey, reason)) = ignored
                .iter()
                .find(|(k, _)| key == *k || key.starts_with(&format!("{k}.")))
            {
                let value = entry.node.to_value();
                if !value.is_null() {
                    let pkey = format!("{framework}.{key}");
                    let mut pt = self
                        .ir
                        .get("passthrough")
                        .cloned()
                        .unwrap_or(Value::Object(Default::default()));
                    pt.as_object_mut().map(|m| m.insert(pkey, value));
                    self.ir["passthrough"] = pt;
                    let d = Diagnostic::info(
                        "not-expressible",
                        format!("`{key}` is kept but has no IR field: {reason}"),
                    )
                    .at(Some(entry.key_span));
                    self.warn(d);
                }
                let _ = ikey;
                continue;
            }
            let leaf = key.rsplit('.').next().unwrap_or(&key).to_string();
            let suggestion = did_you_mean(&key, self.table.known_keys())
                .or_else(|| did_you_mean(&leaf, self.table.known_keys()));
            let mut d =
                Diagnostic::warning("unknown-key", format!("unknown key `{key}` is not read"))
                    .at(Some(entry.key_span));
            d = match suggestion {
                Some(s) => d.with_help(s),
                None => d.with_help(format!(
                    "{framework} would ignore it too; remove it or check the spelling"
                )),
            };
            self.warn(d);
        }
        let errors: Vec<Diagnostic> = self
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Error)
            .cloned()
            .collect();
        if !errors.is_empty() {
            return Err(ReadError::Invalid(errors));
        }
        let spec = RunSpec::from_value(self.ir.clone())
            .map_err(|e| ReadError::Invalid(vec![self.not_fitting(&e)]))?;
        let mut resolved = Resolved {
            spec,
            provenance: self.provenance,
        };
        validate::derive(&mut resolved);
        let problems = validate::validate(&resolved);
        let (errs, warns): (Vec<_>, Vec<_>) = problems
            .into_iter()
            .map(|d| d.locate(self.source))
            .partition(|d| d.severity == crate::diag::Severity::Error);
        if !errs.is_empty() {
            return Err(ReadError::Invalid(errs));
        }
        self.diagnostics.extend(warns);
        Ok(Parsed {
            resolved,
            diagnostics: self.diagnostics,
        })
    }

    /// The IR tree is not a spec: a closed-set value outside its set, pointed at the source
    /// key it came from, or a missing field.
    fn not_fitting(&self, e: &SpecError) -> Diagnostic {
        if e.is_unknown_variant() {
            self.unknown_value(e)
        } else {
            self.missing(&e.message)
        }
    }

    /// serde's "unknown variant `qlorra`, expected one of `lora`, `qlora`, `full`" at
    /// `adapter.method`, reported at the source key its provenance records.
    fn unknown_value(&self, e: &SpecError) -> Diagnostic {
        let found = match self.ir_value(&e.path) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        let expected = e
            .message
            .split_once("expected ")
            .map_or(String::new(), |(_, rest)| rest.replace('`', ""));
        let (key, span) = match self.provenance.get(&e.path) {
            Some(Origin::Explicit {
                key,
                line: Some(line),
                column: Some(col),
            }) => {
                let at = self.source.offset_of(*line, *col);
                (Some(key.as_str()), Some(Span::new(at, at)))
            }
            Some(Origin::Explicit { key, .. }) => (Some(key.as_str()), None),
            _ => (None, None),
        };
        let message = match key {
            Some(key) => format!("unknown {} `{found}` (from `{key}`)", e.path),
            None => format!("unknown {} `{found}`", e.path),
        };
        Diagnostic::error("unknown-value", message)
            .at(span)
            .with_help(format!("expected {expected}"))
            .locate(self.source)
    }

    /// Turn serde's "missing field `lr`" into the source key the user must add.
    fn missing(&self, err: &str) -> Diagnostic {
        let field = err.split('`').nth(1).unwrap_or("");
        let keys: Vec<&str> = self
            .table
            .field
            .iter()
            .filter(|f| f.ir.rsplit('.').next() == Some(field) && self.ir_value(&f.ir).is_none())
            .map(|f| f.key.as_str())
            .collect();
        let d = match keys.first() {
            Some(key) => {
                Diagnostic::error("missing-key", format!("required key `{key}` is missing"))
                    .with_help(format!("add `{key}` to the config"))
            }
            None => Diagnostic::error(
                "missing-key",
                format!("the input does not define a complete run: {err}"),
            )
            .with_help("see `tunebridge mappings` for the keys each framework needs"),
        };
        d.locate(self.source)
    }

    fn is_consumed(&self, key: &str) -> bool {
        let mut k = key;
        loop {
            if self.consumed.contains(k) {
                return true;
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return false,
            }
        }
    }
}
