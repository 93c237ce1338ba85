//! Where each IR value came from, keyed by the field's dotted path (`adapter.alpha`,
//! `data.datasets.0.format`).
//!
//! Kept beside the spec rather than inside every field so that `run.toml` stays the plain
//! shape a user edits, and so that diffing two specs compares values alone.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The origin of one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum Origin {
    /// Written in the input: the key (or call argument) and its 1-based position.
    Explicit {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        column: Option<usize>,
    },
    /// Absent from the input: the framework's documented default applies.
    Default {
        framework: String,
        version: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
    },
    /// Computed from other fields.
    Derived { from: Vec<String>, rule: String },
}

impl Origin {
    pub fn explicit(key: impl Into<String>) -> Self {
        Origin::Explicit {
            key: key.into(),
            line: None,
            column: None,
        }
    }

    pub fn short(&self) -> &'static str {
        match self {
            Origin::Explicit { .. } => "explicit",
            Origin::Default { .. } => "default",
            Origin::Derived { .. } => "derived",
        }
    }

    /// One human line: `explicit: lora_r (cfg.yml:12:1)`.
    pub fn describe(&self) -> String {
        match self {
            Origin::Explicit {
                key,
                line: Some(l),
                column: Some(c),
            } => format!("explicit `{key}` at {l}:{c}"),
            Origin::Explicit { key, .. } => format!("explicit `{key}`"),
            Origin::Default {
                framework,
                version,
                note,
            } if note.is_empty() => {
                format!("{framework} {version} default")
            }
            Origin::Default {
                framework,
                version,
                note,
            } => format!("{framework} {version} default ({note})"),
            Origin::Derived { rule, .. } => format!("derived: {rule}"),
        }
    }
}

/// Origin of every leaf of a `RunSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Provenance(pub IndexMap<String, Origin>);

impl Provenance {
    pub fn set(&mut self, path: impl Into<String>, origin: Origin) {
        self.0.insert(path.into(), origin);
    }

    /// Origin of a path, or of its nearest recorded ancestor (a whole dataset list
    /// may be recorded as one entry).
    pub fn get(&self, path: &str) -> Option<&Origin> {
        let mut p = path;
        loop {
            if let Some(o) = self.0.get(p) {
                return Some(o);
            }
            p = &p[..p.rfind('.')?];
        }
    }

    pub fn is_explicit(&self, path: &str) -> bool {
        matches!(self.get(path), Some(Origin::Explicit { .. }))
    }
}
