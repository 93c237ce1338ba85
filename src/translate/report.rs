//! The port report: for every IR field, what became of it in the target, and the semantic
//! warnings where the frameworks behave differently.

use crate::diag::{Diagnostic, Severity};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Written to a target key with the same meaning.
    Carried,
    /// Not written: the target's own default is the same value.
    Defaulted,
    /// Written, but the target can only come close (e.g. a warmup ratio floored to steps).
    Approximated,
    /// The target has no way to say it; the ported run differs here.
    NotExpressible,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Carried => "carried",
            Status::Defaulted => "defaulted",
            Status::Approximated => "approximated",
            Status::NotExpressible => "not expressible",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// IR path.
    pub field: String,
    pub value: Value,
    pub status: Status,
    /// Target key that holds it (empty when not written).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_key: String,
    /// Where the value came from in the source.
    pub origin: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortReport {
    pub from: String,
    pub to: String,
    pub source: String,
    pub entries: Vec<Entry>,
    /// Semantic warnings (defaults that differ, framing, normalisation, batch size …) and
    /// the reader's diagnostics.
    pub warnings: Vec<Diagnostic>,
}

impl PortReport {
    pub fn count(&self, s: Status) -> usize {
        self.entries.iter().filter(|e| e.status == s).count()
    }

    /// Fields whose value the target run will not reproduce exactly.
    pub fn lossy(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.status, Status::Approximated | Status::NotExpressible))
    }

    /// Terminal form: a summary line, the lossy fields, the warnings; `verbose` lists all.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = format!(
            "port {} → {} ({}): {} carried, {} defaulted, {} approximated, {} not expressible\n",
            self.from,
            self.to,
            self.source,
            self.count(Status::Carried),
            self.count(Status::Defaulted),
            self.count(Status::Approximated),
            self.count(Status::NotExpressible)
        );
        let shown: Vec<&Entry> = if verbose {
            self.entries.iter().collect()
        } else {
            self.lossy().collect()
        };
        if !shown.is_empty() {
            let w_field = shown
                .iter()
                .map(|e| e.field.len())
                .max()
                .unwrap_or(5)
                .max(5);
            let w_status = shown
                .iter()
                .map(|e| e.status.label().len())
                .max()
                .unwrap_or(6);
            out.push('\n');
            for e in shown {
                let value = compact(&e.value);
                let target = if e.target_key.is_empty() {
                    String::new()
                } else {
                    format!(" → {}", e.target_key)
                };
                out.push_str(&format!(
                    "  {:<w_status$}  {:<w_field$}  {value}{target}\n",
                    e.status.label(),
                    e.field
                ));
                if !e.note.is_empty() {
                    out.push_str(&format!(
                        "  {:<w_status$}  {:<w_field$}  ↳ {}\n",
                        "", "", e.note
                    ));
                }
            }
        }
        let mut warnings: Vec<&Diagnostic> = self
            .warnings
            .iter()
            .filter(|d| verbose || d.severity >= Severity::Warning)
            .collect();
        warnings.sort_by_key(|d| std::cmp::Reverse(d.severity));
        if !warnings.is_empty() {
            out.push('\n');
            for d in warnings {
                out.push_str(&d.render(None));
            }
        }
        out
    }
}

/// A value on one line, shortened.
pub fn compact(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}
