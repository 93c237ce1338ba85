//! Reading one `_component_` node of a TorchTune config: its path, its keywords (bool,
//! number, unknown), what is kept in `passthrough`, and the provenance of what is derived.

use super::common::FW;
use crate::diag::{did_you_mean, Diagnostic, Span};
use crate::ir::Origin;
use crate::translate::data;
use crate::translate::node::Entry;
use crate::translate::reader::Reader;
use indexmap::IndexMap;
use serde_json::Value;

/// A component node: its map and `_component_` path. Errors are reported and give None.
pub(super) fn component<'a>(
    r: &mut Reader<'a>,
    key: &str,
) -> Option<(&'a IndexMap<String, Entry>, String)> {
    let entry = r.get(key)?;
    let Some(map) = entry.node.as_map() else {
        r.warn(
            Diagnostic::error(
                "type-mismatch",
                format!("`{key}` must be a mapping with a `_component_`"),
            )
            .at(Some(entry.node.span())),
        );
        return None;
    };
    let Some(path) = map.get("_component_").and_then(|e| e.node.as_str()) else {
        r.warn(
            Diagnostic::error("missing-key", format!("`{key}` has no `_component_`"))
                .at(Some(entry.key_span))
                .with_help(format!(
                    "add `_component_:` with the dotted path of the {key}"
                )),
        );
        return None;
    };
    r.consume(&format!("{key}._component_"));
    Some((map, path.to_string()))
}

pub(super) fn unknown_component(r: &mut Reader, key: &str, path: &str, known: &[&str]) {
    let span = r.get(&format!("{key}._component_")).map(|e| e.node.span());
    let help = match did_you_mean(path, known.iter().copied()) {
        Some(s) => s,
        None => format!("tunebridge reads: {}", known.join(", ")),
    };
    r.warn(
        Diagnostic::error(
            "unknown-component",
            format!("`{key}._component_` `{path}` is not a component tunebridge knows"),
        )
        .at(span)
        .with_help(help),
    );
}

/// A keyword of a component that is not one tunebridge reads: TorchTune would pass it on.
pub(super) fn unknown_arg(
    r: &mut Reader,
    key: &str,
    arg: &str,
    e: &Entry,
    known: &[&str],
    error: bool,
) {
    let d = if error {
        Diagnostic::error(
            "unknown-key",
            format!("`{key}.{arg}` is not an argument of this {key} builder"),
        )
    } else {
        Diagnostic::warning("unknown-key", format!("`{key}.{arg}` is not read"))
    };
    let d = match did_you_mean(arg, known.iter().copied()) {
        Some(s) => d.with_help(s),
        None if error => d.with_help("TorchTune would fail with an unexpected keyword argument"),
        None => d.with_help("it has no IR field; remove it or check the spelling"),
    };
    r.warn(d.at(Some(e.key_span)));
    r.consume(&format!("{key}.{arg}"));
}

pub(super) fn bool_arg(r: &mut Reader, key: &str, e: &Entry) -> Option<bool> {
    match e.node.to_value() {
        Value::Bool(b) => Some(b),
        Value::Null => None,
        other => {
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{key}` must be True or False, found `{other}`"),
                )
                .at(Some(e.node.span())),
            );
            None
        }
    }
}

pub(super) fn num_arg(r: &mut Reader, key: &str, e: &Entry) -> Option<f64> {
    match e.node.to_value() {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().parse::<f64>().is_ok() => s.trim().parse::<f64>().ok(),
        Value::Null => None,
        other => {
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{key}` must be a number, found `{other}`"),
                )
                .at(Some(e.node.span())),
            );
            None
        }
    }
}

pub(super) fn add_passthrough(r: &mut Reader, key: &str, value: Value, reason: &str, span: Span) {
    let mut pt =
        r.ir.get("passthrough")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
    if let Some(m) = pt.as_object_mut() {
        m.insert(format!("{}.{key}", FW.name()), value);
    }
    r.ir["passthrough"] = pt;
    r.warn(
        Diagnostic::info(
            "not-expressible",
            format!("`{key}` is kept but has no IR field: {reason}"),
        )
        .at(Some(span)),
    );
}

pub(super) fn derived(from: &str, rule: impl Into<String>) -> Origin {
    Origin::Derived {
        from: vec![from.to_string()],
        rule: rule.into(),
    }
}

pub(super) fn default_origin(note: impl Into<String>) -> Origin {
    let d = data::defaults(FW);
    Origin::Default {
        framework: d.framework.clone(),
        version: d.version.clone(),
        note: note.into(),
    }
}
