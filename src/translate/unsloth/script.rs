//! From a walked module to what the reader needs: the shared `call → keyword → value` tree
//! (so field tables, unknown-key warnings and provenance work as for YAML), the calls that
//! were chosen for each tree key, and the dataset chain behind `train_dataset`.
//!
//! Which call is read: the trainer that `trainer.train()` runs (through
//! `train_on_responses_only`), its `args=` config, and the first live call of every other
//! kind; later calls of the same kind are noted, not read.

use super::python::{Call, Module, Py};
use super::script_data::{script_data, CallSpec};
use crate::diag::{Diagnostic, Span};
use crate::translate::node::{Entry, Node};
use crate::translate::table::Table;
use indexmap::IndexMap;
use serde_json::Value;

pub struct Script<'m> {
    pub module: &'m Module,
    pub tree: Node,
    /// Tree key → index of the call read for it in `module.calls`.
    pub chosen: IndexMap<String, usize>,
    /// Notes gathered while building (dynamic values, repeated calls); not yet located.
    pub notes: Vec<Diagnostic>,
}

impl<'m> Script<'m> {
    pub fn call(&self, key: &str) -> Option<&'m Call> {
        self.chosen.get(key).map(|&i| &self.module.calls[i])
    }

    /// An argument of a chosen call, by keyword or by its positional name.
    pub fn arg(&self, key: &str, name: &str) -> Option<&'m super::python::Arg> {
        let call = self.call(key)?;
        if let Some(a) = call.kwarg(name) {
            return Some(a);
        }
        let spec = script_data().call(key)?;
        let i = spec.positional.iter().position(|p| p == name)?;
        call.positional(i)
    }

    /// Text of a value as written (for messages).
    pub fn text(&self, span: Span) -> &'m str {
        self.module.node_text(span)
    }

    /// The call behind a value, if it is one.
    pub fn call_of(&self, v: &Py) -> Option<&'m Call> {
        match v {
            Py::Call(i) => self.module.calls.get(*i),
            _ => None,
        }
    }
}

fn matches(spec: &CallSpec, c: &Call) -> bool {
    spec.names.contains(&c.name)
        && (spec.receivers.is_empty() || spec.receivers.contains(&c.receiver_text))
}

/// The trainer call a value refers to, through `train_on_responses_only(trainer, …)`.
fn trainer_of(module: &Module, v: &Py, depth: usize) -> Option<usize> {
    let Py::Call(k) = v else { return None };
    let c = module.calls.get(*k)?;
    let spec = script_data().call("SFTTrainer")?;
    if spec.names.contains(&c.name) {
        return Some(*k);
    }
    if depth < 4 && matches!(c.name.as_str(), "train_on_responses_only" | "unsloth_train") {
        let inner = c.kwarg("trainer").or(c.positional(0))?;
        return trainer_of(module, &inner.value, depth + 1);
    }
    None
}

/// The script as the reader sees it: the call chosen for each tree key, and the tree of their
/// arguments.
pub fn build<'m>(module: &'m Module, table: &Table) -> Script<'m> {
    let data = script_data();
    let calls = &module.calls;
    let mut notes = Vec::new();
    let chosen = choose_calls(module, &mut notes);

    // The tree.
    let mut entries: IndexMap<String, Entry> = IndexMap::new();
    for (key, &i) in &chosen {
        let Some(spec) = data.call(key) else { continue };
        let entry = call_entry(module, table, key, spec, &calls[i], &mut notes);
        entries.insert(key.clone(), entry);
    }
    entries.insert("uses".into(), uses_entry(module));
    let tree = Node::Map {
        entries,
        span: Span::new(0, module.text.len()),
    };
    Script {
        module,
        tree,
        chosen,
        notes,
    }
}

/// Which call is read for each tree key: the trainer and its config, `train_on_responses_only`,
/// and the first live call of every other kind (repeated calls are noted).
fn choose_calls(module: &Module, notes: &mut Vec<Diagnostic>) -> IndexMap<String, usize> {
    let data = script_data();
    let calls = &module.calls;
    let mut chosen: IndexMap<String, usize> = IndexMap::new();
    let trainer = choose_trainer(module, &mut chosen);
    // train_on_responses_only applied to the chosen trainer (else the first one).
    let tor = calls.iter().position(|c| {
        c.name == "train_on_responses_only"
            && c.kwarg("trainer")
                .or(c.positional(0))
                .and_then(|a| trainer_of(module, &a.value, 0))
                == trainer
    });
    let tor = tor.or_else(|| {
        calls
            .iter()
            .position(|c| c.name == "train_on_responses_only")
    });
    if let Some(i) = tor {
        chosen.insert("train_on_responses_only".into(), i);
    }
    // Every other kind: the first live call.
    for spec in &data.call {
        if chosen.contains_key(&spec.key)
            || ["train", "SFTTrainer", "SFTConfig"].contains(&spec.key.as_str())
        {
            continue;
        }
        let mut found = calls.iter().enumerate().filter(|(_, c)| matches(spec, c));
        if let Some((i, _)) = found.next() {
            chosen.insert(spec.key.clone(), i);
            if spec.key == "from_pretrained" || spec.key == "get_peft_model" {
                for (_, again) in found {
                    notes.push(
                        Diagnostic::info(
                            "repeated-call",
                            format!(
                                "a second `{}` call is not read; the first one defines the run",
                                again.name
                            ),
                        )
                        .at(Some(again.callee_span)),
                    );
                }
            }
        }
    }
    chosen
}

/// The trainer that trains, its `args=` config and its `train()` call; returns the trainer.
fn choose_trainer(module: &Module, chosen: &mut IndexMap<String, usize>) -> Option<usize> {
    let data = script_data();
    let calls = &module.calls;
    // The trainer that trains: `trainer.train()`, `unsloth_train(trainer)`, else the last one.
    let train_call = calls.iter().position(|c| {
        (c.name == "train"
            && c.receiver
                .as_ref()
                .and_then(|r| trainer_of(module, r, 0))
                .is_some())
            || (c.name == "unsloth_train"
                && c.positional(0)
                    .and_then(|a| trainer_of(module, &a.value, 0))
                    .is_some())
    });
    let trainer = train_call
        .and_then(|i| {
            let c = &calls[i];
            match &c.receiver {
                Some(r) if c.name == "train" => trainer_of(module, r, 0),
                _ => c
                    .positional(0)
                    .and_then(|a| trainer_of(module, &a.value, 0)),
            }
        })
        .or_else(|| {
            let spec = data.call("SFTTrainer")?;
            calls.iter().rposition(|c| matches(spec, c))
        });
    if let Some(t) = trainer {
        chosen.insert("SFTTrainer".into(), t);
        let args = calls[t].kwarg("args").map(|a| a.value.clone());
        if let Some(Py::Call(k)) = args {
            if data
                .call("SFTConfig")
                .is_some_and(|s| matches(s, &calls[k]))
            {
                chosen.insert("SFTConfig".into(), k);
            }
        }
    }
    if let Some(i) = train_call.filter(|&i| calls[i].name == "train") {
        chosen.insert("train".into(), i);
    }
    if !chosen.contains_key("SFTConfig") && trainer.is_none() {
        if let Some(spec) = data.call("SFTConfig") {
            if let Some(k) = calls.iter().rposition(|c| matches(spec, c)) {
                chosen.insert("SFTConfig".into(), k);
            }
        }
    }
    trainer
}

/// One chosen call as a tree entry: its arguments by keyword (positionals named by the call's
/// spec); a value that needs the script run is noted and left out.
fn call_entry(
    module: &Module,
    table: &Table,
    key: &str,
    spec: &CallSpec,
    call: &Call,
    notes: &mut Vec<Diagnostic>,
) -> Entry {
    let mut args: IndexMap<String, Entry> = IndexMap::new();
    let mut positional = 0;
    for a in &call.args {
        let (name, key_span) = match &a.keyword {
            Some((k, s)) => (k.clone(), *s),
            None => {
                let name = spec
                    .positional
                    .get(positional)
                    .cloned()
                    .unwrap_or_else(|| format!("arg{positional}"));
                positional += 1;
                (name, a.span)
            }
        };
        let dotted = format!("{key}.{name}");
        let node = if spec.structural.contains(&name) {
            Some(text_node(module, a.span))
        } else if let Some(v) = a.value.to_json() {
            Some(json_node(&v, a.span))
        } else if table.field.iter().any(|f| f.key == dotted) {
            notes.push(
                Diagnostic::warning(
                    "dynamic-value",
                    format!(
                        "`{name} = {}` cannot be evaluated without running the script; Unsloth's default applies",
                        module.node_text(a.span)
                    ),
                )
                .at(Some(a.span))
                .with_help("write the value as a literal or a module-level constant"),
            );
            None
        } else {
            Some(Node::Scalar {
                value: Value::String(describe(module, &a.value, a.span)),
                span: a.span,
            })
        };
        if let Some(node) = node {
            args.insert(name, Entry { key_span, node });
        }
    }
    Entry {
        key_span: call.callee_span,
        node: Node::Map {
            entries: args,
            span: call.span,
        },
    }
}

/// The `uses` entry: the names the script uses (imports and module-level references).
fn uses_entry(module: &Module) -> Entry {
    let mut uses = IndexMap::new();
    for (name, span) in &module.uses {
        uses.insert(
            name.clone(),
            Entry {
                key_span: *span,
                node: Node::Scalar {
                    value: Value::Bool(true),
                    span: *span,
                },
            },
        );
    }
    Entry {
        key_span: Span::default(),
        node: Node::Map {
            entries: uses,
            span: Span::default(),
        },
    }
}

fn text_node(module: &Module, span: Span) -> Node {
    Node::Scalar {
        value: Value::String(module.node_text(span).to_string()),
        span,
    }
}

fn json_node(v: &Value, span: Span) -> Node {
    match v {
        Value::Array(items) => Node::Seq {
            items: items.iter().map(|i| json_node(i, span)).collect(),
            span,
        },
        Value::Object(map) => Node::Map {
            entries: map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Entry {
                            key_span: span,
                            node: json_node(v, span),
                        },
                    )
                })
                .collect(),
            span,
        },
        other => Node::Scalar {
            value: other.clone(),
            span,
        },
    }
}

/// A non-constant value as text: a dotted name as itself, anything else as written.
fn describe(module: &Module, v: &Py, span: Span) -> String {
    match v {
        Py::Name(n) => n.clone(),
        _ => module.node_text(span).to_string(),
    }
}

// ---------------------------------------------------------------- datasets

/// One dataset the trainer reads, and what is done to it before training.
#[derive(Debug, Clone, Default)]
pub struct DataSource {
    pub path: String,
    pub loader: String,
    pub data_files: Vec<String>,
    pub name: String,
    pub split: String,
    pub span: Span,
    /// Formatting functions mapped over it, in order: the `def` or `lambda` span and the
    /// call's span.
    pub maps: Vec<(Span, Span)>,
    /// `standardize_sharegpt` or `standardize_data_formats`, when applied.
    pub standardized: Option<String>,
    /// `rename_column(old, new)` pairs, in order.
    pub renames: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub sources: Vec<DataSource>,
    /// `train_test_split(test_size=…)` before taking `["train"]`.
    pub val_size: Option<(f64, Span)>,
    pending_split: Option<(f64, Span)>,
    /// `train_test_split(train_size=…)` before taking `["train"]`: a random subset.
    pending_subsample: Option<(f64, Span)>,
    /// Steps that change the data in ways the IR cannot say.
    pub warnings: Vec<Diagnostic>,
}

const LOADERS: [&str; 6] = ["json", "csv", "parquet", "text", "arrow", "pandas"];

/// The dataset chain behind a value (`train_dataset = dataset`).
pub fn plan_of(s: &Script, v: &Py, at: Span, depth: usize) -> Result<Plan, Diagnostic> {
    if depth > 32 {
        return Err(cannot(s.text(at), at));
    }
    match v {
        Py::Call(k) => plan_of_call(s, &s.module.calls[*k], depth),
        Py::Item(base, idx) => plan_of_item(s, base, idx, at, depth),
        _ => Err(cannot(s.text(at), at)),
    }
}

/// The error for data tunebridge cannot follow without running the script.
fn cannot(what: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        "unreadable-dataset",
        format!("cannot tell which data `{what}` holds without running the script"),
    )
    .at(Some(span))
    .with_help("load the training data with `load_dataset(…)` (optionally `.map(formatting_func)`, `concatenate_datasets`) so tunebridge can follow it")
}

/// The plan of a call: a loader, a dataset method over its receiver's plan, or a function
/// combining datasets.
fn plan_of_call(s: &Script, c: &Call, depth: usize) -> Result<Plan, Diagnostic> {
    let receiver_plan = |s: &Script| match &c.receiver {
        Some(r) => plan_of(s, r, c.callee_span, depth + 1),
        None => Err(cannot(s.text(c.span), c.span)),
    };
    let first_arg = || c.positional(0).map(|a| (a.value.clone(), a.span));
    match c.name.as_str() {
        "load_dataset" => Ok(Plan {
            sources: vec![load_dataset(s, c)?],
            ..Plan::default()
        }),
        "map" if c.receiver.is_some() => {
            let p = receiver_plan(s)?;
            Ok(mapped(s, c, p))
        }
        "standardize_sharegpt" | "standardize_data_formats" => {
            let (v, span) = first_arg().ok_or_else(|| cannot(s.text(c.span), c.span))?;
            let mut p = plan_of(s, &v, span, depth + 1)?;
            for src in &mut p.sources {
                src.standardized = Some(c.name.clone());
            }
            Ok(p)
        }
        "concatenate_datasets" | "interleave_datasets" => {
            let (v, span) = first_arg().ok_or_else(|| cannot(s.text(c.span), c.span))?;
            combined(s, c, v, span, depth)
        }
        "train_test_split" if c.receiver.is_some() => {
            let p = receiver_plan(s)?;
            Ok(split_sizes(c, p))
        }
        "select" if c.receiver.is_some() => {
            let p = receiver_plan(s)?;
            Ok(selected(s, c, p))
        }
        "rename_column" if c.receiver.is_some() => {
            let mut p = receiver_plan(s)?;
            if let (Some(a), Some(b)) = (c.positional(0), c.positional(1)) {
                if let (Py::Str(a), Py::Str(b)) = (&a.value, &b.value) {
                    for src in &mut p.sources {
                        src.renames.push((a.clone(), b.clone()));
                    }
                }
            }
            Ok(p)
        }
        "shuffle" | "filter" | "sort" if c.receiver.is_some() => {
            let mut p = receiver_plan(s)?;
            let what = match c.name.as_str() {
                "shuffle" => "pre-shuffles the rows before the trainer's own shuffle; ported runs see another order",
                "filter" => "drops rows by a condition the IR cannot express; ported runs keep them",
                _ => "reorders the rows; ported runs see another order",
            };
            p.warnings.push(
                Diagnostic::warning("not-expressible", format!("`{}` {what}", c.name))
                    .at(Some(c.callee_span)),
            );
            Ok(p)
        }
        "to_sharegpt" => Err(Diagnostic::error(
            "not-expressible",
            "`to_sharegpt` merges columns (and with conversation_extension, random rows) into conversations; the IR cannot express it",
        )
        .at(Some(c.callee_span))
        .with_help("prepare the conversations in the dataset file and load it with `load_dataset`")),
        _ if c.receiver.as_ref().is_some_and(|r| matches!(r, Py::Call(_) | Py::Item(..))) => {
            // Other dataset methods (remove_columns, cast, with_format, …) keep the rows.
            receiver_plan(s)
        }
        _ => Err(cannot(s.text(c.span), c.span)),
    }
}

/// `map(function)`: the function is recorded on every source as its formatting candidate.
fn mapped(s: &Script, c: &Call, mut p: Plan) -> Plan {
    let f = c.kwarg("function").or(c.positional(0));
    let func = match f.map(|a| &a.value) {
        Some(Py::Lambda(span)) => Some(*span),
        Some(Py::Name(n)) => s.module.functions.get(n).copied(),
        _ => None,
    };
    match func {
        Some(span) => {
            for src in &mut p.sources {
                src.maps.push((span, c.span));
            }
        }
        None => p.warnings.push(
            Diagnostic::warning(
                "unreadable-format",
                format!(
                    "cannot read the function mapped over the dataset (`{}`)",
                    f.map_or("", |a| s.text(a.span))
                ),
            )
            .at(Some(c.span))
            .with_help("define the formatting function with `def` in the script"),
        ),
    }
    p
}

/// `concatenate_datasets` / `interleave_datasets`: the sources of every listed dataset.
fn combined(s: &Script, c: &Call, v: Py, span: Span, depth: usize) -> Result<Plan, Diagnostic> {
    let items = match v {
        Py::List(items) | Py::Tuple(items) => items,
        _ => return Err(cannot(s.text(span), span)),
    };
    let mut out = Plan::default();
    for item in &items {
        let p = plan_of(s, item, span, depth + 1)?;
        out.sources.extend(p.sources);
        out.warnings.extend(p.warnings);
    }
    if c.name == "interleave_datasets" {
        out.warnings.push(
            Diagnostic::warning(
                "not-expressible",
                "`interleave_datasets` alternates rows between datasets; the IR concatenates them",
            )
            .at(Some(c.callee_span)),
        );
    }
    Ok(out)
}

/// `train_test_split`: a held-out fraction, or a train fraction kept for the `["train"]` index.
fn split_sizes(c: &Call, mut p: Plan) -> Plan {
    let num = |a: &super::python::Arg| match a.value {
        Py::Float(f) => Some((f, a.span)),
        Py::Int(i) => Some((i as f64, a.span)),
        _ => None,
    };
    let test = c.kwarg("test_size").or(c.positional(0)).and_then(num);
    let train = c.kwarg("train_size").and_then(num);
    match (test, train) {
        (None, Some(t)) => p.pending_subsample = Some(t),
        (t, _) => p.pending_split = t.or(Some((0.25, c.span))),
    }
    p
}

/// `select(range(N))`: the first N rows as a split slice; anything else is reported.
fn selected(s: &Script, c: &Call, mut p: Plan) -> Plan {
    let n = c
        .positional(0)
        .and_then(|a| s.call_of(&a.value))
        .and_then(|r| {
            if r.name != "range" {
                return None;
            }
            match (r.positional(0), r.positional(1)) {
                (Some(a), None) => match a.value {
                    Py::Int(n) => Some(n),
                    _ => None,
                },
                (Some(a), Some(b)) if a.value == Py::Int(0) => match b.value {
                    Py::Int(n) => Some(n),
                    _ => None,
                },
                _ => None,
            }
        });
    match n {
        Some(n) if p.sources.iter().all(|s| !s.split.contains('[')) => {
            for src in &mut p.sources {
                src.split = format!("{}[:{n}]", src.split);
            }
        }
        _ => p.warnings.push(
            Diagnostic::warning("not-expressible", "`select(…)` keeps a subset of rows the IR cannot name")
                .at(Some(c.span))
                .with_help("use `select(range(N))` on a split, or a split slice such as `split = \"train[:1000]\"`"),
        ),
    }
    p
}

/// `plan[key]`: the split picked out of a `train_test_split` (or a dataset dict).
fn plan_of_item(
    s: &Script,
    base: &Py,
    idx: &Py,
    at: Span,
    depth: usize,
) -> Result<Plan, Diagnostic> {
    let mut p = plan_of(s, base, at, depth + 1)?;
    if let (Py::Str(k), Some((frac, span))) = (idx, p.pending_subsample.take()) {
        if k == "train" {
            let pct = (frac * 100.0).round().clamp(0.0, 100.0) as u32;
            for src in &mut p.sources {
                if !src.split.contains('[') {
                    src.split = format!("{}[:{pct}%]", src.split);
                }
            }
            p.warnings.push(
                Diagnostic::warning("approximated", format!("`train_test_split(train_size = {frac})` keeps a random {pct}% of the rows; read as the first {pct}% (`split = \"train[:{pct}%]\"`)"))
                    .at(Some(span)),
            );
            return Ok(p);
        }
    }
    match (idx, p.pending_split.take()) {
        (Py::Str(k), Some(split)) if k == "train" => {
            p.val_size = Some(split);
            Ok(p)
        }
        (Py::Str(k), None) => {
            for src in &mut p.sources {
                src.split = k.clone();
            }
            Ok(p)
        }
        _ => Err(cannot(s.text(at), at)),
    }
}

fn load_dataset(s: &Script, c: &Call) -> Result<DataSource, Diagnostic> {
    let str_arg = |name: &str, pos: Option<usize>| {
        c.kwarg(name)
            .or_else(|| pos.and_then(|p| c.positional(p)))
            .and_then(|a| a.value.as_str().map(String::from))
    };
    let Some(path) = str_arg("path", Some(0)) else {
        return Err(Diagnostic::error(
            "unreadable-dataset",
            "the dataset name of `load_dataset(…)` is not a literal",
        )
        .at(Some(c.span))
        .with_help("write the dataset path as a string or a module-level constant"));
    };
    let files: Vec<String> = match c.kwarg("data_files").map(|a| &a.value) {
        Some(Py::Str(f)) => vec![f.clone()],
        Some(Py::List(v) | Py::Tuple(v)) => v
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Py::Dict(kv)) => kv
            .iter()
            .filter(|(k, _)| k.as_str() == Some("train"))
            .flat_map(|(_, v)| match v {
                Py::Str(f) => vec![f.clone()],
                Py::List(v) => v
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            })
            .collect(),
        _ => vec![],
    };
    let mut src = DataSource {
        split: str_arg("split", None).unwrap_or_else(|| "train".into()),
        name: str_arg("name", Some(1)).unwrap_or_default(),
        span: c.span,
        ..DataSource::default()
    };
    if LOADERS.contains(&path.as_str()) {
        src.loader = path.clone();
        match files.as_slice() {
            [one] => src.path = one.clone(),
            [first, ..] => {
                src.path = first.clone();
                src.data_files = files.clone();
            }
            [] => {
                src.path = str_arg("data_dir", None).unwrap_or_default();
            }
        }
    } else {
        src.path = path;
        src.data_files = files;
    }
    let _ = s;
    Ok(src)
}
