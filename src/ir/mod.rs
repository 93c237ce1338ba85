//! The intermediate representation: [`RunSpec`] with its [`Provenance`], validation and the
//! native `run.toml` form.

pub mod kinds;
pub mod provenance;
pub mod spec;
pub mod tree;
pub mod validate;

#[cfg(test)]
mod tests;

pub use kinds::*;
pub use provenance::{Origin, Provenance};
pub use spec::*;

use crate::diag::{Diagnostic, Source, Span};
use serde_json::Value;

/// A spec together with where each of its values came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub spec: RunSpec,
    pub provenance: Provenance,
}

impl RunSpec {
    /// The spec as a JSON tree (the form the flat views and tables work on).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("RunSpec always serialises")
    }

    /// Every leaf as `dotted.path → value`.
    pub fn flat(&self) -> tree::Flat {
        tree::flatten(&self.to_value())
    }

    /// Rebuild from a JSON tree; the error names the first field that does not fit.
    pub fn from_value(value: Value) -> Result<RunSpec, SpecError> {
        serde_path_to_error::deserialize(value).map_err(|e| SpecError {
            path: dotted(e.path()),
            message: e.inner().to_string(),
        })
    }
}

/// A JSON tree that is not a [`RunSpec`]: the first field that does not fit and why
/// (`adapter.method`: "unknown variant `qlorra`, expected one of `lora`, `qlora`, `full`").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Dotted IR path as provenance keys it (`data.datasets.0.format`); for a missing
    /// field, the table that lacks it; empty at the root.
    pub path: String,
    /// serde's message.
    pub message: String,
}

impl SpecError {
    /// A closed-set field holding a spelling outside its set.
    pub fn is_unknown_variant(&self) -> bool {
        self.message.starts_with("unknown variant")
    }
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() || self.path == "." {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for SpecError {}

/// serde_path_to_error's `data.datasets[0].format` as the provenance key `data.datasets.0.format`.
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let parts: Vec<String> = path
        .iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    parts.join(".")
}

impl Resolved {
    /// `run.toml` text: the spec, then (optionally) a `[provenance]` table.
    pub fn to_toml(&self, with_provenance: bool) -> String {
        let mut text = format!(
            "# tunebridge run spec (schema {SCHEMA_VERSION}). Every value that changes the numbers is explicit.\n{}",
            toml::to_string_pretty(&self.spec).expect("RunSpec always serialises to TOML")
        );
        if with_provenance && !self.provenance.0.is_empty() {
            let mut wrapper = toml::map::Map::new();
            let prov = toml::Value::try_from(&self.provenance).expect("provenance serialises");
            wrapper.insert("provenance".into(), prov);
            text.push('\n');
            text.push_str(&toml::to_string_pretty(&wrapper).expect("provenance serialises"));
        }
        text
    }

    /// JSON form for `inspect --json`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "spec": self.spec, "provenance": self.provenance })
    }

    /// Parse `run.toml`. Errors carry the file, line and column.
    pub fn from_toml(source: &Source) -> Result<Resolved, Diagnostic> {
        let mut table: toml::Table =
            toml::from_str(&source.text).map_err(|e| toml_diag(source, &e))?;
        let provenance = match table.remove("provenance") {
            Some(p) => p.try_into::<Provenance>().map_err(|e| {
                Diagnostic::error("type-mismatch", format!("bad [provenance] table: {e}"))
                    .locate(source)
            })?,
            None => Provenance::default(),
        };
        let rest = toml::to_string(&table).expect("a parsed table re-serialises");
        let spec: RunSpec = toml::from_str(&rest).map_err(|e| {
            // Re-parse against the original text to point at the real position.
            let d = toml::from_str::<RunSpec>(&source.text).err().unwrap_or(e);
            toml_diag(source, &d)
        })?;
        if spec.schema != SCHEMA_VERSION {
            return Err(Diagnostic::error(
                "schema-version",
                format!(
                    "run.toml schema {} is not supported by this build (schema {SCHEMA_VERSION})",
                    spec.schema
                ),
            )
            .with_help("regenerate it with `tunebridge inspect <original config> --toml`")
            .locate(source));
        }
        Ok(Resolved { spec, provenance })
    }
}

fn toml_diag(source: &Source, e: &toml::de::Error) -> Diagnostic {
    let msg = e.message().trim().to_string();
    let span = e.span().map(|r| Span::new(r.start, r.end));
    let id = if msg.contains("unknown field") {
        "unknown-key"
    } else if msg.contains("unknown variant") {
        // A closed-set field (`loss.normalization`) with a spelling outside its set; serde
        // lists the allowed ones.
        "unknown-value"
    } else {
        "syntax"
    };
    Diagnostic::error(id, msg).at(span).locate(source)
}
