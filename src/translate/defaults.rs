//! A framework's defaults: `translators/<framework>/defaults.toml`, shaped like a partial
//! `run.toml`, plus a `[notes]` table citing where each default comes from upstream.

use crate::ir::tree::{self, Flat};
use indexmap::IndexMap;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Defaults {
    pub framework: String,
    pub version: String,
    /// The defaults as an IR tree (only the fields the framework defines).
    pub tree: Value,
    pub flat: Flat,
    /// IR path → where upstream sets it, or why it is what it is.
    pub notes: IndexMap<String, String>,
}

impl Defaults {
    pub fn parse(text: &str, name: &str) -> Defaults {
        let mut table: toml::Table =
            toml::from_str(text).unwrap_or_else(|e| panic!("built-in {name} is invalid: {e}"));
        let meta = table
            .remove("meta")
            .unwrap_or_else(|| panic!("{name}: missing [meta]"));
        let notes: IndexMap<String, String> = table
            .remove("notes")
            .map(|n| {
                n.try_into()
                    .unwrap_or_else(|e| panic!("{name}: bad [notes]: {e}"))
            })
            .unwrap_or_default();
        let tree = serde_json::to_value(&table).expect("TOML converts to JSON");
        let text_of = |k: &str| {
            meta.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("{name}: meta.{k}"))
                .to_string()
        };
        Defaults {
            framework: text_of("framework"),
            version: text_of("version"),
            flat: tree::flatten(&tree),
            tree,
            notes,
        }
    }

    pub fn get(&self, path: &str) -> Option<&Value> {
        tree::get_path(&self.tree, path)
    }

    pub fn note(&self, path: &str) -> String {
        self.notes.get(path).cloned().unwrap_or_default()
    }
}
