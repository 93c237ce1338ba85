//! Diagnostics in the shape ruff and cargo print them: a stable id, a severity, one terse
//! message, the exact spot (`file:line:col` plus the source line with `^^^` under the
//! culprit) and an optional `help:` line with the fix.
//!
//! Positions are byte ranges into the source text, turned into 1-based line:column only when
//! rendered, so a parser never has to count lines itself.

use serde::Serialize;
use std::fmt;

/// A byte range in one source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }
}

/// A source text with its display name, for rendering spans.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based (line, column) of a byte offset; columns count characters.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// Byte offset of the start of a 1-based line/column (columns in characters).
    pub fn offset_of(&self, line: usize, col: usize) -> usize {
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let within: usize = l
                    .chars()
                    .take(col.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum();
                return offset + within;
            }
            offset += l.len();
        }
        self.text.len()
    }

    fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line - 1).unwrap_or("")
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding about an input file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Stable kebab-case id: `unknown-key`, `syntax`, `type-mismatch`, `conflict`,
    /// `not-supported`, `not-expressible`, `missing-key`, `deprecated-key`, `unknown-value`.
    pub id: &'static str,
    pub severity: Severity,
    pub message: String,
    /// File the span points into (empty for findings about the run as a whole).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(skip)]
    pub span: Option<Span>,
    /// 1-based line and column, filled in by [`Diagnostic::locate`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(id: &'static str, severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            id,
            severity,
            message: message.into(),
            file: String::new(),
            span: None,
            line: None,
            column: None,
            help: None,
        }
    }
    pub fn error(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Error, message)
    }
    pub fn warning(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Warning, message)
    }
    pub fn info(id: &'static str, message: impl Into<String>) -> Self {
        Self::new(id, Severity::Info, message)
    }
    pub fn at(mut self, span: Option<Span>) -> Self {
        self.span = span;
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Attach the file name and resolve the span into line/column.
    pub fn locate(mut self, source: &Source) -> Self {
        if self.file.is_empty() {
            self.file = source.name.clone();
        }
        if let Some(span) = self.span {
            let (l, c) = source.line_col(span.start);
            self.line = Some(l);
            self.column = Some(c);
        }
        self
    }

    /// Render as ruff does: header, ` --> file:line:col`, the source line, carets, help.
    pub fn render(&self, source: Option<&Source>) -> String {
        let mut out = format!("{}[{}]: {}\n", self.severity, self.id, self.message);
        match (self.line, self.column) {
            (Some(line), Some(col)) => {
                out.push_str(&format!("  --> {}:{}:{}\n", self.file, line, col));
                if let (Some(src), Some(span)) = (source, self.span) {
                    let text = src.line_text(line);
                    let (end_line, end_col) = src.line_col(span.end);
                    let width = if end_line == line && end_col > col {
                        end_col - col
                    } else {
                        text.chars().count().saturating_sub(col - 1).max(1)
                    };
                    let gutter = line.to_string().len();
                    out.push_str(&format!("{:gutter$} |\n", ""));
                    out.push_str(&format!("{line} | {text}\n"));
                    out.push_str(&format!(
                        "{:gutter$} | {}{}\n",
                        "",
                        " ".repeat(col - 1),
                        "^".repeat(width.max(1))
                    ));
                }
            }
            _ if !self.file.is_empty() => out.push_str(&format!("  --> {}\n", self.file)),
            _ => {}
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("  help: {help}\n"));
        }
        out
    }
}

/// "Did you mean `x`?" for a near miss among known names.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for k in known {
        let score = strsim::jaro_winkler(name, k);
        if score > 0.88 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, k));
        }
    }
    best.map(|(_, k)| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = Source::new("a.yml", "a: 1\nbb: 2\n");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(5), (2, 1));
        assert_eq!(src.line_col(7), (2, 3));
        assert_eq!(src.offset_of(2, 3), 7);
    }

    #[test]
    fn render_points_at_the_key() {
        let src = Source::new("cfg.yml", "base_model: x\nlora_rr: 8\n");
        let d = Diagnostic::warning("unknown-key", "unknown key `lora_rr`")
            .at(Some(Span::new(14, 21)))
            .with_help("did you mean `lora_r`?")
            .locate(&src);
        assert_eq!(
            d.render(Some(&src)),
            "warning[unknown-key]: unknown key `lora_rr`\n  --> cfg.yml:2:1\n  |\n2 | lora_rr: 8\n  | ^^^^^^^\n  help: did you mean `lora_r`?\n"
        );
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(
            did_you_mean("lora_rr", ["lora_r", "seed"]).as_deref(),
            Some("did you mean `lora_r`?")
        );
        assert_eq!(did_you_mean("zzz", ["lora_r", "seed"]), None);
    }
}
