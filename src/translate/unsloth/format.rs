//! What a dataset formatting function does to a row, read from its source.
//!
//! Notebooks turn rows into training text with a function passed to `dataset.map(…)`: an
//! Alpaca prompt filled with `prompt.format(instruction, input, output) + EOS_TOKEN`, a
//! conversation rendered with `tokenizer.apply_chat_template(convo, tokenize=False)`, or raw
//! text with EOS appended. This module summarises such a function (a `def` or a `lambda`)
//! without running it: which columns feed which template slot, whether EOS is appended,
//! whether a chat template renders it, and which column it returns.

use super::python::{Module, Py};
use crate::diag::Span;
use indexmap::IndexMap;
use tree_sitter::Node as TsNode;

/// One `template.format(a, b, …)` in the function.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateUse {
    /// The template with Python's `{}` slots.
    pub template: String,
    /// Per slot: the variable passed (its name) and the column it comes from.
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub var: String,
    pub column: Option<String>,
}

/// Summary of a formatting function.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Formatting {
    pub templates: Vec<TemplateUse>,
    /// `apply_chat_template(x, …)`: the column `x` comes from.
    pub chat_messages: Option<Option<String>>,
    /// `+ EOS_TOKEN` / `+ tokenizer.eos_token` somewhere in the text.
    pub eos: bool,
    /// `.removeprefix('<bos>')`: the rendered chat text loses its BOS (the tokenizer adds it).
    pub strips_bos: bool,
    /// Key of the returned dict (`{"text": texts}`).
    pub output_column: Option<String>,
    /// Columns read from the row (`examples["instruction"]`), in order.
    pub columns_read: Vec<String>,
    /// Local variables holding a row column (`input` from `zip(inputs, …)`), in order.
    pub vars: Vec<(String, String)>,
    pub span: Span,
}

/// Summarise the function defined at `def` (a `def` or a `lambda`).
pub fn analyze(module: &Module, def: Span) -> Option<Formatting> {
    let node = module.node_at(def)?;
    let params = params_of(module, node);
    let body = node.child_by_field_name("body")?;
    let mut a = Analyzer {
        module,
        param: params.first().cloned().unwrap_or_default(),
        columns: IndexMap::new(),
        out: Formatting {
            span: def,
            ..Formatting::default()
        },
    };
    // Bindings first (twice, so `for a, b in zip(x, y)` sees `x = examples[…]` written
    // after it textually only in odd code), then the uses.
    a.bindings(body);
    a.bindings(body);
    a.uses(body);
    if node.kind() == "lambda" && body.kind() == "dictionary" {
        a.output_key(body);
    }
    a.out.vars = a
        .columns
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(a.out)
}

fn params_of(module: &Module, node: TsNode) -> Vec<String> {
    let Some(p) = node.child_by_field_name("parameters") else {
        return Vec::new();
    };
    let mut c = p.walk();
    p.named_children(&mut c)
        .filter_map(|x| match x.kind() {
            "identifier" => Some(module.node_text(span(x)).to_string()),
            "default_parameter" | "typed_parameter" | "typed_default_parameter" => x
                .child_by_field_name("name")
                .or(x.named_child(0))
                .map(|n| module.node_text(span(n)).to_string()),
            _ => None,
        })
        .collect()
}

fn span(n: TsNode) -> Span {
    Span::new(n.start_byte(), n.end_byte())
}

struct Analyzer<'m> {
    module: &'m Module,
    /// The row parameter (`examples`).
    param: String,
    /// Local variable → the column it holds (`instructions = examples["instruction"]`,
    /// `instruction` from `zip(instructions, …)`).
    columns: IndexMap<String, String>,
    out: Formatting,
}

impl Analyzer<'_> {
    fn text(&self, n: TsNode) -> &str {
        self.module.node_text(span(n))
    }

    fn children<'n>(n: TsNode<'n>) -> Vec<TsNode<'n>> {
        let mut c = n.walk();
        n.named_children(&mut c).collect()
    }

    /// The column a row expression reads: `examples["col"]`, or a variable bound to one.
    fn column_of(&self, n: TsNode) -> Option<String> {
        match n.kind() {
            "subscript" => {
                let v = n.child_by_field_name("value")?;
                let k = n.child_by_field_name("subscript")?;
                if self.text(v) == self.param && k.kind() == "string" {
                    Some(string_body(self.text(k)))
                } else {
                    None
                }
            }
            "identifier" => self.columns.get(self.text(n)).cloned(),
            "parenthesized_expression" => n.named_child(0).and_then(|i| self.column_of(i)),
            _ => None,
        }
    }

    fn bind_targets(&mut self, left: TsNode, right: TsNode) {
        let targets: Vec<TsNode> = match left.kind() {
            "identifier" => vec![left],
            _ => Self::children(left),
        };
        let sources: Vec<TsNode> = if right.kind() == "call"
            && right
                .child_by_field_name("function")
                .is_some_and(|f| self.text(f) == "zip")
        {
            right
                .child_by_field_name("arguments")
                .map(Self::children)
                .unwrap_or_default()
        } else {
            vec![right]
        };
        if targets.len() == sources.len() {
            for (t, s) in targets.iter().zip(&sources) {
                if t.kind() == "identifier" {
                    if let Some(col) = self.column_of(*s) {
                        let name = self.text(*t).to_string();
                        self.columns.insert(name, col);
                    }
                }
            }
        }
    }

    fn bindings(&mut self, n: TsNode) {
        match n.kind() {
            "assignment" => {
                if let (Some(l), Some(r)) = (
                    n.child_by_field_name("left"),
                    n.child_by_field_name("right"),
                ) {
                    self.bind_targets(l, r);
                }
            }
            "for_statement" | "for_in_clause" => {
                if let (Some(l), Some(r)) = (
                    n.child_by_field_name("left"),
                    n.child_by_field_name("right"),
                ) {
                    self.bind_targets(l, r);
                }
            }
            _ => {}
        }
        for c in Self::children(n) {
            self.bindings(c);
        }
    }

    /// Whether an expression is the tokenizer's EOS token (directly or via a module name).
    fn is_eos(&self, n: TsNode) -> bool {
        let t = self.text(n);
        if t.ends_with(".eos_token") {
            return true;
        }
        n.kind() == "identifier"
            && matches!(self.module.env.get(t).map(|b| &b.value), Some(Py::Name(v)) if v.ends_with(".eos_token"))
    }

    fn template_of(&self, n: TsNode) -> Option<String> {
        match n.kind() {
            "identifier" => match self.module.env.get(self.text(n)).map(|b| &b.value) {
                Some(Py::Str(s)) => Some(s.clone()),
                _ => None,
            },
            "string" | "concatenated_string" => {
                // Literal template inside the function: evaluate it like a module constant.
                let src = crate::diag::Source::new("", format!("x = {}\n", self.text(n)));
                super::python::parse(&src).ok().and_then(|m| {
                    m.env
                        .get("x")
                        .and_then(|b| b.value.as_str().map(String::from))
                })
            }
            _ => None,
        }
    }

    fn uses(&mut self, n: TsNode) {
        match n.kind() {
            "subscript" => {
                if let Some(col) = self.column_of(n) {
                    if !self.out.columns_read.contains(&col) {
                        self.out.columns_read.push(col);
                    }
                }
            }
            "call" => self.call(n),
            "binary_operator" => {
                let op = n.child_by_field_name("operator").map(|o| self.text(o));
                if op == Some("+") {
                    if let Some(r) = n.child_by_field_name("right") {
                        if self.is_eos(r) {
                            self.out.eos = true;
                        }
                    }
                }
            }
            "interpolation" => {
                if let Some(e) = n.child_by_field_name("expression") {
                    if self.is_eos(e) {
                        self.out.eos = true;
                    }
                }
            }
            "return_statement" => {
                if let Some(d) = n.named_child(0).filter(|d| d.kind() == "dictionary") {
                    self.output_key(d);
                }
            }
            _ => {}
        }
        for c in Self::children(n) {
            self.uses(c);
        }
    }

    fn output_key(&mut self, dict: TsNode) {
        if self.out.output_column.is_some() {
            return;
        }
        let key = Self::children(dict)
            .into_iter()
            .find(|p| p.kind() == "pair")
            .and_then(|p| p.child_by_field_name("key"))
            .filter(|k| k.kind() == "string")
            .map(|k| string_body(self.text(k)));
        self.out.output_column = key;
    }

    fn call(&mut self, n: TsNode) {
        let Some(f) = n.child_by_field_name("function") else {
            return;
        };
        if f.kind() != "attribute" {
            return;
        }
        let method = f
            .child_by_field_name("attribute")
            .map(|a| self.text(a))
            .unwrap_or("");
        let args: Vec<TsNode> = n
            .child_by_field_name("arguments")
            .map(Self::children)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.kind() != "comment")
            .collect();
        match method {
            "format" => {
                let Some(template) = f
                    .child_by_field_name("object")
                    .and_then(|o| self.template_of(o))
                else {
                    return;
                };
                let slots = args
                    .iter()
                    .filter(|a| a.kind() != "keyword_argument")
                    .map(|a| Slot {
                        var: if a.kind() == "identifier" {
                            self.text(*a).to_string()
                        } else {
                            String::new()
                        },
                        column: self.column_of(*a),
                    })
                    .collect();
                self.out.templates.push(TemplateUse { template, slots });
            }
            "apply_chat_template" => {
                let col = args.first().and_then(|a| self.column_of(*a));
                self.out.chat_messages = Some(col);
            }
            "removeprefix" | "lstrip"
                if args.first().is_some_and(|a| {
                    let t = self.text(*a);
                    t.contains("<bos>") || t.ends_with("bos_token")
                }) =>
            {
                self.out.strips_bos = true;
            }
            _ => {}
        }
    }
}

/// The text of a simple string literal node (`"text"` → `text`).
fn string_body(lit: &str) -> String {
    let t = lit.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let q = if t.starts_with("\"\"\"") || t.starts_with("'''") {
        3
    } else {
        1
    };
    if t.len() >= 2 * q {
        super::python::unescape(&t[q..t.len() - q])
    } else {
        String::new()
    }
}

/// Split a `str.format` template into its literal parts around positional `{}` slots
/// (`{{`/`}}` unescaped). `None` when it has named or numbered fields.
pub fn split_slots(template: &str) -> Option<Vec<String>> {
    let mut parts = vec![String::new()];
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                parts.last_mut()?.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                parts.last_mut()?.push('}');
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                parts.push(String::new());
            }
            '{' | '}' => return None,
            c => parts.last_mut()?.push(c),
        }
    }
    Some(parts)
}

/// Escape literal braces for `str.format`.
pub fn escape_braces(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}

#[cfg(test)]
mod tests {
    use crate::diag::Source;
    use crate::translate::unsloth::format::*;

    fn summary(text: &str, func: &str) -> Formatting {
        let m = crate::translate::unsloth::python::parse(&Source::new("t.py", text)).unwrap();
        analyze(&m, m.functions[func]).unwrap()
    }

    #[test]
    fn alpaca_notebook_function() {
        let f = summary(
            "alpaca_prompt = \"\"\"P\n### Instruction:\n{}\n\n### Input:\n{}\n\n### Response:\n{}\"\"\"\nEOS_TOKEN = tokenizer.eos_token\ndef formatting_prompts_func(examples):\n    instructions = examples[\"instruction\"]\n    inputs       = examples[\"input\"]\n    outputs      = examples[\"output\"]\n    texts = []\n    for instruction, input, output in zip(instructions, inputs, outputs):\n        text = alpaca_prompt.format(instruction, input, output) + EOS_TOKEN\n        texts.append(text)\n    return { \"text\" : texts, }\n",
            "formatting_prompts_func",
        );
        assert!(f.eos);
        assert_eq!(f.output_column.as_deref(), Some("text"));
        assert_eq!(f.templates.len(), 1);
        let cols: Vec<_> = f.templates[0]
            .slots
            .iter()
            .map(|s| s.column.clone().unwrap_or_default())
            .collect();
        assert_eq!(cols, ["instruction", "input", "output"]);
        assert_eq!(f.templates[0].slots[1].var, "input");
    }

    #[test]
    fn chat_function_with_comprehension() {
        let f = summary(
            "def formatting_prompts_func(examples):\n    convos = examples[\"conversations\"]\n    texts = [tokenizer.apply_chat_template(convo, tokenize = False, add_generation_prompt = False).removeprefix('<bos>') for convo in convos]\n    return { \"text\" : texts, }\n",
            "formatting_prompts_func",
        );
        assert_eq!(f.chat_messages, Some(Some("conversations".into())));
        assert!(f.strips_bos);
        assert!(!f.eos);
    }

    #[test]
    fn completion_with_eos() {
        let f = summary(
            "EOS_TOKEN = tokenizer.eos_token\ndef formatting_prompts_func(examples):\n    return { \"text\" : [example + EOS_TOKEN for example in examples[\"text\"]] }\n",
            "formatting_prompts_func",
        );
        assert!(f.eos);
        assert!(f.templates.is_empty());
        assert_eq!(f.columns_read, ["text"]);
    }

    #[test]
    fn slots_split_and_escape() {
        assert_eq!(split_slots("a{}b{{x}}{}").unwrap(), ["a", "b{x}", ""]);
        assert_eq!(split_slots("{name}"), None);
        assert_eq!(escape_braces("{x}"), "{{x}}");
    }
}
