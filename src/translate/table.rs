//! Field tables: the data in `translators/<framework>/fields.toml` that says which source key
//! holds which IR field, how enum spellings translate, which keys are read but not
//! expressible, and which features are refused.
//!
//! Reading applies a table key → IR; writing applies the same table IR → key. One table per
//! framework is the single source of truth for its simple keys; the framework modules handle
//! only what a table cannot say (dataset lists, component trees, model families).

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Key order in `field` is the order keys are written in.
    #[serde(default)]
    pub field: Vec<FieldMap>,
    /// Keys read and kept but not expressible in the IR (trackers, hub pushes, …).
    #[serde(default)]
    pub ignored: Vec<Ignored>,
    /// Features tunebridge refuses with a `not supported` error.
    #[serde(default)]
    pub unsupported: Vec<Unsupported>,
    /// Deprecated spellings the framework still accepts, read as their new key.
    #[serde(default)]
    pub renamed: Vec<Renamed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Int,
    Float,
    Bool,
    String,
    List,
    #[default]
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// Always written, even when equal to the target's default (parity-critical).
    #[default]
    Always,
    /// Written only when the value differs from the target's default.
    IfDiffers,
    /// Only read (an alias); the canonical key is written instead.
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// Source key, dotted for nesting (`fsdp_config.offload_params`, `get_peft_model.r`).
    pub key: String,
    /// IR path (`adapter.rank`).
    pub ir: String,
    #[serde(rename = "type", default)]
    pub kind: Kind,
    /// Source spelling → IR value, for enum-like keys. Keys are the source value as text.
    #[serde(default)]
    pub map: IndexMap<String, Value>,
    #[serde(default)]
    pub emit: Emit,
    /// Why this mapping is what it is (shown in `tunebridge mappings`).
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignored {
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsupported {
    pub key: String,
    /// Refuse only these values (as text); empty = any value that is not null/false/empty.
    #[serde(default)]
    pub values: Vec<String>,
    pub feature: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renamed {
    pub from: String,
    pub to: String,
}

impl Table {
    pub fn parse(text: &str, name: &str) -> Table {
        toml::from_str(text).unwrap_or_else(|e| panic!("built-in table {name} is invalid: {e}"))
    }

    /// Every key this table knows, for "did you mean" suggestions.
    pub fn known_keys(&self) -> impl Iterator<Item = &str> {
        self.field
            .iter()
            .map(|f| f.key.as_str())
            .chain(self.ignored.iter().map(|i| i.key.as_str()))
            .chain(self.renamed.iter().map(|r| r.from.as_str()))
    }

    pub fn writer_for(&self, ir: &str) -> Option<&FieldMap> {
        self.field
            .iter()
            .find(|f| f.ir == ir && f.emit != Emit::Never)
    }
}

/// Text form of a scalar for map lookups (`true`, `3`, `cosine`).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl FieldMap {
    /// Source value → IR value: apply `map`, then check the type. Err is the expected type.
    pub fn to_ir(&self, v: &Value) -> Result<Value, String> {
        if !self.map.is_empty() {
            return self.map.get(&value_text(v)).cloned().ok_or_else(|| {
                format!(
                    "one of {}",
                    self.map
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
        coerce(self.kind, v)
    }

    /// IR value → source value: the first `map` entry whose IR value matches.
    pub fn from_ir(&self, v: &Value) -> Option<Value> {
        if self.map.is_empty() {
            return Some(v.clone());
        }
        self.map
            .iter()
            .find(|(_, iv)| *iv == v)
            .map(|(k, _)| match (self.kind, k.as_str()) {
                (Kind::Bool, "true") => Value::Bool(true),
                (Kind::Bool, "false") => Value::Bool(false),
                (Kind::Int, s) => s
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(k.clone())),
                _ => Value::String(k.clone()),
            })
    }
}

/// Check and convert a value to a kind. Strings holding numbers are accepted for numbers,
/// as Axolotl and OmegaConf do (`learning_rate: "2e-4"`).
pub fn coerce(kind: Kind, v: &Value) -> Result<Value, String> {
    match kind {
        Kind::Any => Ok(v.clone()),
        Kind::Int => match v {
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(v.clone()),
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                Ok(Value::from(n.as_f64().unwrap_or(0.0) as i64))
            }
            // YAML 1.1 (PyYAML, OmegaConf) reads `500_000` as an integer.
            Value::String(s) => s
                .trim()
                .replace('_', "")
                .parse::<i64>()
                .ok()
                .filter(|_| !s.trim().starts_with('_') && !s.trim().ends_with('_'))
                .map(Value::from)
                .ok_or_else(|| "an integer".into()),
            _ => Err("an integer".into()),
        },
        Kind::Float => match v {
            Value::Number(n) => Ok(Value::from(n.as_f64().unwrap_or(0.0))),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| "a number".into()),
            _ => Err("a number".into()),
        },
        Kind::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => Err("true or false".into()),
        },
        Kind::String => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(_) | Value::Bool(_) => Ok(Value::String(value_text(v))),
            _ => Err("a string".into()),
        },
        Kind::List => match v {
            Value::Array(_) => Ok(v.clone()),
            Value::String(s) => Ok(Value::Array(vec![Value::String(s.clone())])),
            _ => Err("a list".into()),
        },
    }
}
