//! The statement walker: goes through a module's statements in order, binds constants,
//! follows `if` branches whose condition is constant, and walks the bodies of functions the
//! script calls. Expressions are evaluated in `expr.rs`.

use super::ops::binary;
use super::value::{Binding, Call, Py};
use crate::diag::Span;
use std::collections::HashMap;
use tree_sitter::{Node as TsNode, Tree};

pub(super) struct Walker<'t> {
    pub(super) text: &'t str,
    pub(super) tree: &'t Tree,
    pub(super) env: HashMap<String, Binding>,
    pub(super) calls: Vec<Call>,
    pub(super) functions: HashMap<String, Span>,
    pub(super) attr_assigns: Vec<(String, Py, Span)>,
    pub(super) uses: Vec<(String, Span)>,
    /// Nesting of walked function bodies (`main()`), to stop recursion.
    pub(super) depth: usize,
    pub(super) walked: Vec<String>,
}

pub(super) fn span_of(n: TsNode) -> Span {
    Span::new(n.start_byte(), n.end_byte())
}

impl<'t> Walker<'t> {
    pub(super) fn text_of(&self, n: TsNode) -> &'t str {
        &self.text[n.start_byte()..n.end_byte()]
    }

    /// Walk a module or block: every statement in order.
    pub(super) fn block(&mut self, n: TsNode) {
        let mut c = n.walk();
        let children: Vec<TsNode> = n.named_children(&mut c).collect();
        for s in children {
            self.statement(s);
        }
    }

    pub(super) fn statement(&mut self, s: TsNode) {
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

    pub(super) fn define(&mut self, d: TsNode) {
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

    pub(super) fn if_statement(&mut self, s: TsNode) {
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

    pub(super) fn assignment(&mut self, a: TsNode) {
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

    pub(super) fn augmented(&mut self, a: TsNode) {
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

    pub(super) fn bind(&mut self, target: TsNode, value: Py, span: Span) {
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

    pub(super) fn bind_unknown(&mut self, target: TsNode) {
        let t = self.text_of(target).to_string();
        self.bind(target, Py::Unknown(t), span_of(target));
    }

    pub(super) fn note_use(&mut self, name: &str, span: Span) {
        if !name.is_empty() && !self.uses.iter().any(|(n, _)| n == name) {
            self.uses.push((name.to_string(), span));
        }
    }

    pub(super) fn walk_function(&mut self, def: Span) {
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
