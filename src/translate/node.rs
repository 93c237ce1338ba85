//! A parsed input as a tree of values that remember where they were written.
//!
//! YAML configs and Python scripts both become a [`Node`] tree (a script's tree is
//! `call name → keyword → value`), so key lookup, type checks, unknown-key warnings and
//! provenance work the same way for every format.

use crate::diag::Span;
use indexmap::IndexMap;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar {
        value: Value,
        span: Span,
    },
    Seq {
        items: Vec<Node>,
        span: Span,
    },
    Map {
        entries: IndexMap<String, Entry>,
        span: Span,
    },
}

/// One `key: value` of a map, with the key's own span (diagnostics point at the key).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key_span: Span,
    pub node: Node,
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Scalar { span, .. } | Node::Seq { span, .. } | Node::Map { span, .. } => *span,
        }
    }

    /// The plain JSON value of this subtree.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Scalar { value, .. } => value.clone(),
            Node::Seq { items, .. } => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Map { entries, .. } => Value::Object(
                entries
                    .iter()
                    .map(|(k, e)| (k.clone(), e.node.to_value()))
                    .collect(),
            ),
        }
    }

    pub fn as_map(&self) -> Option<&IndexMap<String, Entry>> {
        match self {
            Node::Map { entries, .. } => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match self {
            Node::Seq { items, .. } => Some(items),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar {
                value: Value::String(s),
                ..
            } => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(
            self,
            Node::Scalar {
                value: Value::Null,
                ..
            }
        )
    }

    /// Entry at a dotted path of map keys (`fsdp_config.offload_params`).
    pub fn lookup(&self, path: &str) -> Option<&Entry> {
        let mut node = self;
        let mut found = None;
        for seg in path.split('.') {
            let e = node.as_map()?.get(seg)?;
            node = &e.node;
            found = Some(e);
        }
        found
    }

    /// Every `(dotted key, entry)` whose value is not a map, depth first, in file order.
    pub fn leaves(&self) -> Vec<(String, &Entry)> {
        let mut out = Vec::new();
        fn walk<'a>(prefix: &str, node: &'a Node, out: &mut Vec<(String, &'a Entry)>) {
            if let Node::Map { entries, .. } = node {
                for (k, e) in entries {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    match &e.node {
                        Node::Map { entries: inner, .. } if !inner.is_empty() => {
                            walk(&key, &e.node, out)
                        }
                        _ => out.push((key, e)),
                    }
                }
            }
        }
        walk("", self, &mut out);
        out
    }
}
