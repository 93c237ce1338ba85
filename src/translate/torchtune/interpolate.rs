//! OmegaConf `${…}` interpolation, resolved before a TorchTune config is read.

use crate::translate::node::{Entry, Node};
use serde_json::Value;

/// Resolve OmegaConf `${a.b}` references in string scalars against the whole tree. A string
/// that is exactly one reference takes the referenced value's type; references inside longer
/// strings are spliced in as text. Resolvers (`${oc.env:X}`) and unknown keys stay verbatim.
pub(super) fn interpolate(node: &Node, root: &Node, referenced: &mut Vec<String>) -> Node {
    match node {
        Node::Scalar {
            value: Value::String(s),
            span,
        } if s.contains("${") => Node::Scalar {
            value: resolve(s, root, referenced, 0),
            span: *span,
        },
        Node::Scalar { .. } => node.clone(),
        Node::Seq { items, span } => Node::Seq {
            items: items
                .iter()
                .map(|n| interpolate(n, root, referenced))
                .collect(),
            span: *span,
        },
        Node::Map { entries, span } => Node::Map {
            entries: entries
                .iter()
                .map(|(k, e)| {
                    (
                        k.clone(),
                        Entry {
                            key_span: e.key_span,
                            node: interpolate(&e.node, root, referenced),
                        },
                    )
                })
                .collect(),
            span: *span,
        },
    }
}

fn resolve(s: &str, root: &Node, referenced: &mut Vec<String>, depth: usize) -> Value {
    if depth > 8 {
        return Value::String(s.to_string());
    }
    let lookup = |path: &str, referenced: &mut Vec<String>| -> Option<Value> {
        if path.contains(':') || path.starts_with('.') {
            return None;
        }
        let v = root.lookup(path)?.node.to_value();
        let top = path.split('.').next().unwrap_or(path).to_string();
        if !referenced.contains(&top) {
            referenced.push(top);
        }
        Some(match v {
            Value::String(inner) if inner.contains("${") => {
                resolve(&inner, root, referenced, depth + 1)
            }
            v => v,
        })
    };
    if let Some(path) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        if !path.contains("${") && !path.contains('}') {
            return lookup(path, referenced).unwrap_or_else(|| Value::String(s.to_string()));
        }
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Value::String(out);
        };
        let path = &after[..end];
        match lookup(path, referenced) {
            Some(Value::String(v)) => out.push_str(&v),
            Some(Value::Null) | None => out.push_str(&rest[start..start + 3 + end]),
            Some(v) => out.push_str(&v.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Value::String(out)
}
