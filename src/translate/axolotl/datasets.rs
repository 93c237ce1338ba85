//! Axolotl `datasets:` ⇄ `data.datasets` (schemas/datasets.py `SFTDataset`,
//! prompt_strategies/*).
//!
//! Formats: the alpaca family (`alpaca`, `alpaca:chat|chatml|phi`, `alpaca_chat`, …, the
//! prompt style kept verbatim), `chat_template` (messages column, role/content mapping,
//! roles_to_train), `completion` (text column), `input_output`, and the user-defined `type:`
//! mapping (columns and format strings, Axolotl's defaults filled in). Entry keys with no IR
//! field (`train_on_eos: all`, `roles`, `shards`, …) are kept per dataset in `passthrough`
//! as `axolotl.datasets.N.key` and merged back when writing Axolotl. RL and reward dataset
//! types, pre-tokenized data and formats with no IR prompt (jeopardy, oasst, …) are refused.

use super::common::keep;
use super::keys::{Keys, FW};
use crate::diag::Diagnostic;
use crate::ir::{Attention, Dataset, DatasetFormat, RunSpec};
use crate::translate::emitter::{values_equal, Emitter};
use crate::translate::node::{Entry, Node};
use crate::translate::reader::{ReadError, Reader};
use crate::translate::report::Status;
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

/// Axolotl's user-defined prompt defaults (prompt_strategies/user_defined.py
/// `UserDefinedDatasetConfig`).
const USER_DEFINED_DEFAULTS: [(&str, &str); 8] = [
    ("field_system", "system"),
    ("field_instruction", "instruction"),
    ("field_input", "input"),
    ("field_output", "output"),
    ("format", "{instruction} {input} "),
    ("no_input_format", "{instruction} "),
    ("system_format", "{system}"),
    ("system_prompt", ""),
];

/// Keys of an entry this module reads into the IR.
const READ_KEYS: [&str; 12] = [
    "path",
    "type",
    "ds_type",
    "data_files",
    "split",
    "name",
    "field",
    "field_messages",
    "message_property_mappings",
    "message_field_role",
    "message_field_content",
    "roles_to_train",
];

pub(super) fn read(r: &mut Reader, keys: &Keys) -> Result<(), ReadError> {
    let Some(entry) = r.get("datasets").filter(|e| !e.node.is_null()) else {
        r.consume("datasets");
        let span = r.get("base_model").map(|e| e.key_span);
        r.warn(
            Diagnostic::error(
                "missing-key",
                "no `datasets`: Axolotl needs at least one training dataset",
            )
            .at(span)
            .with_help("add `datasets:` with a `path` and a `type`"),
        );
        return Ok(());
    };
    r.consume("datasets");
    let Some(items) = entry.node.as_seq() else {
        r.warn(
            Diagnostic::error("type-mismatch", "`datasets` must be a list")
                .at(Some(entry.node.span()))
                .with_help("write each dataset as a `- path: …` item"),
        );
        return Ok(());
    };
    let top_template = r.value("chat_template");
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(map) = item.as_map() else {
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`datasets[{i}]` must be a mapping with `path` and `type`"),
                )
                .at(Some(item.span())),
            );
            continue;
        };
        let mut ds = source_keys(r, i, item, map);
        match map.get("type").map(|e| &e.node) {
            Some(Node::Map { entries, .. }) => user_defined_type(r, i, entries, &mut ds),
            Some(n) => {
                let t = n.as_str().unwrap_or("").to_string();
                read_type(r, keys, &t, n, map, &mut ds)?;
            }
            None => r.warn(
                Diagnostic::error("missing-key", format!("`datasets[{i}]` has no `type`"))
                    .at(Some(item.span()))
                    .with_help("add `type: alpaca` (or chat_template, completion, input_output)"),
            ),
        }
        let only = out.is_empty() && items.len() == 1;
        other_keys(r, keys, i, map, &top_template, only);
        out.push(ds);
    }
    r.set_from(
        "data.datasets",
        Value::Array(out),
        "datasets",
        Some(entry.key_span),
    );
    Ok(())
}

/// An entry's source keys: path, split, loader (named, or by file extension), data files and
/// config name.
fn source_keys(r: &mut Reader, i: usize, item: &Node, map: &IndexMap<String, Entry>) -> Value {
    let text = |k: &str| {
        map.get(k)
            .and_then(|e| e.node.as_str())
            .unwrap_or("")
            .to_string()
    };
    if text("path").is_empty() {
        r.warn(
            Diagnostic::error("missing-key", format!("`datasets[{i}]` has no `path`"))
                .at(Some(item.span()))
                .with_help("a hub id, a local file or a folder"),
        );
    }
    let split = if text("split").is_empty() {
        "train".to_string()
    } else {
        text("split")
    };
    let mut ds = json!({"path": text("path"), "split": split});
    let ext = std::path::Path::new(&text("path"))
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            if e == "jsonl" {
                "json".to_string()
            } else {
                e.to_string()
            }
        });
    if !text("ds_type").is_empty() {
        ds["loader"] = json!(text("ds_type"));
    } else if let Some(loader) =
        ext.filter(|e| ["json", "parquet", "csv", "arrow", "txt"].contains(&e.as_str()))
    {
        ds["loader"] = json!(loader);
    }
    if let Some(files) = map.get("data_files").filter(|e| !e.node.is_null()) {
        ds["data_files"] = match files.node.to_value() {
            Value::String(s) => json!([s]),
            v => v,
        };
    }
    if !text("name").is_empty() {
        ds["name"] = json!(text("name"));
    }
    ds
}

/// A user-defined instruction format (`type:` as a mapping): its columns and format strings,
/// Axolotl's defaults filling in what it leaves out.
fn user_defined_type(r: &mut Reader, i: usize, entries: &IndexMap<String, Entry>, ds: &mut Value) {
    // User-defined instruction format: columns and format strings.
    ds["format"] = json!("instruct");
    let given: Map<String, Value> = entries
        .iter()
        .map(|(k, e)| (k.clone(), e.node.to_value()))
        .collect();
    let mut columns = Map::new();
    let mut templates = Map::new();
    for (k, default) in USER_DEFINED_DEFAULTS {
        let v = given
            .get(k)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(json!(default));
        match k.strip_prefix("field_") {
            Some(col) => columns.insert(col.to_string(), v),
            None => templates.insert(k.to_string(), v),
        };
    }
    for (k, e) in entries {
        if !USER_DEFINED_DEFAULTS.iter().any(|(d, _)| d == k) {
            r.warn(
                Diagnostic::warning("unknown-key", format!("unknown key `datasets[{i}].type.{k}` is not read"))
                    .at(Some(e.key_span))
                    .with_help("a user-defined type takes field_system/instruction/input/output, format, no_input_format, system_format, system_prompt"),
            );
        }
    }
    ds["columns"] = Value::Object(columns);
    ds["templates"] = Value::Object(templates);
}

/// Entry keys with no IR field: kept for Axolotl, or the model's chat template when the only
/// dataset names it; Axolotl's own defaults are dropped and unknown keys reported.
fn other_keys(
    r: &mut Reader,
    keys: &Keys,
    i: usize,
    map: &IndexMap<String, Entry>,
    top_template: &Option<Value>,
    only: bool,
) {
    // Entry keys with no IR field are kept for Axolotl; Axolotl's own defaults are dropped.
    for (k, e) in map {
        if READ_KEYS.contains(&k.as_str()) {
            continue;
        }
        let v = e.node.to_value();
        if v.is_null() {
            continue;
        }
        let noop = keys
            .datasets
            .noop
            .get(k)
            .is_some_and(|vs| vs.iter().any(|x| values_equal(x, &v)))
            || (k == "chat_template" && top_template.as_ref().is_some_and(|t| values_equal(t, &v)));
        if noop {
            continue;
        }
        if k == "chat_template" && top_template.is_none() && only {
            // One dataset names the template: it frames the conversations.
            r.set_from(
                "model.chat_template",
                v,
                &format!("datasets[{i}].chat_template"),
                Some(e.key_span),
            );
            continue;
        }
        if keys.datasets.kept.contains(k) {
            keep(
                r,
                &format!("datasets.{i}.{k}"),
                v,
                Some(e.key_span),
                "dataset setting with no IR field",
            );
        } else {
            r.warn(
                Diagnostic::warning(
                    "unknown-key",
                    format!("unknown dataset key `datasets[{i}].{k}` is not read"),
                )
                .at(Some(e.key_span))
                .with_help("Axolotl would ignore it too; remove it or check the spelling"),
            );
        }
    }
}

/// A `type:` string: the format, its prompt style and its columns.
fn read_type(
    r: &mut Reader,
    keys: &Keys,
    t: &str,
    node: &Node,
    map: &indexmap::IndexMap<String, crate::translate::node::Entry>,
    ds: &mut Value,
) -> Result<(), ReadError> {
    let text = |k: &str| map.get(k).and_then(|e| e.node.as_str()).map(str::to_string);
    let refuse = |msg: String, help: &str| {
        ReadError::NotSupported(
            Diagnostic::error("not-supported", msg)
                .at(Some(node.span()))
                .with_help(help)
                .locate(r.source),
        )
    };
    let base = t.split(['.', ':']).next().unwrap_or(t);
    if keys.datasets.alpaca_styles.iter().any(|s| s == t) {
        ds["format"] = json!("alpaca");
        ds["prompt_style"] = json!(t);
        return Ok(());
    }
    match t {
        "chat_template" => {
            ds["format"] = json!("chat_template");
            let mut columns = Map::new();
            if let Some(m) = text("field_messages") {
                columns.insert("messages".into(), json!(m));
            }
            // message_property_mappings, or the deprecated message_field_role/content.
            if let Some(m) = map.get("message_property_mappings").map(|e| e.node.to_value()) {
                if let Some(obj) = m.as_object() {
                    for (k, v) in obj {
                        columns.insert(k.clone(), v.clone());
                    }
                }
            }
            for (old, prop) in [("message_field_role", "role"), ("message_field_content", "content")] {
                if let Some(e) = map.get(old).filter(|e| !e.node.is_null()) {
                    r.warn(
                        Diagnostic::info("deprecated-key", format!("`{old}` is deprecated; read as message_property_mappings.{prop}"))
                            .at(Some(e.key_span)),
                    );
                    columns.entry(prop.to_string()).or_insert(e.node.to_value());
                }
            }
            if !columns.is_empty() {
                ds["columns"] = Value::Object(columns);
            }
            ds["roles_to_train"] = match map.get("roles_to_train").filter(|e| !e.node.is_null()) {
                Some(e) => e.node.to_value(),
                None => json!(["assistant"]),
            };
            Ok(())
        }
        "completion" => {
            ds["format"] = json!("completion");
            ds["columns"] = json!({"text": text("field").unwrap_or_else(|| "text".into())});
            Ok(())
        }
        "input_output" => {
            ds["format"] = json!("input_output");
            Ok(())
        }
        "" => Err(refuse(
            "not supported: pre-tokenized datasets (no `type`)".into(),
            "give the dataset a `type` such as alpaca or chat_template",
        )),
        t if t.starts_with("sharegpt") => Err(refuse(
            "not supported: dataset type `sharegpt` was removed from Axolotl".into(),
            "use `type: chat_template` with `field_messages: conversations`",
        )),
        _ if keys.datasets.rl_types.iter().any(|x| x == t || x == base) => Err(refuse(
            format!("not supported: `{t}` is a preference / reward dataset type"),
            "tunebridge ports supervised fine-tuning; RL and reward trainers are out of scope",
        )),
        other => Err(refuse(
            format!("not supported: dataset type `{other}` has no IR prompt format"),
            "supported: alpaca (and its styles), chat_template, completion, input_output, or a user-defined `type:` mapping",
        )),
    }
}

pub(super) fn write(em: &mut Emitter, spec: &RunSpec, keys: &Keys) {
    let own = format!("{}.datasets.", FW.name());
    let mut notes: Vec<Note> = Vec::new();
    let datasets: Vec<Value> = spec
        .data
        .datasets
        .iter()
        .enumerate()
        .map(|(i, d)| dataset_entry(spec, keys, &own, i, d, &mut notes))
        .collect();
    em.put(
        "datasets",
        Value::Array(datasets),
        &["data.datasets"],
        Status::Carried,
        "",
    );
    for (path, status, note) in notes {
        em.cover(&path, status, "datasets", &note);
    }
    cover_data_flags(em, spec);
    padding_free(em, spec);
}

/// A note on a dataset field: its IR path, its status and why.
type Note = (String, Status, String);

/// One `datasets:` entry: source keys, `type` by format, and the entry keys kept from an
/// Axolotl source; what it cannot say goes to `notes`.
fn dataset_entry(
    spec: &RunSpec,
    keys: &Keys,
    own: &str,
    i: usize,
    d: &Dataset,
    notes: &mut Vec<Note>,
) -> Value {
    let mut m = Map::new();
    m.insert("path".into(), json!(d.path));
    if !d.loader.is_hub() {
        m.insert("ds_type".into(), json!(d.loader));
    }
    if !d.data_files.is_empty() {
        m.insert("data_files".into(), json!(d.data_files));
    }
    if !d.name.is_empty() {
        m.insert("name".into(), json!(d.name));
    }
    if d.split != "train" {
        m.insert("split".into(), json!(d.split));
    }
    match d.format {
        DatasetFormat::Alpaca => {
            let known = keys.datasets.alpaca_styles.contains(&d.prompt_style);
            let style = if known {
                d.prompt_style.clone()
            } else {
                "alpaca".into()
            };
            if !known && !d.prompt_style.is_empty() {
                notes.push((
                    format!("data.datasets.{i}.prompt_style"),
                    Status::Approximated,
                    format!("Axolotl has no `{}` framing; its Stanford alpaca prompt (`type: alpaca`) is used", d.prompt_style),
                ));
            }
            m.insert("type".into(), json!(style));
        }
        DatasetFormat::ChatTemplate => {
            m.insert("type".into(), json!("chat_template"));
            let mut props = Map::new();
            for (k, v) in &d.columns {
                if k == "messages" {
                    if v != "messages" {
                        m.insert("field_messages".into(), json!(v));
                    }
                } else {
                    props.insert(k.clone(), json!(v));
                }
            }
            if !props.is_empty() {
                m.insert("message_property_mappings".into(), Value::Object(props));
            }
            if !d.roles_to_train.is_empty() && d.roles_to_train != ["assistant"] {
                m.insert("roles_to_train".into(), json!(d.roles_to_train));
            }
        }
        DatasetFormat::Completion => {
            m.insert("type".into(), json!("completion"));
            if let Some(col) = d.columns.get("text").filter(|c| *c != "text") {
                m.insert("field".into(), json!(col));
            }
        }
        DatasetFormat::InputOutput => {
            m.insert("type".into(), json!("input_output"));
        }
        DatasetFormat::Instruct => {
            m.insert("type".into(), instruct_type(i, d, notes));
        }
    }
    if !d.response_markers.is_empty() {
        notes.push((
            format!("data.datasets.{i}.response_markers"),
            Status::Approximated,
            "Axolotl masks prompts by format (train_on_inputs / roles_to_train), not by marker strings".into(),
        ));
    }
    // Entry keys kept from an Axolotl source.
    let prefix = format!("{own}{i}.");
    for (k, v) in &spec.passthrough {
        if let Some(key) = k.strip_prefix(&prefix) {
            m.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(m)
}

/// The user-defined `type:` of an instruct dataset: its fields and format strings, less
/// Axolotl's defaults.
fn instruct_type(i: usize, d: &Dataset, notes: &mut Vec<Note>) -> Value {
    // Axolotl's user-defined type frames prompts with its format strings; a
    // source that framed them otherwise (a chat template, its own defaults)
    // gets Axolotl's defaults for what it left out.
    let complete = USER_DEFINED_DEFAULTS
        .iter()
        .all(|(k, _)| match k.strip_prefix("field_") {
            Some(col) => d.columns.contains_key(col),
            None => d.templates.contains_key(*k),
        });
    if !d.prompt_style.is_empty() || !complete {
        let how = if d.prompt_style.is_empty() {
            "its own defaults".to_string()
        } else {
            format!("`{}`", d.prompt_style)
        };
        let note = format!("Axolotl's user-defined type fills in its defaults ({{instruction}} {{input}} with no template); the source framed prompts with {how}");
        let mut parts = vec!["prompt_style".to_string()];
        for (k, _) in USER_DEFINED_DEFAULTS {
            parts.push(match k.strip_prefix("field_") {
                Some(col) => format!("columns.{col}"),
                None => format!("templates.{k}"),
            });
        }
        for part in parts {
            notes.push((
                format!("data.datasets.{i}.{part}"),
                Status::Approximated,
                note.clone(),
            ));
        }
    }
    // Axolotl's own defaults need not be spelled out.
    let is_default = |k: &str, v: &str| {
        USER_DEFINED_DEFAULTS
            .iter()
            .any(|(dk, dv)| *dk == k && *dv == v)
    };
    let mut t = Map::new();
    for (k, v) in &d.columns {
        let key = format!("field_{k}");
        if !is_default(&key, v) {
            t.insert(key, json!(v));
        }
    }
    for (k, v) in &d.templates {
        if !is_default(k, v) {
            t.insert(k.clone(), json!(v));
        }
    }
    Value::Object(t)
}

/// The data flags Axolotl frames on its own: fully-masked rows, BOS/EOS and the last batch.
fn cover_data_flags(em: &mut Emitter, spec: &RunSpec) {
    if spec.data.drop_fully_masked && !spec.data.packing {
        em.cover(
            "data.drop_fully_masked",
            Status::NotExpressible,
            "",
            "Axolotl drops samples with no trained token only when sample_packing is on",
        );
    }
    if !spec.data.add_bos || !spec.data.add_eos {
        em.cover(
            "data.add_bos",
            Status::Approximated,
            "",
            "Axolotl frames samples with the tokenizer's BOS and appends EOS to responses",
        );
        em.cover(
            "data.add_eos",
            Status::Approximated,
            "",
            "Axolotl frames samples with the tokenizer's BOS and appends EOS to responses",
        );
    }
    match (spec.data.drop_last, spec.data.packing) {
        (true, true) => em.cover("data.drop_last", Status::Carried, "sample_packing", "the multipack sampler drops the last incomplete batch"),
        (false, false) => em.cover("data.drop_last", Status::Defaulted, "", ""),
        (true, false) => em.put("dataloader_drop_last", json!(true), &["data.drop_last"], Status::Carried, ""),
        (false, true) => em.cover(
            "data.drop_last",
            Status::NotExpressible,
            "",
            "with sample_packing Axolotl's multipack sampler always drops each epoch's last incomplete batch",
        ),
    }
}

/// Padding-free batches: packing, or batch flattening under varlen attention.
fn padding_free(em: &mut Emitter, spec: &RunSpec) {
    // Axolotl flattens batches only with varlen attention (validation.py check_batch_flattening_fa).
    let varlen = match spec.model.attention {
        Attention::FlashAttention2
        | Attention::FlashAttention3
        | Attention::FlexAttention
        | Attention::Xformers
        | Attention::Sage => true,
        Attention::Eager | Attention::Sdpa => false,
    };
    match spec.data.padding_free {
        true if !spec.data.packing && !varlen => em.cover(
            "data.padding_free",
            Status::Approximated,
            "",
            &format!(
                "Axolotl flattens batches only with flash/flex attention, not `{}`; padded batches give the same loss",
                spec.model.attention
            ),
        ),
        true if spec.data.packing => em.cover(
            "data.padding_free",
            Status::Carried,
            "sample_packing",
            "packed rows carry no padding",
        ),
        true => em.put(
            "batch_flattening",
            json!(true),
            &["data.padding_free"],
            Status::Carried,
            "",
        ),
        false => em.cover("data.padding_free", Status::Defaulted, "", ""),
    }
}
