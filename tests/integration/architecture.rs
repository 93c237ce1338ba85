//! The shape of `src/` itself, checked like any other behaviour (issue 9):
//!
//! - **No import cycle between files.** File A imports file B when A's code (comments and
//!   string literals stripped) names B's module: `use crate::…`, `use super::…`, `use self::…`,
//!   a relative `use child::…`, or an inline path such as `crate::a::b::f()` or `super::x::Y`.
//!   A `pub use` re-export counts; a bare `mod child;` declaration does not. A path resolves to
//!   the longest prefix that is a module file (`src/a/b.rs` or `src/a/b/mod.rs`; `src/lib.rs` is
//!   the root); inside an inline `mod tests { … }`, `super` is the file's own module. A cycle
//!   means two files can only be understood (and moved) together; the fix is a leaf module
//!   that holds what both need.
//! - **No file over [`MAX_LINES`] lines**, except model files (`src/engine/model/`, one family
//!   per file, candle-style) and test modules (files named `tests.rs` or under a `tests/`
//!   folder). An inline `#[cfg(test)] mod tests { … }` counts with its file: past the limit,
//!   move it to a `tests.rs` beside the file.
//!
//! Failures read like ruff's: one block per problem, the file and line of each import, and a
//! `help:` line. The graph logic has its own unit tests on small synthetic trees at the end.

use crate::harness::repo;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The longest a file under `src/` may be (model files and test modules excepted).
const MAX_LINES: usize = 700;

#[test]
fn no_import_cycle_between_files() {
    let files = read_src(&repo());
    let graph = ImportGraph::build(&files);
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "\n{}\n{} import cycle(s) between files under src/\n",
        cycles
            .iter()
            .map(|c| graph.render_cycle(c))
            .collect::<Vec<_>>()
            .join("\n"),
        cycles.len()
    );
}

#[test]
fn no_file_over_the_line_limit() {
    let files = read_src(&repo());
    let long: Vec<String> = files
        .iter()
        .filter(|(path, _)| !exempt_from_line_limit(path))
        .filter_map(|(path, text)| {
            let n = text.lines().count();
            (n > MAX_LINES).then(|| {
                format!(
                    "error[file-too-long]: {path} has {n} lines (limit {MAX_LINES})\n  \
                     = help: split it along meaning into modules with one purpose each; an inline \
                     test module can move to a tests.rs of its own\n"
                )
            })
        })
        .collect();
    assert!(
        long.is_empty(),
        "\n{}\n{} file(s) under src/ over {MAX_LINES} lines (model files under \
         src/engine/model/ and test modules are exempt)\n",
        long.join("\n"),
        long.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Reading the tree

/// Every `.rs` file under `<root>/src`, keyed by its path relative to `root` with `/`
/// separators (`src/engine/lora.rs`), sorted.
fn read_src(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("under the root");
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(key, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&root.join("src"), root, &mut out);
    out
}

/// Model files (one family per file, like candle-transformers) and test modules may be long.
fn exempt_from_line_limit(path: &str) -> bool {
    path.starts_with("src/engine/model/")
        || path.ends_with("/tests.rs")
        || path.split('/').rev().skip(1).any(|dir| dir == "tests")
}

// ---------------------------------------------------------------------------------------------
// The import graph

/// The module path of a file: `src/a/b.rs` and `src/a/b/mod.rs` are `["a", "b"]`,
/// `src/lib.rs` and `src/main.rs` the root `[]`.
fn module_path(file: &str) -> Vec<String> {
    let rel = file.strip_prefix("src/").unwrap_or(file);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut segs: Vec<String> = rel.split('/').map(str::to_string).collect();
    if segs.last().is_some_and(|s| s == "mod") {
        segs.pop();
    }
    if segs == ["lib"] || segs == ["main"] {
        segs.clear();
    }
    segs
}

/// One import of one file: where it is and the path it names.
#[derive(Clone, Debug)]
struct Import {
    line: usize,
    /// The inline module (`mod tests { … }`) it sits in, relative to the file's module.
    inline: Vec<String>,
    path: Vec<String>,
}

/// Why file A depends on file B: the first import found that resolves to B (`use`
/// declarations are read before inline paths).
#[derive(Clone, Debug)]
struct Edge {
    line: usize,
    through: String,
}

struct ImportGraph {
    /// file → (imported file → the first import that names it)
    edges: BTreeMap<String, BTreeMap<String, Edge>>,
}

impl ImportGraph {
    fn build(files: &BTreeMap<String, String>) -> Self {
        // The root module is the library's; `main.rs` is its own crate root and only counts
        // where the library has none (a binary-only tree).
        let mut modules: BTreeMap<Vec<String>, &str> = BTreeMap::new();
        for file in files.keys() {
            let path = module_path(file);
            if file != "src/main.rs" || !modules.contains_key(&path) {
                modules.insert(path, file);
            }
        }
        let mut edges = BTreeMap::new();
        for (file, text) in files {
            let me = module_path(file);
            let mut out: BTreeMap<String, Edge> = BTreeMap::new();
            for import in imports(&strip_comments_and_strings(text)) {
                let here = [me.as_slice(), import.inline.as_slice()].concat();
                let Some(target) = resolve(&here, &import.path, &modules) else {
                    continue;
                };
                if target != file {
                    let named: Vec<&str> = import
                        .path
                        .iter()
                        .map(String::as_str)
                        .filter(|s| *s != "self")
                        .collect();
                    out.entry(target.to_string()).or_insert(Edge {
                        line: import.line,
                        through: named.join("::"),
                    });
                }
            }
            edges.insert(file.clone(), out);
        }
        ImportGraph { edges }
    }

    /// Strongly connected components of more than one file (Tarjan), each sorted, in the
    /// order of their first file.
    fn cycles(&self) -> Vec<Vec<String>> {
        struct Tarjan<'g> {
            graph: &'g BTreeMap<String, BTreeMap<String, Edge>>,
            index: BTreeMap<&'g str, usize>,
            low: BTreeMap<&'g str, usize>,
            stack: Vec<&'g str>,
            on_stack: BTreeSet<&'g str>,
            components: Vec<Vec<String>>,
        }
        impl<'g> Tarjan<'g> {
            fn visit(&mut self, v: &'g str) {
                let i = self.index.len();
                self.index.insert(v, i);
                self.low.insert(v, i);
                self.stack.push(v);
                self.on_stack.insert(v);
                let graph = self.graph;
                for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let low = self.low[v].min(self.low[w]);
                        self.low.insert(v, low);
                    } else if self.on_stack.contains(w) {
                        let low = self.low[v].min(self.index[w]);
                        self.low.insert(v, low);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut component = Vec::new();
                    loop {
                        let w = self.stack.pop().expect("v is on the stack");
                        self.on_stack.remove(w);
                        component.push(w.to_string());
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort();
                        self.components.push(component);
                    }
                }
            }
        }
        let mut t = Tarjan {
            graph: &self.edges,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            components: Vec::new(),
        };
        for v in self.edges.keys() {
            if !t.index.contains_key(v.as_str()) {
                t.visit(v.as_str());
            }
        }
        t.components.sort();
        t.components
    }

    /// A cycle as a ruff-style block: every edge inside it with the import that makes it.
    fn render_cycle(&self, component: &[String]) -> String {
        let mut out = format!(
            "error[import-cycle]: {} files import each other: {}\n",
            component.len(),
            component.join(", ")
        );
        for a in component {
            for (b, edge) in &self.edges[a] {
                if component.contains(b) {
                    out += &format!("  --> {a}:{} imports {b} (`{}`)\n", edge.line, edge.through);
                }
            }
        }
        out += "  = help: move the shared item into a leaf module that both import, and import \
                it from the module that defines it (a parent mod.rs only declares and re-exports)\n";
        out
    }
}

/// Resolve an import path seen in module `me` to the file of the longest module prefix it
/// names, or `None` for paths outside the crate (`std::…`, other crates).
fn resolve<'m>(
    me: &[String],
    path: &[String],
    modules: &BTreeMap<Vec<String>, &'m str>,
) -> Option<&'m str> {
    let first = path.first()?;
    let (mut base, rest): (Vec<String>, &[String]) = match first.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "super" | "self" => {
            let mut base = me.to_vec();
            let mut i = 0;
            while let Some(seg) = path.get(i) {
                match seg.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                i += 1;
            }
            (base, &path[i..])
        }
        // Edition 2018: `use child::x` names a child module of this file.
        child => {
            let mut probe = me.to_vec();
            probe.push(child.to_string());
            if !modules.contains_key(&probe) {
                return None;
            }
            (me.to_vec(), path)
        }
    };
    // `self` inside a group (`use a::{self, b}`) names `a` itself.
    base.extend(rest.iter().filter(|s| *s != "self").cloned());
    (0..=base.len())
        .rev()
        .find_map(|n| modules.get(&base[..n]).copied())
}

// ---------------------------------------------------------------------------------------------
// Reading imports out of Rust source

/// Blank out comments (line, block, nested block, doc) and the contents of string and char
/// literals (plain, raw `r#"…"#`, byte), keeping every newline so positions keep their line.
/// Lifetimes (`'a`) are code and stay.
fn strip_comments_and_strings(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_is_ident = i > 0 && is_ident(c[i - 1]);
        // Line comment (also `///` and `//!`).
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
            continue;
        }
        // Block comment, nested.
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out += "  ";
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out += "  ";
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
            continue;
        }
        // Raw string: r"…", r#"…"#, br#"…"# (the `b` was already copied as code).
        if c[i] == 'r' && !(prev_is_ident && c[i - 1] != 'b') {
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                let hashes = j - i - 1;
                out.push('"');
                let mut k = j + 1;
                while k < c.len() {
                    if c[k] == '"' && (1..=hashes).all(|h| c.get(k + h) == Some(&'#')) {
                        break;
                    }
                    out.push(blank(c[k]));
                    k += 1;
                }
                out.push('"');
                i = k + 1 + hashes;
                continue;
            }
        }
        // Plain (or byte) string.
        if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < c.len() {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
            continue;
        }
        // Char literal ('x', '\n', '\u{..}', '"'); a lifetime ('a) has no closing quote.
        if c[i] == '\'' {
            if c.get(i + 1) == Some(&'\\') {
                let mut k = i + 3;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                out += "' '";
                i = k + 1;
                continue;
            }
            if c.get(i + 2) == Some(&'\'') {
                out += "' '";
                i += 3;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Every module path a file's (stripped) code names: each leaf of each `use` tree, and each
/// inline `crate::…`, `super::…`, `self::…` or `child::…` path. Relative paths are kept; the
/// resolver drops those that are not a child module.
fn imports(code: &str) -> Vec<Import> {
    let newlines: Vec<usize> = code.match_indices('\n').map(|(i, _)| i).collect();
    let line_of = |offset: usize| newlines.partition_point(|&n| n < offset) + 1;
    let scopes = inline_modules(code);
    let inline_at = |offset: usize| {
        let i = scopes.partition_point(|(start, _)| *start <= offset);
        i.checked_sub(1)
            .map(|i| scopes[i].1.clone())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let use_decl = Regex::new(r"\buse\s+([^;]+);").expect("valid regex");
    for m in use_decl.captures_iter(code) {
        let tree = m.get(1).expect("group 1");
        for path in expand_use_tree(tree.as_str()) {
            out.push(Import {
                line: line_of(tree.start()),
                inline: inline_at(tree.start()),
                path,
            });
        }
    }
    // Inline paths outside `use` declarations: inside one, `crate::a::{b::X}` would also read
    // as `crate::a` and add an edge to `a`'s file that the tree's leaves do not make.
    let mut rest = String::with_capacity(code.len());
    let mut last = 0;
    for m in use_decl.find_iter(code) {
        rest += &code[last..m.start()];
        rest += &blank_keeping_lines(m.as_str());
        last = m.end();
    }
    rest += &code[last..];
    // A path that starts at `crate`, `super`, `self` or a lower-case name (`torchtune::read(…)`
    // in a mod.rs names its child module; the resolver drops names that are no child module,
    // such as `std::…` or another crate). Not after `::` or inside a longer identifier.
    let inline =
        Regex::new(r"(?:^|[^:A-Za-z0-9_])([a-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
            .expect("valid regex");
    for c in inline.captures_iter(&rest) {
        let m = c.get(1).expect("group 1");
        out.push(Import {
            line: line_of(m.start()),
            inline: inline_at(m.start()),
            path: m.as_str().split("::").map(str::to_string).collect(),
        });
    }
    out
}

/// Where inline modules (`mod tests { … }`) open and close in (stripped) code: each entry is
/// an offset and the inline module path from there on. Inside `mod tests { use super::*; }`
/// `super` is the file's own module, not its parent.
fn inline_modules(code: &str) -> Vec<(usize, Vec<String>)> {
    let opening = Regex::new(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{").expect("valid regex");
    let opens: BTreeMap<usize, String> = opening
        .captures_iter(code)
        .map(|c| (c.get(0).expect("match").end() - 1, c[1].to_string()))
        .collect();
    let mut scopes = Vec::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for (i, ch) in code.char_indices() {
        match ch {
            '{' => {
                depth += 1;
                if let Some(name) = opens.get(&i) {
                    stack.push((name.clone(), depth));
                    scopes.push((i, stack.iter().map(|(n, _)| n.clone()).collect()));
                }
            }
            '}' => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                    scopes.push((i, stack.iter().map(|(n, _)| n.clone()).collect()));
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    scopes
}

/// Spaces for every character but newlines, so a blanked range keeps its lines.
fn blank_keeping_lines(s: &str) -> String {
    s.chars()
        .map(|ch| if ch == '\n' { '\n' } else { ' ' })
        .collect()
}

/// The leaves of a `use` tree: `a::{b, c::{d, e as f}, *}` is `a::b`, `a::c::d`, `a::c::e`
/// and `a` (a glob names the module it globs). A leading `::` (extern crate) is dropped.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    #[derive(PartialEq)]
    enum Tok {
        Ident(String),
        Sep,
        Open,
        Close,
        Comma,
        Star,
    }
    let mut toks = Vec::new();
    let c: Vec<char> = tree.chars().collect();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            ':' if c.get(i + 1) == Some(&':') => {
                toks.push(Tok::Sep);
                i += 2;
            }
            '{' | '}' | ',' | '*' => {
                toks.push(match c[i] {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    _ => Tok::Star,
                });
                i += 1;
            }
            ch if ch.is_alphanumeric() || ch == '_' || ch == '#' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '#') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                toks.push(Tok::Ident(word.trim_start_matches("r#").to_string()));
            }
            _ => i += 1,
        }
    }

    fn parse(toks: &[Tok], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        while *i < toks.len() {
            match &toks[*i] {
                Tok::Sep => *i += 1,
                Tok::Open => {
                    *i += 1;
                    while *i < toks.len() && toks[*i] != Tok::Close {
                        if toks[*i] == Tok::Comma {
                            *i += 1;
                            continue;
                        }
                        parse(toks, i, path.clone(), out);
                    }
                    *i += 1;
                    return;
                }
                Tok::Star => {
                    *i += 1;
                    out.push(path);
                    return;
                }
                Tok::Ident(seg) => {
                    path.push(seg.clone());
                    *i += 1;
                    if toks.get(*i) == Some(&Tok::Sep) {
                        continue;
                    }
                    if matches!(toks.get(*i), Some(Tok::Ident(a)) if a == "as") {
                        *i += 2;
                    }
                    out.push(path);
                    return;
                }
                Tok::Close | Tok::Comma => return,
            }
        }
        if !path.is_empty() {
            out.push(path);
        }
    }

    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let before = i;
        parse(&toks, &mut i, Vec::new(), &mut out);
        if i == before {
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests, on synthetic trees

fn synthetic(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

fn edges_of(graph: &ImportGraph, file: &str) -> Vec<String> {
    graph.edges[file].keys().cloned().collect()
}

#[test]
fn checker_finds_a_cycle_through_a_parent_facade() {
    // The shape issue 9 removes: mod.rs re-exports a child and defines what the child uses.
    let files = synthetic(&[
        ("src/lib.rs", "pub mod a;\n"),
        (
            "src/a/mod.rs",
            "mod read;\npub use read::read;\npub struct Shared;\n",
        ),
        ("src/a/read.rs", "use super::Shared;\npub fn read() {}\n"),
        ("src/a/leaf.rs", "pub struct Leaf;\n"),
    ]);
    let graph = ImportGraph::build(&files);
    let cycles = graph.cycles();
    assert_eq!(cycles, vec![vec!["src/a/mod.rs", "src/a/read.rs"]]);
    let text = graph.render_cycle(&cycles[0]);
    assert!(
        text.contains("src/a/mod.rs:2 imports src/a/read.rs (`read::read`)"),
        "{text}"
    );
    assert!(
        text.contains("src/a/read.rs:1 imports src/a/mod.rs (`super::Shared`)"),
        "{text}"
    );
    assert!(
        text.contains("help: move the shared item into a leaf module"),
        "{text}"
    );
}

#[test]
fn checker_finds_a_cycle_through_inline_paths() {
    let files = synthetic(&[
        ("src/lib.rs", "mod x;\nmod y;\n"),
        ("src/x.rs", "pub fn f() { crate::y::g() }\n"),
        ("src/y.rs", "pub fn g() { let _ = super::x::f; }\n"),
    ]);
    let cycles = ImportGraph::build(&files).cycles();
    assert_eq!(cycles, vec![vec!["src/x.rs", "src/y.rs"]]);
}

#[test]
fn checker_finds_a_cycle_through_a_relative_inline_path() {
    // `child::f()` in a mod.rs calls into its child without `use`; the child imports the parent.
    let files = synthetic(&[
        ("src/lib.rs", "pub mod a;\n"),
        (
            "src/a/mod.rs",
            "mod read;\npub struct Options;\npub fn go() { read::read() }\n",
        ),
        (
            "src/a/read.rs",
            "use super::Options;\npub fn read() { let _ = std::mem::size_of::<Options>(); }\n",
        ),
    ]);
    let graph = ImportGraph::build(&files);
    assert_eq!(edges_of(&graph, "src/a/mod.rs"), ["src/a/read.rs"]);
    assert_eq!(graph.cycles().len(), 1);
}

#[test]
fn checker_does_not_count_a_mod_declaration() {
    let files = synthetic(&[
        ("src/lib.rs", "pub mod a;\n"),
        (
            "src/a/mod.rs",
            "mod read;\nmod common;\npub use common::Shared;\n",
        ),
        ("src/a/common.rs", "pub struct Shared;\n"),
        ("src/a/read.rs", "use super::common::Shared;\n"),
    ]);
    let graph = ImportGraph::build(&files);
    assert!(graph.cycles().is_empty());
    assert!(edges_of(&graph, "src/lib.rs").is_empty());
    assert_eq!(edges_of(&graph, "src/a/mod.rs"), ["src/a/common.rs"]);
    assert_eq!(edges_of(&graph, "src/a/read.rs"), ["src/a/common.rs"]);
}

#[test]
fn checker_reads_super_in_an_inline_module_as_the_file_itself() {
    // `use super::*` in `mod tests { … }` names the file's own module, not its parent.
    let files = synthetic(&[
        ("src/lib.rs", "pub mod a;\n"),
        ("src/a/mod.rs", "mod b;\npub fn g() {}\n"),
        (
            "src/a/b.rs",
            "pub struct B;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\nfn f() { super::g() }\n",
        ),
    ]);
    let graph = ImportGraph::build(&files);
    assert!(graph.cycles().is_empty(), "{:?}", graph.cycles());
    // After the inline module closes, `super` is the parent again (line 6).
    assert_eq!(edges_of(&graph, "src/a/b.rs"), ["src/a/mod.rs"]);
    assert_eq!(graph.edges["src/a/b.rs"]["src/a/mod.rs"].line, 6);
}

#[test]
fn checker_expands_use_trees() {
    let leaves = |t: &str| -> Vec<String> {
        expand_use_tree(t)
            .into_iter()
            .map(|p| p.join("::"))
            .collect()
    };
    assert_eq!(
        leaves("crate::a::{b, c::{d, e as f}, g::*}"),
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "crate::a::g"
        ]
    );
    assert_eq!(leaves("super::{self, x}"), ["super::self", "super::x"]);
    assert_eq!(leaves("::std::fmt"), ["std::fmt"]);
    assert_eq!(leaves("{a::b, c}"), ["a::b", "c"]);

    let files = synthetic(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a/mod.rs", "mod c;\nmod d;\n"),
        ("src/a/c.rs", ""),
        ("src/a/d.rs", ""),
        (
            "src/b.rs",
            "use crate::a::{\n    c::Thing,\n    d::{self, Other as O},\n};\n",
        ),
    ]);
    let graph = ImportGraph::build(&files);
    assert_eq!(edges_of(&graph, "src/b.rs"), ["src/a/c.rs", "src/a/d.rs"]);
}

#[test]
fn checker_resolves_to_the_longest_module_prefix() {
    let modules: BTreeMap<Vec<String>, &str> = [
        (vec![], "src/lib.rs"),
        (vec!["a".to_string()], "src/a/mod.rs"),
        (vec!["a".to_string(), "b".to_string()], "src/a/b.rs"),
    ]
    .into_iter()
    .collect();
    let seg = |p: &str| p.split("::").map(str::to_string).collect::<Vec<_>>();
    let me = seg("a::b");
    assert_eq!(
        resolve(&me, &seg("crate::a::b::Item"), &modules),
        Some("src/a/b.rs")
    );
    assert_eq!(
        resolve(&me, &seg("crate::a::Item"), &modules),
        Some("src/a/mod.rs")
    );
    assert_eq!(
        resolve(&me, &seg("super::Item"), &modules),
        Some("src/a/mod.rs")
    );
    assert_eq!(
        resolve(&me, &seg("super::super::x"), &modules),
        Some("src/lib.rs")
    );
    assert_eq!(resolve(&me, &seg("std::fmt"), &modules), None);
    assert_eq!(
        resolve(&seg("a"), &seg("b::Item"), &modules),
        Some("src/a/b.rs")
    );
}

#[test]
fn checker_ignores_comments_and_strings() {
    let src = "// use crate::a::X;\n/* crate::b::Y /* nested */ crate::c */\n\
               let s = \"crate::d::Z\"; let r = r#\"super::e\"#; let q = '\"';\n\
               fn f<'a>(x: &'a str) { crate::g::h() }\n";
    let code = strip_comments_and_strings(src);
    assert_eq!(code.lines().count(), src.lines().count());
    let found: Vec<(usize, String)> = imports(&code)
        .into_iter()
        .map(|i| (i.line, i.path.join("::")))
        .collect();
    assert_eq!(found, [(4, "crate::g::h".to_string())]);
}

#[test]
fn line_limit_exempts_models_and_tests() {
    assert!(exempt_from_line_limit("src/engine/model/llama.rs"));
    assert!(exempt_from_line_limit("src/translate/axolotl/tests.rs"));
    assert!(exempt_from_line_limit("src/diff/tests/report.rs"));
    assert!(!exempt_from_line_limit("src/engine/train.rs"));
    assert!(!exempt_from_line_limit("src/engine/model.rs"));
}
