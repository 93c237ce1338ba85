//! JSON values as Python literals, as notebooks write them.

use serde_json::Value;

/// A JSON value as a Python literal.
pub(crate) fn py(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => py_num(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => py_str(s),
        Value::Array(items) => format!("[{}]", items.iter().map(py).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A float the way notebooks write it: `2e-4`, `0.001`, `1.0`.
pub(crate) fn py_num(f: f64) -> String {
    if f != 0.0 && f.abs() < 1e-3 {
        format!("{f:e}")
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A double-quoted Python string.
pub(crate) fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A triple-quoted Python string keeping its newlines (for prompts).
pub(crate) fn py_triple(s: &str) -> String {
    let mut out = String::from("\"\"\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 && c != '\n' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("\"\"\"");
    out
}
