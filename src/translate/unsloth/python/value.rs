//! The values the Python walker produces: a statically evaluated value ([`Py`]), a recorded
//! call and its arguments, a binding, and what was learned about a whole script ([`Module`]).

use crate::diag::Span;
use std::collections::HashMap;
use tree_sitter::{Node as TsNode, Tree};

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
