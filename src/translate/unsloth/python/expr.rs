//! Expressions: constants, strings (escapes, implicit concatenation, trivial f-strings),
//! arithmetic and a few builtins evaluated without running anything, and calls recorded as
//! [`Py::Call`] handles.

use super::ops::{binary, builtin, parse_int, unescape};
use super::value::{Arg, Call, Py};
use super::walker::{span_of, Walker};
use tree_sitter::Node as TsNode;

impl<'t> Walker<'t> {
    /// Evaluate an expression; calls are recorded on the way.
    pub(super) fn expr(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        match n.kind() {
            "integer" => parse_int(text).map_or_else(|| Py::Unknown(text.into()), Py::Int),
            "float" => text
                .replace('_', "")
                .parse::<f64>()
                .map_or_else(|_| Py::Unknown(text.into()), Py::Float),
            "true" => Py::Bool(true),
            "false" => Py::Bool(false),
            "none" => Py::None,
            "string" => self.string(n),
            "concatenated_string" => self.concatenated(n),
            "identifier" => match self.env.get(text) {
                Some(b) => b.value.clone(),
                None => Py::Name(text.into()),
            },
            "attribute" => self.attribute(n),
            "parenthesized_expression" => match n.named_child(0) {
                Some(inner) => self.expr(inner),
                None => Py::Unknown(text.into()),
            },
            "list" | "tuple" | "set" => self.sequence(n),
            "dictionary" => self.dictionary(n),
            "unary_operator" => self.unary(n),
            "not_operator" => self.not(n),
            "boolean_operator" => self.boolean(n),
            "binary_operator" => self.binary_op(n),
            "comparison_operator" => self.comparison(n),
            "conditional_expression" => self.conditional(n),
            "subscript" => self.subscript(n),
            "call" => self.call(n),
            "lambda" => Py::Lambda(span_of(n)),
            "keyword_argument" | "comment" => Py::Unknown(text.into()),
            _ => self.other(n),
        }
    }

    /// An implicitly concatenated string literal (`"a" "b"`).
    fn concatenated(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let mut out = String::new();
        let mut c = n.walk();
        let parts: Vec<TsNode> = n.named_children(&mut c).collect();
        for p in parts {
            match self.string(p) {
                Py::Str(s) => out.push_str(&s),
                _ => return Py::Unknown(text.into()),
            }
        }
        Py::Str(out)
    }

    /// An attribute: a dotted name, or an attribute of an object named as written.
    fn attribute(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let obj = n.child_by_field_name("object").map(|o| self.expr(o));
        let attr = n
            .child_by_field_name("attribute")
            .map(|a| self.text_of(a))
            .unwrap_or("");
        match obj {
            Some(Py::Name(base)) => Py::Name(format!("{base}.{attr}")),
            // An attribute of an object (`tokenizer.eos_token` after
            // `model, tokenizer = …`): named as written.
            Some(Py::Call(_) | Py::Item(..)) => Py::Name(text.into()),
            _ => Py::Unknown(text.into()),
        }
    }

    /// A list, tuple or set display, item by item.
    fn sequence(&mut self, n: TsNode) -> Py {
        let mut c = n.walk();
        let parts: Vec<TsNode> = n.named_children(&mut c).collect();
        let items: Vec<Py> = parts
            .into_iter()
            .filter(|p| p.kind() != "comment")
            .map(|p| self.expr(p))
            .collect();
        if n.kind() == "tuple" {
            Py::Tuple(items)
        } else {
            Py::List(items)
        }
    }

    /// A dict display with its key/value pairs; unknown when it unpacks (`**d`).
    fn dictionary(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let mut c = n.walk();
        let parts: Vec<TsNode> = n.named_children(&mut c).collect();
        let mut kv = Vec::new();
        for p in parts {
            if p.kind() != "pair" {
                if p.kind() != "comment" {
                    return Py::Unknown(text.into());
                }
                continue;
            }
            let k = p.child_by_field_name("key").map(|k| self.expr(k));
            let v = p.child_by_field_name("value").map(|v| self.expr(v));
            if let (Some(k), Some(v)) = (k, v) {
                kv.push((k, v));
            }
        }
        Py::Dict(kv)
    }

    /// A signed number (`-1`, `+2.0`).
    fn unary(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let v = n
            .child_by_field_name("argument")
            .map(|a| self.expr(a))
            .unwrap_or(Py::None);
        let op = n.child_by_field_name("operator").map(|o| self.text_of(o));
        match (op, v) {
            (Some("-"), Py::Int(i)) => Py::Int(-i),
            (Some("-"), Py::Float(f)) => Py::Float(-f),
            (Some("+"), v @ (Py::Int(_) | Py::Float(_))) => v,
            _ => Py::Unknown(text.into()),
        }
    }

    /// `not x` of a value whose truth is known.
    fn not(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let v = n.child_by_field_name("argument").map(|a| self.expr(a));
        match v.and_then(|v| v.truthy()) {
            Some(b) => Py::Bool(!b),
            None => Py::Unknown(text.into()),
        }
    }

    /// `and` / `or` of a left value whose truth is known.
    fn boolean(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let l = n.child_by_field_name("left").map(|x| self.expr(x));
        let r = n.child_by_field_name("right").map(|x| self.expr(x));
        let op = n.child_by_field_name("operator").map(|o| self.text_of(o));
        match (l, r, op) {
            (Some(l), Some(r), Some(op)) => match (l.truthy(), op) {
                (Some(true), "and") | (Some(false), "or") => r,
                (Some(_), _) => l,
                (None, _) => Py::Unknown(text.into()),
            },
            _ => Py::Unknown(text.into()),
        }
    }

    /// A binary operation on constants (arithmetic, string concatenation).
    fn binary_op(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let l = n.child_by_field_name("left").map(|x| self.expr(x));
        let r = n.child_by_field_name("right").map(|x| self.expr(x));
        let op = n.child_by_field_name("operator").map(|o| self.text_of(o));
        match (l, r, op) {
            (Some(l), Some(r), Some(op)) => {
                binary(op, &l, &r).unwrap_or_else(|| Py::Unknown(text.into()))
            }
            _ => Py::Unknown(text.into()),
        }
    }

    /// `==` / `!=` between two constants.
    fn comparison(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let mut c = n.walk();
        let parts: Vec<TsNode> = n.named_children(&mut c).collect();
        let ops: Vec<&str> = {
            let mut c2 = n.walk();
            n.children(&mut c2)
                .filter(|ch| !ch.is_named())
                .map(|ch| self.text_of(ch))
                .collect()
        };
        let vals: Vec<Py> = parts.into_iter().map(|p| self.expr(p)).collect();
        if vals.len() == 2 && ops.len() == 1 && vals.iter().all(Py::is_const) {
            match ops[0] {
                "==" => Py::Bool(vals[0] == vals[1]),
                "!=" => Py::Bool(vals[0] != vals[1]),
                _ => Py::Unknown(text.into()),
            }
        } else {
            Py::Unknown(text.into())
        }
    }

    /// `a if cond else b` with a known condition; both sides are walked otherwise.
    fn conditional(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let mut c = n.walk();
        let parts: Vec<TsNode> = n.named_children(&mut c).collect();
        if parts.len() != 3 {
            return Py::Unknown(text.into());
        }
        let cond = self.expr(parts[1]).truthy();
        match cond {
            Some(true) => self.expr(parts[0]),
            Some(false) => self.expr(parts[2]),
            None => {
                self.expr(parts[0]);
                self.expr(parts[2]);
                Py::Unknown(text.into())
            }
        }
    }

    /// An index into a constant list or dict, else an item of a call or name.
    fn subscript(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        let v = n.child_by_field_name("value").map(|x| self.expr(x));
        let i = n.child_by_field_name("subscript").map(|x| self.expr(x));
        match (v, i) {
            (Some(Py::List(items) | Py::Tuple(items)), Some(Py::Int(i))) => {
                let idx = if i < 0 { items.len() as i64 + i } else { i };
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| items.get(i).cloned())
                    .unwrap_or_else(|| Py::Unknown(text.into()))
            }
            (Some(Py::Dict(kv)), Some(k)) if k.is_const() => kv
                .iter()
                .find(|(kk, _)| *kk == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| Py::Unknown(text.into())),
            (Some(v @ (Py::Call(_) | Py::Name(_) | Py::Item(..))), Some(i)) => {
                Py::Item(Box::new(v), Box::new(i))
            }
            _ => Py::Unknown(text.into()),
        }
    }

    /// Comprehensions, await, …: the parts are evaluated for their calls.
    fn other(&mut self, n: TsNode) -> Py {
        let text = self.text_of(n);
        // Comprehensions, await, …: evaluate the parts for their calls.
        let mut c = n.walk();
        let parts: Vec<TsNode> = n.named_children(&mut c).collect();
        for p in parts {
            if p.kind() == "call" {
                self.expr(p);
            }
        }
        Py::Unknown(text.into())
    }

    /// A string literal, with escapes decoded and trivial f-string fields filled in.
    fn string(&mut self, n: TsNode) -> Py {
        let full = self.text_of(n);
        if n.kind() != "string" {
            return self.expr(n);
        }
        let mut c = n.walk();
        let parts: Vec<TsNode> = n.children(&mut c).collect();
        let prefix = parts
            .first()
            .filter(|p| p.kind() == "string_start")
            .map(|p| {
                self.text_of(*p)
                    .trim_end_matches(['"', '\''])
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if prefix.contains('b') {
            return Py::Unknown(full.into());
        }
        let raw = prefix.contains('r');
        let is_f = prefix.contains('f');
        let mut out = String::new();
        for p in parts {
            match p.kind() {
                "string_content" => {
                    let body = self.text_of(p);
                    let body = if is_f {
                        body.replace("{{", "{").replace("}}", "}")
                    } else {
                        body.to_string()
                    };
                    if raw {
                        out.push_str(&body);
                    } else {
                        out.push_str(&unescape(&body));
                    }
                }
                "escape_sequence" => out.push_str(&unescape(self.text_of(p))),
                "interpolation" => {
                    let has_spec = p.child_by_field_name("format_specifier").is_some()
                        || p.child_by_field_name("type_conversion").is_some();
                    let v = p.child_by_field_name("expression").map(|e| self.expr(e));
                    match v {
                        Some(Py::Str(s)) if !has_spec => out.push_str(&s),
                        Some(Py::Int(i)) if !has_spec => out.push_str(&i.to_string()),
                        _ => return Py::Unknown(full.into()),
                    }
                }
                _ => {}
            }
        }
        Py::Str(out)
    }

    fn call(&mut self, n: TsNode) -> Py {
        let Some(func) = n.child_by_field_name("function") else {
            return Py::Unknown(self.text_of(n).into());
        };
        let (name, receiver_text, receiver, root) = match func.kind() {
            "identifier" => {
                let t = self.text_of(func).to_string();
                (t.clone(), String::new(), None, t)
            }
            "attribute" => {
                let obj = func.child_by_field_name("object");
                let attr = func
                    .child_by_field_name("attribute")
                    .map(|a| self.text_of(a).to_string())
                    .unwrap_or_default();
                let recv_text = obj.map(|o| self.text_of(o).to_string()).unwrap_or_default();
                let recv = obj.map(|o| self.expr(o));
                let root = recv_text
                    .split(['.', '(', '['])
                    .next()
                    .unwrap_or("")
                    .to_string();
                (attr, recv_text, recv, root)
            }
            _ => {
                self.expr(func);
                (String::new(), String::new(), None, String::new())
            }
        };
        // Arguments are evaluated (and their calls recorded) before the call itself.
        let mut args = Vec::new();
        if let Some(list) = n.child_by_field_name("arguments") {
            let mut c = list.walk();
            let parts: Vec<TsNode> = list.named_children(&mut c).collect();
            for a in parts {
                match a.kind() {
                    "comment" => {}
                    "keyword_argument" => {
                        let (Some(k), Some(v)) = (
                            a.child_by_field_name("name"),
                            a.child_by_field_name("value"),
                        ) else {
                            continue;
                        };
                        let value = self.expr(v);
                        args.push(Arg {
                            keyword: Some((self.text_of(k).to_string(), span_of(k))),
                            value,
                            span: span_of(v),
                        });
                    }
                    _ => {
                        let value = if matches!(a.kind(), "list_splat" | "dictionary_splat") {
                            Py::Unknown(self.text_of(a).into())
                        } else {
                            self.expr(a)
                        };
                        args.push(Arg {
                            keyword: None,
                            value,
                            span: span_of(a),
                        });
                    }
                }
            }
        }
        // Pure builtins on constants evaluate to their value.
        if receiver.is_none() {
            if let Some(v) = builtin(&name, &args) {
                return v;
            }
        }
        self.note_use(&root, span_of(func));
        if name != root {
            self.note_use(&name, span_of(func));
        }
        // A call of a module-level function without parameters (`main()`) runs its body.
        if receiver.is_none() && args.is_empty() && self.depth < 3 {
            if let Some(def) = self.functions.get(&name).copied() {
                if !self.walked.contains(&name) {
                    self.walked.push(name.clone());
                    self.walk_function(def);
                }
            }
        }
        self.calls.push(Call {
            name,
            receiver_text,
            receiver,
            args,
            span: span_of(n),
            callee_span: span_of(func),
        });
        Py::Call(self.calls.len() - 1)
    }
}
