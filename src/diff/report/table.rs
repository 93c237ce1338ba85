//! One table, three renderings: fixed-width terminal columns, a Markdown pipe table and an HTML
//! `<table>`. The report sections build a [`Table`] once; each format only decides how a cell
//! looks (a flag is `OUT` in the terminal, `**outside**` in Markdown, a red cell in HTML).

use super::text::{html_escape, md_escape};
use std::fmt::Write as _;

/// How a column lines up in the terminal and in Markdown (`---:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One column: its header, alignment, and its width in the terminal (`0`: unpadded).
#[derive(Debug, Clone)]
pub struct Column {
    pub header: String,
    pub align: Align,
    pub width: usize,
}

impl Column {
    pub fn left(header: &str, width: usize) -> Column {
        Column {
            header: header.into(),
            align: Align::Left,
            width,
        }
    }

    pub fn right(header: &str, width: usize) -> Column {
        Column {
            header: header.into(),
            align: Align::Right,
            width,
        }
    }
}

/// A piece of a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    Text(String),
    /// A name or path: `code` in Markdown and HTML, plain in the terminal.
    Code(String),
    /// A line break inside a cell (Markdown and HTML `<br>`, `, ` in the terminal).
    Break,
    /// Whether the row is within tolerance: nothing (Markdown, HTML) or `ok`, else `OUT`,
    /// `**outside**`, a red cell.
    Within(bool),
}

/// The spans of one cell; no spans is an empty cell.
pub type Cell = Vec<Span>;

/// A cell of plain text.
pub fn text(s: impl Into<String>) -> Cell {
    vec![Span::Text(s.into())]
}

/// A cell holding one name or path.
pub fn code(s: impl Into<String>) -> Cell {
    vec![Span::Code(s.into())]
}

/// A row, or a gap where rows were left out (`…`).
#[derive(Debug, Clone)]
pub enum Row {
    Cells(Vec<Cell>),
    Gap,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, cells: Vec<Cell>) {
        self.rows.push(Row::Cells(cells));
    }

    /// A gap row's cells: `…` in the first column, the rest empty.
    fn gap_cells(&self) -> Vec<Cell> {
        let mut cells = vec![text("…")];
        cells.resize(self.columns.len(), Cell::new());
        cells
    }

    fn cells<'a>(&'a self, row: &'a Row) -> std::borrow::Cow<'a, [Cell]> {
        match row {
            Row::Cells(c) => std::borrow::Cow::Borrowed(c),
            Row::Gap => std::borrow::Cow::Owned(self.gap_cells()),
        }
    }

    /// Fixed-width columns, two spaces apart and two in from the margin; trailing blanks
    /// trimmed.
    pub fn terminal(&self) -> String {
        let line = |cells: Vec<String>| {
            let mut l = String::new();
            for (col, cell) in self.columns.iter().zip(cells) {
                let w = col.width;
                let _ = match col.align {
                    Align::Left => write!(l, "  {cell:<w$}"),
                    Align::Right => write!(l, "  {cell:>w$}"),
                };
            }
            l.trim_end().to_string() + "\n"
        };
        let mut s = line(self.columns.iter().map(|c| c.header.clone()).collect());
        for row in &self.rows {
            s.push_str(&line(self.cells(row).iter().map(terminal_cell).collect()));
        }
        s
    }

    /// A GitHub-flavoured Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = String::from("|");
        for c in &self.columns {
            if c.header.is_empty() {
                s.push_str(" |");
            } else {
                let _ = write!(s, " {} |", md_escape(&c.header));
            }
        }
        s.push_str("\n|");
        for c in &self.columns {
            s.push_str(match c.align {
                Align::Left => "---|",
                Align::Right => "---:|",
            });
        }
        s.push('\n');
        for row in &self.rows {
            let cells = self.cells(row);
            // An empty cell is `| |`; a raised-or-not flag keeps its spaces (`|  |`).
            s.push('|');
            for c in cells.iter() {
                if c.is_empty() {
                    s.push_str(" |");
                } else {
                    let _ = write!(s, " {} |", markdown_cell(c));
                }
            }
            s.push('\n');
        }
        s
    }

    /// An HTML `<table>`: header cells, numbers right-aligned (`num`), flagged cells `bad`.
    pub fn html(&self) -> String {
        let mut s = String::from("<table>\n<tr>");
        for c in &self.columns {
            let _ = write!(s, "<th>{}</th>", html_escape(&c.header));
        }
        s.push_str("</tr>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for c in self.cells(row).iter() {
                let cls = if c.contains(&Span::Within(false)) {
                    " class=\"bad\""
                } else if is_number(c) {
                    " class=\"num\""
                } else {
                    ""
                };
                let _ = write!(s, "<td{cls}>{}</td>", html_cell(c));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        s
    }
}

/// A cell that reads as a number (or the `—` of a missing one).
fn is_number(c: &Cell) -> bool {
    match c.as_slice() {
        [Span::Text(t)] => t == "—" || (!t.is_empty() && t.parse::<f64>().is_ok()),
        _ => false,
    }
}

fn terminal_cell(c: &Cell) -> String {
    c.iter()
        .map(|s| match s {
            Span::Text(t) | Span::Code(t) => t.as_str(),
            Span::Break => ", ",
            Span::Within(true) => "ok",
            Span::Within(false) => "OUT",
        })
        .collect()
}

fn markdown_cell(c: &Cell) -> String {
    c.iter()
        .map(|s| match s {
            Span::Text(t) => md_escape(t),
            Span::Code(t) => format!("`{t}`"),
            Span::Break => "<br>".into(),
            Span::Within(true) => String::new(),
            Span::Within(false) => "**outside**".into(),
        })
        .collect()
}

fn html_cell(c: &Cell) -> String {
    c.iter()
        .map(|s| match s {
            Span::Text(t) => html_escape(t),
            Span::Code(t) => format!("<code>{}</code>", html_escape(t)),
            Span::Break => "<br>".into(),
            Span::Within(true) => String::new(),
            Span::Within(false) => "<b>outside</b>".into(),
        })
        .collect()
}
