use super::table::{code, text, Column, Row, Span, Table};
use super::text::html_inline;

#[test]
fn html_inline_marks_code_and_bold() {
    assert_eq!(
        html_inline("- **`id`** a `x` b"),
        "- <b><code>id</code></b> a <code>x</code> b"
    );
    assert_eq!(html_inline("a | b <c>"), "a | b &lt;c&gt;");
}

fn sample() -> Table {
    let mut t = Table::new(vec![
        Column::left("name", 6),
        Column::right("|Δ|", 7),
        Column::left("", 0),
    ]);
    t.push(vec![code("a<b"), text("1.00e-3"), vec![Span::Within(true)]]);
    t.rows.push(Row::Gap);
    t.push(vec![code("c"), text("—"), vec![Span::Within(false)]]);
    t
}

#[test]
fn one_table_three_renderings() {
    let t = sample();
    assert_eq!(
        t.terminal(),
        "  name        |Δ|\n  a<b     1.00e-3  ok\n  …\n  c             —  OUT\n"
    );
    assert_eq!(
        t.markdown(),
        "| name | \\|Δ\\| | |\n|---|---:|---|\n| `a<b` | 1.00e-3 |  |\n| … | | |\n| `c` | — | **outside** |\n"
    );
    assert_eq!(
        t.html(),
        "<table>\n<tr><th>name</th><th>|Δ|</th><th></th></tr>\n\
         <tr><td><code>a&lt;b</code></td><td class=\"num\">1.00e-3</td><td></td></tr>\n\
         <tr><td>…</td><td></td><td></td></tr>\n\
         <tr><td><code>c</code></td><td class=\"num\">—</td><td class=\"bad\"><b>outside</b></td></tr>\n\
         </table>\n"
    );
}
