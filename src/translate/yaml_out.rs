//! Rendering emitted keys as clean YAML: nested by dotted key, in the order written, with
//! `# comment`s beside the keys that carry one and blank lines between sections.

use super::emitter::Out;
use serde_json::Value;

/// A section of the output file: a heading comment and its keys.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section {
    pub title: String,
    pub body: String,
}

/// Render keys (dotted = nested) into YAML text. Keys sharing a prefix must be adjacent
/// in `outs` for the nesting to group them; writers emit them in that order.
pub fn render(outs: &[Out]) -> String {
    let mut text = String::new();
    let mut open: Vec<String> = Vec::new();
    for o in outs {
        let parts: Vec<&str> = o.key.split('.').collect();
        let (parents, leaf) = parts.split_at(parts.len() - 1);
        let common = open
            .iter()
            .zip(parents)
            .take_while(|(a, b)| a.as_str() == **b)
            .count();
        open.truncate(common);
        for p in &parents[common..] {
            text.push_str(&format!("{}{}:\n", "  ".repeat(open.len()), key_text(p)));
            open.push(p.to_string());
        }
        let indent = "  ".repeat(open.len());
        let comment = if o.comment.is_empty() {
            String::new()
        } else {
            format!("  # {}", o.comment)
        };
        match &o.value {
            Value::Object(m) if !m.is_empty() => {
                text.push_str(&format!("{indent}{}:{comment}\n", key_text(leaf[0])));
                text.push_str(&block(&o.value, open.len() + 1));
            }
            Value::Array(items) if items.iter().any(|v| v.is_object() || v.is_array()) => {
                text.push_str(&format!("{indent}{}:{comment}\n", key_text(leaf[0])));
                text.push_str(&block(&o.value, open.len() + 1));
            }
            v => text.push_str(&format!(
                "{indent}{}: {}{comment}\n",
                key_text(leaf[0]),
                inline(v)
            )),
        }
    }
    text
}

/// Render sections with a heading comment each.
pub fn render_sections(sections: &[(String, Vec<Out>)]) -> Vec<Section> {
    sections
        .iter()
        .filter(|(_, outs)| !outs.is_empty())
        .map(|(title, outs)| Section {
            title: title.clone(),
            body: render(outs),
        })
        .collect()
}

fn key_text(k: &str) -> String {
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/')
        && !k.is_empty()
    {
        k.to_string()
    } else {
        scalar(&Value::String(k.to_string()))
    }
}

/// A scalar or a short flow list/map on one line.
pub fn inline(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(flow_item).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(m) => {
            format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{}: {}", key_text(k), flow_item(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        other => scalar(other),
    }
}

/// An item inside a flow list or map: a plain string may not hold `,[]{}` there (they end the
/// scalar), so such strings are quoted (`[^lm_head.weight$, "layers.4[4-9]+.gate"]`).
fn flow_item(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains([',', '[', ']', '{', '}']) => {
            serde_json::to_string(s).expect("strings serialise")
        }
        other => inline(other),
    }
}

/// A YAML scalar that reads back as the same value (strings quoted only when needed).
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                float(f)
            } else {
                n.to_string()
            }
        }
        Value::String(s) => {
            let plain_ok = !s.is_empty()
                && super::yaml::plain_scalar(s) == Value::String(s.clone())
                && !s.starts_with(|c: char| "!&*-?[]{}|>'\"%@`#,: ".contains(c))
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.ends_with(':')
                && !s.ends_with(' ')
                && !s.contains('\n')
                && !matches!(
                    s.as_str(),
                    "yes" | "no" | "on" | "off" | "Yes" | "No" | "On" | "Off" | "y" | "n"
                );
            if plain_ok {
                s.clone()
            } else {
                serde_json::to_string(s).expect("strings serialise")
            }
        }
        other => other.to_string(),
    }
}

/// Floats as people write them in configs: `2.0e-4`, `0.05`, `1.0`. Always with a dot or
/// exponent so PyYAML (YAML 1.1) reads a float, not a string.
pub fn float(f: f64) -> String {
    if f == 0.0 {
        return "0.0".into();
    }
    let a = f.abs();
    if (1e-3..1e6).contains(&a) {
        let s = format!("{f}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{f:e}");
        // Rust writes 2e-4; YAML 1.1 needs a dot in the mantissa: 2.0e-4.
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = if m.contains('.') {
            m.to_string()
        } else {
            format!("{m}.0")
        };
        let e = if e.starts_with('-') {
            e.to_string()
        } else {
            format!("+{e}")
        };
        format!("{m}e{e}")
    }
}

fn block(v: &Value, depth: usize) -> String {
    let indent = "  ".repeat(depth);
    let mut out = String::new();
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(inner) if !inner.is_empty() => out.push_str(&format!(
                        "{indent}{}:\n{}",
                        key_text(k),
                        block(v, depth + 1)
                    )),
                    Value::Array(items) if items.iter().any(|v| v.is_object() || v.is_array()) => {
                        out.push_str(&format!(
                            "{indent}{}:\n{}",
                            key_text(k),
                            block(v, depth + 1)
                        ))
                    }
                    _ => out.push_str(&format!("{indent}{}: {}\n", key_text(k), inline(v))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let inner = block(item, depth + 1);
                        // "- " takes the place of the first line's indentation.
                        let trimmed = inner.trim_start_matches(' ');
                        out.push_str(&format!("{indent}- {trimmed}"));
                    }
                    _ => out.push_str(&format!("{indent}- {}\n", inline(item))),
                }
            }
        }
        other => out.push_str(&format!("{indent}{}\n", inline(other))),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn out(key: &str, value: Value, comment: &str) -> Out {
        Out {
            key: key.into(),
            value,
            comment: comment.into(),
            section: String::new(),
        }
    }

    #[test]
    fn nests_dotted_keys_and_round_trips() {
        let outs = vec![
            out(
                "model._component_",
                json!("torchtune.models.qwen2.lora_qwen2"),
                "",
            ),
            out("model.lora_rank", json!(8), "parity"),
            out("optimizer.lr", json!(0.0002), ""),
            out(
                "datasets",
                json!([{"path": "a.json", "type": "alpaca"}]),
                "",
            ),
            out("seed", json!(42), ""),
        ];
        let text = render(&outs);
        assert_eq!(
            text,
            "model:\n  _component_: torchtune.models.qwen2.lora_qwen2\n  lora_rank: 8  # parity\noptimizer:\n  lr: 2.0e-4\ndatasets:\n  - path: a.json\n    type: alpaca\nseed: 42\n"
        );
        let back: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back["optimizer"]["lr"], json!(0.0002));
        assert_eq!(back["datasets"][0]["type"], json!("alpaca"));
    }

    #[test]
    fn floats_read_back_as_floats_in_yaml_1_1() {
        assert_eq!(float(2e-4), "2.0e-4");
        assert_eq!(float(1e-5), "1.0e-5");
        assert_eq!(float(0.05), "0.05");
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(3e-3), "0.003");
    }

    #[test]
    fn flow_lists_quote_strings_with_flow_indicators() {
        let v = json!(["^lm_head.weight$", "model.layers.4[4-9]+.gate", "a,b", {"k": "x{y}"}]);
        let text = format!("key: {}\n", inline(&v));
        let back: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back["key"], v, "{text}");
    }

    #[test]
    fn strings_are_quoted_only_when_needed() {
        assert_eq!(
            scalar(&json!("meta-llama/Llama-3.2-1B")),
            "meta-llama/Llama-3.2-1B"
        );
        assert_eq!(scalar(&json!("true")), "\"true\"");
        assert_eq!(scalar(&json!("8")), "\"8\"");
        assert_eq!(scalar(&json!("a: b")), "\"a: b\"");
        assert_eq!(scalar(&json!("")), "\"\"");
    }
}
