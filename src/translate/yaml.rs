//! YAML → [`Node`] with byte spans, on yaml-rust2's event parser.
//!
//! serde_yaml gives values but not where each key sits; the event stream gives both. Plain
//! scalars are typed as YAML 1.2's core schema does (`true`, `3`, `1e-4`, `null`); quoted
//! scalars stay strings. Anchors and aliases are resolved.

use super::node::{Entry, Node};
use crate::diag::{Diagnostic, Source, Span};
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Parse a YAML document. An empty document is an empty map.
pub fn parse(source: &Source) -> Result<Node, Diagnostic> {
    let mut builder = Builder {
        source,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        error: None,
    };
    let mut parser = Parser::new_from_str(&source.text);
    parser.load(&mut builder, false).map_err(|e| {
        let m = e.marker();
        let offset = source.offset_of(m.line(), m.col() + 1);
        Diagnostic::error("syntax", format!("invalid YAML: {}", e.info()))
            .at(Some(Span::new(offset, offset + 1)))
            .with_help("check the indentation and quoting on this line")
            .locate(source)
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.root.unwrap_or(Node::Map {
        entries: IndexMap::new(),
        span: Span::default(),
    }))
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: usize,
        anchor: usize,
    },
    Map {
        entries: IndexMap<String, Entry>,
        pending_key: Option<(String, Span)>,
        start: usize,
        anchor: usize,
    },
}

struct Builder<'a> {
    source: &'a Source,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<Diagnostic>,
}

impl Builder<'_> {
    fn offset(&self, m: &Marker) -> usize {
        self.source.offset_of(m.line(), m.col() + 1)
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    // A key: only scalar keys are meaningful in configs.
                    let span = node.span();
                    let key = match node.to_value() {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    *pending_key = Some((key, span));
                }
                Some((key, key_span)) => {
                    if entries.contains_key(&key) && self.error.is_none() {
                        self.error = Some(
                            Diagnostic::error(
                                "duplicate-key",
                                format!("key `{key}` is given twice"),
                            )
                            .at(Some(key_span))
                            .with_help("YAML keeps only one of them; delete the other")
                            .locate(self.source),
                        );
                    }
                    entries.insert(key, Entry { key_span, node });
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = self.offset(&mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let value = if style == TScalarStyle::Plain {
                    plain_scalar(&text)
                } else {
                    Value::String(text.clone())
                };
                let len = if style == TScalarStyle::Plain {
                    text.len()
                } else {
                    text.len() + 2
                };
                let end = (at + len).min(self.source.text.len());
                self.push_node(
                    Node::Scalar {
                        value,
                        span: Span::new(at, end),
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                start: at,
                anchor,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                entries: IndexMap::new(),
                pending_key: None,
                start: at,
                anchor,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let node_and_anchor = match self.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        start,
                        anchor,
                    }) => Some((
                        Node::Seq {
                            items,
                            span: Span::new(start, at),
                        },
                        anchor,
                    )),
                    Some(Frame::Map {
                        entries,
                        start,
                        anchor,
                        ..
                    }) => Some((
                        Node::Map {
                            entries,
                            span: Span::new(start, at),
                        },
                        anchor,
                    )),
                    None => None,
                };
                if let Some((node, anchor)) = node_and_anchor {
                    self.push_node(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node::Scalar {
                    value: Value::Null,
                    span: Span::new(at, at),
                });
                self.push_node(node, 0);
            }
            _ => {}
        }
    }
}

/// Type a plain scalar the way YAML 1.2's core schema does.
pub fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return Value::Number(n);
            }
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_key_spans() {
        let src = Source::new(
            "a.yml",
            "base_model: m\nlr: 1e-4\nlist:\n  - a\n  - 2\nnested:\n  x: true\n",
        );
        let root = parse(&src).unwrap();
        assert_eq!(
            root.to_value(),
            json!({"base_model": "m", "lr": 1e-4, "list": ["a", 2], "nested": {"x": true}})
        );
        let e = root.lookup("nested.x").unwrap();
        assert_eq!(src.line_col(e.key_span.start), (7, 3));
        assert_eq!(&src.text[e.node.span().start..e.node.span().end], "true");
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let src = Source::new("a.yml", "a: '3'\nb: \"true\"\n");
        assert_eq!(
            parse(&src).unwrap().to_value(),
            json!({"a": "3", "b": "true"})
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let src = Source::new("bad.yml", "a: 1\nb: [1, 2\nc: 3\n");
        let d = parse(&src).unwrap_err();
        assert_eq!(d.id, "syntax");
        assert!(d.line.is_some());
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let src = Source::new("d.yml", "a: 1\na: 2\n");
        let d = parse(&src).unwrap_err();
        assert_eq!((d.id, d.line), ("duplicate-key", Some(2)));
    }
}
