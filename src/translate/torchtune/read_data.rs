//! Reading the `dataset` node of a TorchTune config (one builder, or a list = ConcatDataset).

use super::read_component::{bool_arg, default_origin};
use super::tables;
use crate::diag::{did_you_mean, Diagnostic, Span};
use crate::ir::{DatasetFormat, Origin};
use crate::translate::node::{Entry, Node};
use crate::translate::reader::Reader;
use indexmap::IndexMap;
use serde_json::{json, Value};

// ------------------------------------------------------------------- datasets

pub(super) fn read_datasets(r: &mut Reader) {
    let Some(entry) = r.get("dataset") else {
        return;
    };
    let items: Vec<(String, &Node)> = match &entry.node {
        Node::Seq { items, .. } => {
            r.consume("dataset");
            items
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("dataset.{i}"), n))
                .collect()
        }
        n => vec![("dataset".to_string(), n)],
    };
    let mut out = Vec::new();
    let mut train_on: Vec<(bool, Origin)> = Vec::new();
    let mut packed: Vec<(bool, Span)> = Vec::new();
    for (key, node) in items {
        if let Some(ds) = read_dataset(r, &key, node, &mut train_on, &mut packed) {
            out.push(ds);
        }
    }
    if out.is_empty() {
        return;
    }
    r.set_from(
        "data.datasets",
        Value::Array(out),
        "dataset",
        Some(entry.key_span),
    );
    if let Some((first, origin)) = train_on.first().cloned() {
        if train_on.iter().any(|(v, _)| *v != first) {
            r.warn(
                Diagnostic::warning("not-expressible", "the datasets disagree on train_on_input; the IR has one setting, the first dataset's is kept")
                    .at(Some(entry.key_span)),
            );
        }
        r.set("data.train_on_inputs", json!(first), origin);
    }
    if let Some((p, span)) = packed.iter().find(|(p, _)| *p).or(packed.first()).copied() {
        if packed.iter().any(|(q, _)| *q != p) {
            r.warn(
                Diagnostic::warning(
                    "not-expressible",
                    "only some datasets are packed; the IR packs all or none",
                )
                .at(Some(span)),
            );
        }
        r.set_from("data.packing", json!(p), "dataset.packed", Some(span));
        let has_len = r.value("tokenizer.max_seq_len").is_some();
        if p && !has_len {
            r.warn(
                Diagnostic::error("conflict", "`packed: True` needs `tokenizer.max_seq_len`")
                    .at(Some(span))
                    .with_help("TorchTune packs samples into rows of max_seq_len tokens; set it on the tokenizer"),
            );
        }
    }
}

const LOADERS: [&str; 6] = ["json", "csv", "parquet", "text", "arrow", "webdataset"];

/// One dataset builder node as an IR dataset; its `train_on_input` and `packed` are pushed for
/// the caller to reconcile across datasets.
fn read_dataset(
    r: &mut Reader,
    key: &str,
    node: &Node,
    train_on: &mut Vec<(bool, Origin)>,
    packed: &mut Vec<(bool, Span)>,
) -> Option<Value> {
    let t = tables::get();
    let in_list = key != "dataset";
    let Some(map) = node.as_map() else {
        r.warn(
            Diagnostic::error(
                "type-mismatch",
                format!("`{key}` must be a mapping with a `_component_`"),
            )
            .at(Some(node.span())),
        );
        return None;
    };
    let Some(path) = map
        .get("_component_")
        .and_then(|e| e.node.as_str())
        .map(str::to_string)
    else {
        r.warn(
            Diagnostic::error("missing-key", format!("`{key}` has no `_component_`"))
                .at(Some(node.span()))
                .with_help("name a dataset builder such as torchtune.datasets.alpaca_dataset"),
        );
        return None;
    };
    let consume = |r: &mut Reader, arg: &str| {
        if !in_list {
            r.consume(&format!("dataset.{arg}"));
        }
    };
    consume(r, "_component_");
    let spec = builder_of(r, t, key, map, &path)?;
    let c = DsCtx {
        key,
        node,
        map,
        spec,
    };
    let mut ds = serde_json::Map::new();
    read_source(r, &c, &mut ds);
    let toi = train_on_input(r, &c);
    let mut columns = format_columns(r, &c, toi.0, &mut ds);
    read_column_map(r, &c, &mut columns);
    if !columns.is_empty() {
        ds.insert("columns".into(), Value::Object(columns));
    }
    if spec.format != DatasetFormat::Completion {
        train_on.push(toi);
    }
    match map.get("packed") {
        Some(e) => {
            let p = bool_arg(r, &format!("{key}.packed"), e).unwrap_or(false);
            packed.push((p, e.key_span));
        }
        None => packed.push((false, node.span())),
    }
    if let Some(e) = map.get("add_eos") {
        if bool_arg(r, &format!("{key}.add_eos"), e) == Some(false) {
            r.set_from(
                "data.add_eos",
                json!(false),
                &format!("{key}.add_eos"),
                Some(e.key_span),
            );
        }
    }
    unread_keys(r, key, map, consume);
    Some(Value::Object(ds))
}

/// The dataset entry being read: its key, its node and mapping, and the builder it names.
struct DsCtx<'a> {
    key: &'a str,
    node: &'a Node,
    map: &'a IndexMap<String, Entry>,
    spec: &'a tables::Dataset,
}

impl DsCtx<'_> {
    /// A string argument of the builder node.
    fn s(&self, k: &str) -> Option<String> {
        self.map
            .get(k)
            .and_then(|e| e.node.as_str())
            .map(str::to_string)
    }
}

/// The builder the `_component_` names; `None` (reported) when tunebridge does not know it.
fn builder_of<'t>(
    r: &mut Reader,
    t: &'t tables::Tables,
    key: &str,
    map: &IndexMap<String, Entry>,
    path: &str,
) -> Option<&'t tables::Dataset> {
    let Some(spec) = t.dataset(path) else {
        let known: Vec<&str> = t.c.dataset.iter().map(|d| d.component.as_str()).collect();
        let span = map.get("_component_").map(|e| e.node.span());
        let help = did_you_mean(path, known.iter().copied())
            .unwrap_or_else(|| format!("tunebridge reads: {}", known.join(", ")));
        r.warn(
            Diagnostic::error(
                "unknown-component",
                format!("`{key}._component_` `{path}` is not a dataset builder tunebridge knows"),
            )
            .at(span)
            .with_help(help),
        );
        return None;
    };
    Some(spec)
}

/// Where the rows come from: path or loader with data files, config name, split, and the
/// builder's format and prompt style.
fn read_source(r: &mut Reader, c: &DsCtx, ds: &mut serde_json::Map<String, Value>) {
    let DsCtx {
        key,
        node,
        map,
        spec,
    } = *c;
    let s = |k: &str| c.s(k);
    // Where the rows come from.
    let source = s("source").unwrap_or_else(|| spec.source.clone());
    if source.is_empty() {
        r.warn(
            Diagnostic::error("missing-key", format!("`{key}.source` is missing"))
                .at(Some(node.span()))
                .with_help("give a Hub dataset id, or `json` with `data_files`"),
        );
    }
    let files: Vec<String> = match map.get("data_files").map(|e| e.node.to_value()) {
        Some(Value::String(f)) => vec![f],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    if LOADERS.contains(&source.as_str()) {
        ds.insert(
            "path".into(),
            json!(files.first().cloned().unwrap_or_default()),
        );
        ds.insert("loader".into(), json!(source));
        if files.len() > 1 {
            ds.insert("data_files".into(), json!(files));
        }
    } else {
        ds.insert("path".into(), json!(source));
        if !files.is_empty() {
            ds.insert("data_files".into(), json!(files));
        }
    }
    let name = s("name").unwrap_or_else(|| spec.name.clone());
    if !name.is_empty() {
        ds.insert("name".into(), json!(name));
    }
    ds.insert(
        "split".into(),
        json!(s("split").unwrap_or_else(|| "train".into())),
    );
    ds.insert("format".into(), json!(spec.format));
    if !spec.prompt_style.is_empty() {
        ds.insert("prompt_style".into(), json!(spec.prompt_style));
    }
}

/// `train_on_input`: explicit, or the builder's own default, with its origin.
fn train_on_input(r: &mut Reader, c: &DsCtx) -> (bool, Origin) {
    let DsCtx { key, map, spec, .. } = *c;
    // train_on_input: explicit, or the builder's own default.
    match map.get("train_on_input") {
        Some(e) if !e.node.is_null() => {
            let v = bool_arg(r, &format!("{key}.train_on_input"), e).unwrap_or(spec.train_on_input);
            (
                v,
                r.origin_of(&format!("{key}.train_on_input"), Some(e.key_span)),
            )
        }
        _ => (
            spec.train_on_input,
            default_origin(format!(
                "{} default train_on_input={}{}",
                spec.short(),
                if spec.train_on_input { "True" } else { "False" },
                if spec.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", spec.note)
                }
            )),
        ),
    }
}

/// The columns the format implies: the conversation column and style of a chat dataset (and
/// the roles trained), the text column of a plain-text one.
fn format_columns(
    r: &mut Reader,
    c: &DsCtx,
    train_on_input: bool,
    ds: &mut serde_json::Map<String, Value>,
) -> serde_json::Map<String, Value> {
    let DsCtx {
        key,
        node,
        map,
        spec,
    } = *c;
    let s = |k: &str| c.s(k);
    let mut columns = serde_json::Map::new();
    match spec.format {
        DatasetFormat::ChatTemplate => {
            let col = s("conversation_column").unwrap_or_else(|| spec.conversation_column.clone());
            let style = s("conversation_style").unwrap_or_else(|| spec.conversation_style.clone());
            if col.is_empty() || style.is_empty() {
                r.warn(
                    Diagnostic::error(
                        "missing-key",
                        format!("`{key}` needs `conversation_column` and `conversation_style`"),
                    )
                    .at(Some(node.span()))
                    .with_help("e.g. conversation_column: messages, conversation_style: openai"),
                );
            }
            if col != "messages" && !col.is_empty() {
                columns.insert("messages".into(), json!(col));
            }
            match style.as_str() {
                "sharegpt" => {
                    columns.insert("role".into(), json!("from"));
                    columns.insert("content".into(), json!("value"));
                }
                "openai" | "" => {}
                other => r.warn(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`{key}.conversation_style` is `{other}`"),
                    )
                    .at(map.get("conversation_style").map(|e| e.node.span()))
                    .with_help("TorchTune reads `sharegpt` or `openai`"),
                ),
            }
            let roles: Vec<&str> = if train_on_input {
                vec!["system", "user", "assistant"]
            } else {
                vec!["assistant"]
            };
            ds.insert("roles_to_train".into(), json!(roles));
        }
        DatasetFormat::Completion => {
            let col = s("column").unwrap_or_else(|| spec.column.clone());
            columns.insert("text".into(), json!(col));
        }
        DatasetFormat::Alpaca | DatasetFormat::InputOutput | DatasetFormat::Instruct => {}
    }
    columns
}

/// `column_map`: the builder's columns renamed; a column the builder does not read is reported.
fn read_column_map(r: &mut Reader, c: &DsCtx, columns: &mut serde_json::Map<String, Value>) {
    let DsCtx { key, map, spec, .. } = *c;
    if let Some(e) = map.get("column_map") {
        match e.node.to_value() {
            Value::Object(m) => {
                for (k, v) in m {
                    if !spec.columns.contains(&k) {
                        r.warn(
                            Diagnostic::warning(
                                "unknown-key",
                                format!(
                                    "`{key}.column_map.{k}` is not a column {} reads",
                                    spec.short()
                                ),
                            )
                            .at(Some(e.key_span))
                            .with_help(format!("it reads {}", spec.columns.join(", "))),
                        );
                    }
                    columns.insert(k, v);
                }
            }
            Value::Null => {}
            _ => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{key}.column_map` must be a mapping"),
                )
                .at(Some(e.node.span())),
            ),
        }
    }
}

/// Everything else: read above, or keywords TorchTune hands to datasets.load_dataset.
fn unread_keys(
    r: &mut Reader,
    key: &str,
    map: &IndexMap<String, Entry>,
    consume: impl Fn(&mut Reader, &str),
) {
    // Everything else: read above, or keywords TorchTune hands to datasets.load_dataset.
    const READ: [&str; 14] = [
        "_component_",
        "source",
        "data_files",
        "split",
        "name",
        "train_on_input",
        "column_map",
        "conversation_column",
        "conversation_style",
        "column",
        "packed",
        "add_eos",
        "split_across_pack",
        "subset",
    ];
    for (k, e) in map {
        consume(r, k);
        if READ.contains(&k.as_str()) {
            continue;
        }
        let (id, msg, help) = match k.as_str() {
            "new_system_prompt" => ("not-expressible", format!("`{key}.new_system_prompt` replaces every sample's system prompt; the IR cannot say it"), "the ported run keeps the samples' own system prompts"),
            "filter_fn" => ("not-expressible", format!("`{key}.filter_fn` filters rows with Python code; the IR cannot say it"), "the ported run trains on every row"),
            _ => ("not-expressible", format!("`{key}.{k}` is passed to datasets.load_dataset and has no IR field"), "check that the other framework loads the same rows"),
        };
        r.warn(
            Diagnostic::warning(id, msg)
                .at(Some(e.key_span))
                .with_help(help),
        );
    }
}
