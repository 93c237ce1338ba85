//! Helpers the parts of the Unsloth reader share: a tree key's value, IR lookups, and the
//! provenance of a derived value.

use crate::diag::Span;
use crate::ir::Origin;
use crate::translate::reader::Reader;
use serde_json::Value;

/// Value and key span of a tree key, unless absent or null.
pub(super) fn arg(r: &Reader, key: &str) -> Option<(Value, Span)> {
    let e = r.get(key)?;
    let v = e.node.to_value();
    (!v.is_null()).then_some((v, e.key_span))
}

pub(super) fn derived(from: &[&str], rule: impl Into<String>) -> Origin {
    Origin::Derived {
        from: from.iter().map(|s| s.to_string()).collect(),
        rule: rule.into(),
    }
}

pub(super) fn ir_str(r: &Reader, path: &str) -> String {
    r.ir_value(path)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

pub(super) fn ir_u64(r: &Reader, path: &str) -> u64 {
    r.ir_value(path).and_then(Value::as_u64).unwrap_or(0)
}
