//! Python front end: parse a script with tree-sitter and evaluate what can be known without
//! running it. Nothing is executed.
//!
//! The walker goes through the module's statements in order, keeps an environment of
//! constants (`max_seq_length = 2048`, `lora_alpha = lora_rank * 2`, the Alpaca prompt
//! string), and records every call with its arguments evaluated at that point. A call's
//! result is a handle ([`Py::Call`]) to its record, so `trainer = SFTTrainer(args =
//! SFTConfig(...))` and `dataset.map(f)` link calls together without knowing any library.
//!
//! Left out on purpose: `if False:` blocks and `elif`/`else` branches of constant conditions
//! (dead code), class bodies, loops beyond one pass, and anything that would need real
//! values (a function's result, an attribute of an object). Such expressions evaluate to
//! [`Py::Unknown`] with their source text, and the caller decides what that means.

use crate::diag::{Diagnostic, Source, Span};
use std::collections::HashMap;
use tree_sitter::{Node as TsNode, Parser, Tree};

mod expr;

use expr::binary;
pub use expr::unescape;

/// A statically evaluated Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Py>),
    Tuple(Vec<Py>),
    /// Keys and values in source order.
    Dict(Vec<(Py, Py)>),
    /// A name or dotted attribute not bound to a constant: `torch.bfloat16`, `model`.
    Name(String),
    /// The result of the call at this index of [`Module::calls`].
    Call(usize),
    /// `value[index]` of something that is not a constant (`dataset["train"]`).
    Item(Box<Py>, Box<Py>),
    /// A function: a `lambda …` expression or a `def` (the span of either).
    Lambda(Span),
    /// No static value; the expression as written.
    Unknown(String),
}

impl Py {
    /// Whether the value is fully known (no names, calls or unknown parts).
    pub fn is_const(&self) -> bool {
        match self {
            Py::None | Py::Bool(_) | Py::Int(_) | Py::Float(_) | Py::Str(_) => true,
            Py::List(v) | Py::Tuple(v) => v.iter().all(Py::is_const),
            Py::Dict(kv) => kv.iter().all(|(k, v)| k.is_const() && v.is_const()),
            _ => false,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Py::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Python truthiness of a constant; `None` when unknown.
    pub fn truthy(&self) -> Option<bool> {
        match self {
            Py::None => Some(false),
            Py::Bool(b) => Some(*b),
            Py::Int(i) => Some(*i != 0),
            Py::Float(f) => Some(*f != 0.0),
            Py::Str(s) => Some(!s.is_empty()),
            Py::List(v) | Py::Tuple(v) => Some(!v.is_empty()),
            Py::Dict(v) => Some(!v.is_empty()),
            _ => None,
        }
    }

    /// The constant as JSON (`None` → null, tuples → arrays). Non-constants give `None`.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value;
        Some(match self {
            Py::None => Value::Null,
            Py::Bool(b) => Value::Bool(*b),
            Py::Int(i) => Value::from(*i),
            Py::Float(f) => Value::from(*f),
            Py::Str(s) => Value::String(s.clone()),
            Py::List(v) | Py::Tuple(v) => {
                Value::Array(v.iter().map(Py::to_json).collect::<Option<_>>()?)
            }
            Py::Dict(kv) => {
                let mut m = serde_json::Map::new();
                for (k, v) in kv {
                    m.insert(k.as_str()?.to_string(), v.to_json()?);
                }
                Value::Object(m)
            }
            _ => return None,
        })
    }
}

/// One argument of a recorded call.
#[derive(Debug, Clone)]
pub struct Arg {
    /// The keyword and its span; `None` for a positional argument.
    pub keyword: Option<(String, Span)>,
    pub value: Py,
    /// Span of the value expression.
    pub span: Span,
}

/// One call the walker went through, with its arguments evaluated.
#[derive(Debug, Clone)]
pub struct Call {
    /// Last part of the callee: `from_pretrained` for `FastLanguageModel.from_pretrained`.
    pub name: String,
    /// The object a method is called on, as written (`FastLanguageModel`, `trainer`);
    /// empty for a plain function.
    pub receiver_text: String,
    /// The object a method is called on, evaluated.
    pub receiver: Option<Py>,
    pub args: Vec<Arg>,
    /// The whole call.
    pub span: Span,
    /// The callee expression.
    pub callee_span: Span,
}

impl Call {
    pub fn kwarg(&self, name: &str) -> Option<&Arg> {
        self.args
            .iter()
            .find(|a| a.keyword.as_ref().is_some_and(|(k, _)| k == name))
    }

    pub fn positional(&self, i: usize) -> Option<&Arg> {
        self.args.iter().filter(|a| a.keyword.is_none()).nth(i)
    }
}

/// A module-level binding: its value and where it was (last) assigned.
#[derive(Debug, Clone)]
pub struct Binding {
    pub value: Py,
    pub span: Span,
}

/// What the walker learned about a script.
pub struct Module {
    /// The text that was parsed (IPython escapes blanked out; same byte offsets as the source).
    pub text: String,
    pub tree: Tree,
    /// Module-level names after the last statement.
    pub env: HashMap<String, Binding>,
    /// Every live call, in evaluation order (arguments before the call that takes them).
    pub calls: Vec<Call>,
    /// Functions defined at module level: name → span of the `def`.
    pub functions: HashMap<String, Span>,
    /// Assignments to attributes (`tokenizer.pad_token = "<pad>"`): target as written, value.
    pub attr_assigns: Vec<(String, Py, Span)>,
    /// Names called or used as the receiver of a call, with their first use.
    pub uses: Vec<(String, Span)>,
}

impl Module {
    pub fn node_text(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or("")
    }

    /// The tree-sitter node of a recorded span (a `def`, a lambda).
    pub fn node_at(&self, span: Span) -> Option<TsNode<'_>> {
        let mut n = self
            .tree
            .root_node()
            .descendant_for_byte_range(span.start, span.end)?;
        while n.start_byte() != span.start || n.end_byte() != span.end {
            n = n.parent()?;
        }
        Some(n)
    }
}

/// Blank out IPython escapes (`!pip install …`, `%%capture`) so the rest parses; byte offsets
/// stay the same.
fn blank_ipython(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('!') || trimmed.starts_with('%') {
            let indent = line.len() - trimmed.len();
            out.push_str(&line[..indent]);
            out.push('#');
            out.push_str(&trimmed[1..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Parse a script. Syntax errors (tree-sitter ERROR or MISSING nodes) are fatal and point at
/// the first one.
pub fn parse(source: &Source) -> Result<Module, Diagnostic> {
    let text = blank_ipython(&source.text);
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .expect("the bundled Python grammar matches tree-sitter");
    let tree = parser.parse(&text, None).ok_or_else(|| {
        Diagnostic::error("syntax", "the Python parser gave up on this file").locate(source)
    })?;
    if tree.root_node().has_error() {
        return Err(syntax_error(&tree, &text).locate(source));
    }
    let mut walker = Walker {
        text: &text,
        tree: &tree,
        env: HashMap::new(),
        calls: Vec::new(),
        functions: HashMap::new(),
        attr_assigns: Vec::new(),
        uses: Vec::new(),
        depth: 0,
        walked: Vec::new(),
    };
    walker.block(tree.root_node());
    let Walker {
        env,
        calls,
        functions,
        attr_assigns,
        uses,
        ..
    } = walker;
    Ok(Module {
        text,
        tree,
        env,
        calls,
        functions,
        attr_assigns,
        uses,
    })
}

fn syntax_error(tree: &Tree, text: &str) -> Diagnostic {
    let mut cursor = tree.walk();
    let mut found: Option<TsNode> = None;
    'outer: loop {
        let n = cursor.node();
        if n.is_error() || n.is_missing() {
            found = Some(n);
            break;
        }
        if n.has_error() && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                break 'outer;
            }
        }
    }
    let Some(n) = found else {
        return Diagnostic::error("syntax", "invalid Python syntax")
            .with_help("run `python3 -m py_compile` on the script to see the error");
    };
    let span = Span::new(n.start_byte(), n.end_byte());
    if n.is_missing() {
        return Diagnostic::error("syntax", format!("invalid Python: missing `{}`", n.kind()))
            .at(Some(span))
            .with_help(format!("add `{}` here", n.kind()));
    }
    let snippet: String = text
        .get(n.start_byte()..n.end_byte())
        .unwrap_or("")
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .take(40)
        .collect();
    // Point at the first line of the error only.
    let first_line_end = text[n.start_byte()..]
        .find('\n')
        .map_or(n.end_byte(), |i| (n.start_byte() + i).min(n.end_byte()));
    Diagnostic::error(
        "syntax",
        format!("invalid Python: cannot parse `{snippet}`"),
    )
    .at(Some(Span::new(n.start_byte(), first_line_end.max(n.start_byte()))))
    .with_help("fix the statement (check brackets, quotes and indentation); tunebridge reads the script without running it")
}

struct Walker<'t> {
    text: &'t str,
    tree: &'t Tree,
    env: HashMap<String, Binding>,
    calls: Vec<Call>,
    functions: HashMap<String, Span>,
    attr_assigns: Vec<(String, Py, Span)>,
    uses: Vec<(String, Span)>,
    /// Nesting of walked function bodies (`main()`), to stop recursion.
    depth: usize,
    walked: Vec<String>,
}

fn span_of(n: TsNode) -> Span {
    Span::new(n.start_byte(), n.end_byte())
}

impl<'t> Walker<'t> {
    fn text_of(&self, n: TsNode) -> &'t str {
        &self.text[n.start_byte()..n.end_byte()]
    }

    /// Walk a module or block: every statement in order.
    fn block(&mut self, n: TsNode) {
        let mut c = n.walk();
        let children: Vec<TsNode> = n.named_children(&mut c).collect();
        for s in children {
            self.statement(s);
        }
    }

    fn statement(&mut self, s: TsNode) {
        match s.kind() {
            "expression_statement" => {
                let mut c = s.walk();
                let parts: Vec<TsNode> = s.named_children(&mut c).collect();
                for e in parts {
                    match e.kind() {
                        "assignment" => self.assignment(e),
                        "augmented_assignment" => self.augmented(e),
                        _ => {
                            self.expr(e);
                        }
                    }
                }
            }
            "if_statement" => self.if_statement(s),
            "for_statement" | "while_statement" => {
                if let Some(l) = s.child_by_field_name("left") {
                    self.bind_unknown(l);
                }
                if let Some(r) = s.child_by_field_name("right") {
                    self.expr(r);
                }
                if let Some(b) = s.child_by_field_name("body") {
                    self.block(b);
                }
            }
            "with_statement" => {
                if let Some(b) = s.child_by_field_name("body") {
                    self.block(b);
                }
            }
            "try_statement" => {
                if let Some(b) = s.child_by_field_name("body") {
                    self.block(b);
                }
                let mut c = s.walk();
                let rest: Vec<TsNode> = s.named_children(&mut c).collect();
                for part in rest {
                    if matches!(part.kind(), "else_clause" | "finally_clause") {
                        if let Some(b) = part.child_by_field_name("body").or(part.named_child(0)) {
                            self.block(b);
                        }
                    }
                }
            }
            "function_definition" => self.define(s),
            "decorated_definition" => {
                if let Some(d) = s.child_by_field_name("definition") {
                    if d.kind() == "function_definition" {
                        self.define(d);
                    }
                }
            }
            "block" => self.block(s),
            _ => {} // imports, class bodies, pass, return, …: nothing to evaluate
        }
    }

    fn define(&mut self, d: TsNode) {
        if let Some(name) = d.child_by_field_name("name") {
            let name = self.text_of(name).to_string();
            // The name holds this definition from here on (a later `def` of the same name
            // does not change what an earlier `dataset.map(name)` used).
            self.env.insert(
                name.clone(),
                Binding {
                    value: Py::Lambda(span_of(d)),
                    span: span_of(d),
                },
            );
            self.functions.insert(name, span_of(d));
        }
    }

    fn if_statement(&mut self, s: TsNode) {
        let cond = s
            .child_by_field_name("condition")
            .map(|c| self.expr(c))
            .and_then(|v| v.truthy());
        match cond {
            Some(true) => {
                if let Some(b) = s.child_by_field_name("consequence") {
                    self.block(b);
                }
            }
            Some(false) => {
                // Dead branch (`if False:`): look at elif/else instead.
                let mut c = s.walk();
                let alts: Vec<TsNode> = s.children_by_field_name("alternative", &mut c).collect();
                for alt in alts {
                    match alt.kind() {
                        "elif_clause" => {
                            let v = alt
                                .child_by_field_name("condition")
                                .map(|c| self.expr(c))
                                .and_then(|v| v.truthy());
                            if v == Some(false) {
                                continue;
                            }
                            if let Some(b) = alt.child_by_field_name("consequence") {
                                self.block(b);
                            }
                            if v == Some(true) {
                                return;
                            }
                        }
                        _ => {
                            if let Some(b) = alt.child_by_field_name("body") {
                                self.block(b);
                            }
                            return;
                        }
                    }
                }
            }
            None => {
                // Unknown condition (`if __name__ == "__main__":`): every branch is live.
                if let Some(b) = s.child_by_field_name("consequence") {
                    self.block(b);
                }
                let mut c = s.walk();
                let alts: Vec<TsNode> = s.children_by_field_name("alternative", &mut c).collect();
                for alt in alts {
                    if let Some(b) = alt
                        .child_by_field_name("consequence")
                        .or(alt.child_by_field_name("body"))
                    {
                        self.block(b);
                    }
                }
            }
        }
    }

    fn assignment(&mut self, a: TsNode) {
        let Some(right) = a.child_by_field_name("right") else {
            return; // annotation only: `x: int`
        };
        let value = if right.kind() == "assignment" {
            // a = b = value
            self.assignment(right);
            right
                .child_by_field_name("left")
                .map(|l| self.expr(l))
                .unwrap_or(Py::Unknown(String::new()))
        } else {
            self.expr(right)
        };
        if let Some(left) = a.child_by_field_name("left") {
            self.bind(left, value, span_of(a));
        }
    }

    fn augmented(&mut self, a: TsNode) {
        let (Some(left), Some(right), Some(op)) = (
            a.child_by_field_name("left"),
            a.child_by_field_name("right"),
            a.child_by_field_name("operator"),
        ) else {
            return;
        };
        let cur = self.expr(left);
        let rhs = self.expr(right);
        let op = self.text_of(op).trim_end_matches('=').to_string();
        let v = binary(&op, &cur, &rhs).unwrap_or_else(|| Py::Unknown(self.text_of(a).into()));
        self.bind(left, v, span_of(a));
    }

    fn bind(&mut self, target: TsNode, value: Py, span: Span) {
        match target.kind() {
            "identifier" => {
                let name = self.text_of(target).to_string();
                self.functions.remove(&name);
                self.env.insert(name, Binding { value, span });
            }
            "pattern_list" | "tuple_pattern" | "list_pattern" | "expression_list" | "tuple"
            | "list" => {
                let mut c = target.walk();
                let parts: Vec<TsNode> = target.named_children(&mut c).collect();
                for (i, p) in parts.iter().enumerate() {
                    let v = match &value {
                        Py::Tuple(items) | Py::List(items) if items.len() == parts.len() => {
                            items[i].clone()
                        }
                        other => Py::Item(Box::new(other.clone()), Box::new(Py::Int(i as i64))),
                    };
                    self.bind(*p, v, span);
                }
            }
            "attribute" => {
                let t = self.text_of(target).to_string();
                self.attr_assigns.push((t, value, span));
            }
            _ => {} // subscript targets and the like change no module constant we track
        }
    }

    fn bind_unknown(&mut self, target: TsNode) {
        let t = self.text_of(target).to_string();
        self.bind(target, Py::Unknown(t), span_of(target));
    }

    fn note_use(&mut self, name: &str, span: Span) {
        if !name.is_empty() && !self.uses.iter().any(|(n, _)| n == name) {
            self.uses.push((name.to_string(), span));
        }
    }

    fn walk_function(&mut self, def: Span) {
        // Find the def node again from its span.
        let Some(mut node) = self
            .tree
            .root_node()
            .descendant_for_byte_range(def.start, def.end)
        else {
            return;
        };
        while node.kind() != "function_definition" {
            match node.parent() {
                Some(p) => node = p,
                None => return,
            }
        }
        let params = node
            .child_by_field_name("parameters")
            .map(|p| p.named_child_count())
            .unwrap_or(0);
        if params > 0 {
            return;
        }
        if let Some(body) = node.child_by_field_name("body") {
            self.depth += 1;
            self.block(body);
            self.depth -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(text: &str) -> Module {
        parse(&Source::new("t.py", text)).unwrap_or_else(|d| panic!("{}", d.render(None)))
    }

    fn val(m: &Module, name: &str) -> Py {
        m.env[name].value.clone()
    }

    #[test]
    fn evaluates_notebook_constants() {
        let m = module(
            "max_seq_length = 2048 # any\ndtype = None\nload_in_4bit = True\nlora_rank = 32\nalpha = lora_rank * 2\nlr = 2e-4\nneg = -1\nname = \"unsloth/\" + \"Qwen3-4B\"\nf = f\"{name}-x\"\nraw = r'a\\n'\nesc = 'a\\nb'\nmodel_list = [\"a\", \"b\",]\nsecond = model_list[1]\nd = {'a': 1}\nx = d['a']\nflag = not load_in_4bit\n",
        );
        assert_eq!(val(&m, "max_seq_length"), Py::Int(2048));
        assert_eq!(val(&m, "dtype"), Py::None);
        assert_eq!(val(&m, "alpha"), Py::Int(64));
        assert_eq!(val(&m, "lr"), Py::Float(2e-4));
        assert_eq!(val(&m, "neg"), Py::Int(-1));
        assert_eq!(val(&m, "name"), Py::Str("unsloth/Qwen3-4B".into()));
        assert_eq!(val(&m, "f"), Py::Str("unsloth/Qwen3-4B-x".into()));
        assert_eq!(val(&m, "raw"), Py::Str("a\\n".into()));
        assert_eq!(val(&m, "esc"), Py::Str("a\nb".into()));
        assert_eq!(val(&m, "second"), Py::Str("b".into()));
        assert_eq!(val(&m, "x"), Py::Int(1));
        assert_eq!(val(&m, "flag"), Py::Bool(false));
    }

    #[test]
    fn triple_quoted_prompt_keeps_its_lines() {
        let m = module("p = \"\"\"Below.\n\n### Instruction:\n{}\n\n### Response:\n{}\"\"\"\n");
        assert_eq!(
            val(&m, "p"),
            Py::Str("Below.\n\n### Instruction:\n{}\n\n### Response:\n{}".into())
        );
    }

    #[test]
    fn skips_dead_code_and_follows_calls() {
        let m = module(
            "if False:\n    model.save_pretrained_merged('m', tokenizer)\nif False: x = 1\nelse: x = 2\nmodel, tokenizer = FastLanguageModel.from_pretrained(model_name = 'm', max_seq_length = 1024)\ntrainer = SFTTrainer(model = model, args = SFTConfig(seed = 1))\ntrainer.train()\n",
        );
        assert_eq!(val(&m, "x"), Py::Int(2));
        let names: Vec<&str> = m.calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["from_pretrained", "SFTConfig", "SFTTrainer", "train"]
        );
        let trainer = &m.calls[2];
        assert_eq!(trainer.kwarg("args").map(|a| &a.value), Some(&Py::Call(1)));
        assert_eq!(m.calls[3].receiver, Some(Py::Call(2)));
        assert_eq!(m.calls[0].receiver_text, "FastLanguageModel");
        assert_eq!(
            val(&m, "tokenizer"),
            Py::Item(Box::new(Py::Call(0)), Box::new(Py::Int(1)))
        );
    }

    #[test]
    fn ipython_escapes_are_skipped() {
        let m = module(
            "!pip install unsloth\n%%capture\nx = 1\nget_ipython().system('pip install x')\n",
        );
        assert_eq!(val(&m, "x"), Py::Int(1));
    }

    #[test]
    fn main_function_bodies_are_walked() {
        let m = module("def main():\n    trainer = SFTTrainer(args = SFTConfig())\n    trainer.train()\n\nif __name__ == '__main__':\n    main()\n");
        assert!(m.calls.iter().any(|c| c.name == "SFTTrainer"));
    }

    #[test]
    fn syntax_errors_point_at_the_culprit() {
        let src = Source::new("bad.py", "x = 1\ny = SFTConfig(lr = 2e-4,\nz = 3\n");
        let err = parse(&src).err().expect("a syntax error");
        assert_eq!(err.id, "syntax");
        assert!(err.line.is_some(), "{err:?}");
        let src = Source::new("bad.py", "x = = 2\n");
        let err = parse(&src).err().expect("a syntax error");
        assert_eq!(
            (err.line, err.column),
            (Some(1), Some(5)),
            "{}",
            err.render(Some(&src))
        );
        assert!(err.message.contains('='), "{}", err.message);
    }
}
