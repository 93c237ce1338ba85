//! The JSON report (`diff.json`, `--json`): the whole [`Comparison`] as serialized, so CI can
//! read every number the other reports round.

use crate::diff::comparison::Comparison;

/// The comparison as JSON (for CI).
pub fn json(c: &Comparison) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
}
