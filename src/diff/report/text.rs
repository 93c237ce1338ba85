//! Text helpers every renderer shares: number formats and escaping.

use crate::diff::curves::{Axis, CurveRow};

/// A difference or tolerance in three significant digits, `0` for zero.
pub fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if !x.is_finite() {
        format!("{x}")
    } else {
        format!("{x:.2e}")
    }
}

/// The name of the axis the curves were aligned on.
pub fn x_name(by: Axis) -> &'static str {
    match by {
        Axis::Step => "step",
        Axis::Tokens => "tokens",
    }
}

/// A row's position on the axis: A's step, or the token count.
pub fn fmt_x(by: Axis, r: &CurveRow) -> String {
    match by {
        Axis::Step => r.step_a.to_string(),
        Axis::Tokens => format!("{}", r.x),
    }
}

/// Shorten to `n` characters, keeping the end (the distinctive part of a tensor name).
pub fn ellipsize(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.to_string()
    } else {
        format!("…{}", s.chars().skip(count - n + 1).collect::<String>())
    }
}

/// `|` would end a Markdown table cell.
pub fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A message as HTML. Findings and notes mark names with backticks and may use `**bold**`, as
/// Markdown does; those become `<code>` and `<b>`, the rest is escaped.
pub fn html_inline(s: &str) -> String {
    let s = html_escape(s);
    let mut out = String::new();
    let (mut code, mut bold) = (false, false);
    let mut rest = s.as_str();
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = &rest[1..];
        } else if !code && rest.starts_with("**") {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = &rest[2..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</b>");
    }
    out
}
