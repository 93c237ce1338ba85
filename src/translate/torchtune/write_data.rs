//! Writing the `dataset` node of a TorchTune config.

use super::tables::{self, Tables};
use super::write_common::{carried, parity_against};
use crate::diag::Diagnostic;
use crate::ir::{Dataset, DatasetFormat, RunSpec};
use crate::translate::emitter::Emitter;
use crate::translate::report::Status;
use serde_json::{json, Map, Value};
use std::path::Path;

// ------------------------------------------------------------------- data

/// The `dataset` node: one builder node per dataset, written key by key or as a list, and the
/// data flags TorchTune has no key for.
pub(super) fn write_datasets(em: &mut Emitter, t: &Tables, spec: &RunSpec, native: bool) {
    let mut nodes = Vec::new();
    for (i, d) in spec.data.datasets.iter().enumerate() {
        if let Some(node) = dataset_node(em, t, spec, i, d) {
            nodes.push(node);
        }
    }
    put_nodes(em, nodes);
    cover_data_flags(em, spec, native);
}

/// One dataset as a builder node, with the builder's own `train_on_input` default; `None` when
/// no builder takes its format.
fn dataset_node(
    em: &mut Emitter,
    t: &Tables,
    spec: &RunSpec,
    i: usize,
    d: &Dataset,
) -> Option<(Value, Option<bool>)> {
    let p = format!("data.datasets.{i}");
    let mut m = Map::new();
    let builder = pick_builder(t, d)?;
    let component = builder.component.as_str();
    let builder = Some(builder);
    m.insert("_component_".into(), json!(component));
    source_keys(&mut m, d, builder);
    let n = NodeCtx {
        i,
        p,
        d,
        spec,
        component,
        builder,
    };
    let mut column_map = Map::new();
    match d.format {
        DatasetFormat::Alpaca => alpaca_keys(em, &n, &mut m, &mut column_map),
        DatasetFormat::ChatTemplate => chat_keys(em, &n, &mut m),
        DatasetFormat::Completion => completion_keys(em, &n, &mut m),
        DatasetFormat::Instruct => instruct_keys(em, &n, &mut m, &mut column_map),
        other @ DatasetFormat::InputOutput => input_output_keys(em, &n, &mut m, other),
    }
    let NodeCtx { p, .. } = n;
    if !column_map.is_empty() {
        m.insert("column_map".into(), Value::Object(column_map));
    }
    if !d.response_markers.is_empty() {
        em.cover(
            &format!("{p}.response_markers"),
            Status::NotExpressible,
            "",
            "TorchTune masks by message role, not by marker strings",
        );
    }
    m.insert("packed".into(), json!(spec.data.packing));
    Some((Value::Object(m), builder.map(|b| b.train_on_input)))
}

/// A preset builder when it names exactly this data, else the generic one of the format, else
/// the instruct builder.
fn pick_builder<'a>(t: &'a Tables, d: &Dataset) -> Option<&'a tables::Dataset> {
    // A preset builder when it names exactly this data, else the generic one of the format.
    let preset = t.c.dataset.iter().find(|b| {
        b.preset
            && b.format == d.format
            && b.source == d.path
            && d.loader.is_hub()
            && b.name == d.name
            && (b.column.is_empty() || d.columns.get("text") == Some(&b.column))
            && b.conversation_style.is_empty()
    });
    let generic =
        t.c.dataset
            .iter()
            .find(|b| !b.preset && b.format == d.format);
    let instruct =
        t.c.dataset
            .iter()
            .find(|b| !b.preset && b.format == DatasetFormat::Instruct);
    preset.or(generic).or(instruct)
}

/// The source keys: a Hub id, or a loader with data files; the config name and the split.
fn source_keys(m: &mut Map<String, Value>, d: &Dataset, builder: Option<&tables::Dataset>) {
    // Source: a Hub id, or a loader with data files.
    let ext_loader = Path::new(&d.path)
        .extension()
        .and_then(|e| e.to_str())
        .and_then(|e| match e {
            "json" | "jsonl" => Some("json"),
            "csv" => Some("csv"),
            "parquet" => Some("parquet"),
            "txt" => Some("text"),
            "arrow" => Some("arrow"),
            _ => None,
        });
    let loader = if d.loader.is_hub() {
        ext_loader.unwrap_or("")
    } else {
        d.loader.as_str()
    };
    let default_source = builder.map_or("", |b| b.source.as_str());
    if !loader.is_empty() {
        m.insert("source".into(), json!(loader));
        let files = if d.data_files.is_empty() {
            json!(d.path)
        } else {
            json!(d.data_files)
        };
        m.insert("data_files".into(), files);
    } else if d.path != default_source {
        m.insert("source".into(), json!(d.path));
        if !d.data_files.is_empty() {
            m.insert("data_files".into(), json!(d.data_files));
        }
    }
    if !d.name.is_empty() {
        m.insert("name".into(), json!(d.name));
    }
    if d.split != "train" {
        m.insert("split".into(), json!(d.split));
    }
}

/// What the format's keys are written from: the dataset, its report path and its builder.
struct NodeCtx<'a> {
    i: usize,
    p: String,
    d: &'a Dataset,
    spec: &'a RunSpec,
    component: &'a str,
    builder: Option<&'a tables::Dataset>,
}

/// An Alpaca dataset: the columns the builder reads, `train_on_input`, and the chat framing
/// TorchTune adds around the prompt.
fn alpaca_keys(
    em: &mut Emitter,
    n: &NodeCtx,
    m: &mut Map<String, Value>,
    column_map: &mut Map<String, Value>,
) {
    let NodeCtx {
        i,
        d,
        spec,
        component,
        builder,
        ..
    } = *n;
    let p = &n.p;
    let accepted = builder.map(|b| b.columns.clone()).unwrap_or_default();
    for (k, v) in &d.columns {
        if accepted.contains(k) {
            column_map.insert(k.clone(), json!(v));
        } else {
            em.cover(
                &format!("{p}.columns.{k}"),
                Status::NotExpressible,
                "",
                &format!("{component} reads only the columns {}", accepted.join(", ")),
            );
        }
    }
    m.insert("train_on_input".into(), json!(spec.data.train_on_inputs));
    if d.prompt_style != "alpaca_chat_template" {
        em.cover(&format!("{p}.prompt_style"), Status::Approximated, "dataset._component_", "TorchTune's alpaca_dataset wraps the Alpaca prompt in a user turn of the model's chat format; the source frames it as plain text");
        em.warnings.push(
                Diagnostic::warning(
                    "prompt-framing",
                    format!("dataset {i} ({}): Alpaca prompts become chat turns under TorchTune", d.path),
                )
                .with_help("TorchTune adds the tokenizer's chat markers (e.g. <|start_header_id|>user…) around the same Alpaca text; token counts and loss values shift"),
            );
    }
}

/// A chat dataset: the conversation column and style, and `train_on_input` from the roles
/// trained.
fn chat_keys(em: &mut Emitter, n: &NodeCtx, m: &mut Map<String, Value>) {
    let NodeCtx { d, spec, .. } = *n;
    let p = &n.p;
    let col = d
        .columns
        .get("messages")
        .cloned()
        .unwrap_or_else(|| "messages".into());
    m.insert("conversation_column".into(), json!(col));
    let sharegpt = d.columns.get("role").is_some_and(|r| r == "from");
    m.insert(
        "conversation_style".into(),
        json!(if sharegpt { "sharegpt" } else { "openai" }),
    );
    let all = ["system", "user", "assistant"]
        .iter()
        .all(|r| d.roles_to_train.iter().any(|x| x == r));
    let only_assistant = d.roles_to_train.is_empty() || d.roles_to_train == ["assistant"];
    m.insert("train_on_input".into(), json!(all));
    if all != spec.data.train_on_inputs {
        em.cover(
            "data.train_on_inputs",
            Status::Approximated,
            "train_on_input",
            "chat_dataset masks by role: train_on_input follows the dataset's roles_to_train",
        );
    }
    if !all && !only_assistant {
        em.cover(&format!("{p}.roles_to_train"), Status::Approximated, "train_on_input", "TorchTune trains the assistant turns, or every turn (train_on_input); not a chosen set of roles");
    }
    let extra: Vec<&String> = d
        .columns
        .keys()
        .filter(|k| !["messages", "role", "content"].contains(&k.as_str()))
        .collect();
    if !extra.is_empty() {
        em.cover(
            &format!("{p}.columns"),
            Status::NotExpressible,
            "",
            "chat_dataset maps the conversation column and the sharegpt/openai field names only",
        );
    }
}

/// A plain-text dataset: its text column and `add_eos`.
fn completion_keys(em: &mut Emitter, n: &NodeCtx, m: &mut Map<String, Value>) {
    let NodeCtx { d, spec, .. } = *n;
    if let Some(col) = d.columns.get("text").filter(|c| *c != "text") {
        m.insert("column".into(), json!(col));
    }
    if !spec.data.add_eos {
        m.insert("add_eos".into(), json!(false));
        em.cover("data.add_eos", Status::Carried, "dataset.add_eos", "");
    }
    if !spec.data.train_on_inputs {
        em.cover(
            "data.train_on_inputs",
            Status::Approximated,
            "",
            "text_completion_dataset trains every token; there is no prompt to mask",
        );
    }
}

/// An instruct dataset: the columns the builder reads and `train_on_input`; templates and
/// prompt styles have no key.
fn instruct_keys(
    em: &mut Emitter,
    n: &NodeCtx,
    m: &mut Map<String, Value>,
    column_map: &mut Map<String, Value>,
) {
    let NodeCtx {
        d,
        spec,
        component,
        builder,
        ..
    } = *n;
    let p = &n.p;
    let accepted = builder.map(|b| b.columns.clone()).unwrap_or_default();
    for (k, v) in &d.columns {
        if accepted.contains(k) {
            column_map.insert(k.clone(), json!(v));
        } else {
            em.cover(
                &format!("{p}.columns.{k}"),
                Status::NotExpressible,
                "",
                &format!("{component} reads only the columns {}", accepted.join(", ")),
            );
        }
    }
    m.insert("train_on_input".into(), json!(spec.data.train_on_inputs));
    if !d.templates.is_empty() {
        em.cover(&format!("{p}.templates"), Status::NotExpressible, "", "instruct_dataset sends the input column verbatim as the user turn; prompt format strings have no equivalent");
    }
    if d.prompt_style != "chat_template" {
        em.cover(
            &format!("{p}.prompt_style"),
            Status::Approximated,
            "dataset._component_",
            "instruct_dataset frames input/output as one chat turn of the model's chat format",
        );
    }
}

/// A format with no TorchTune builder: written as `instruct_dataset`, reported and warned.
fn input_output_keys(
    em: &mut Emitter,
    n: &NodeCtx,
    m: &mut Map<String, Value>,
    other: DatasetFormat,
) {
    let NodeCtx { i, d, spec, .. } = *n;
    let p = &n.p;
    m.insert("train_on_input".into(), json!(spec.data.train_on_inputs));
    for field in ["prompt_style", "columns", "templates"] {
        em.cover(
            &format!("{p}.{field}"),
            Status::NotExpressible,
            "dataset._component_",
            "the source format has no TorchTune builder; see the format",
        );
    }
    em.cover(
        &format!("{p}.format"),
        Status::NotExpressible,
        "dataset._component_",
        &format!("TorchTune has no `{other}` dataset format; written as instruct_dataset"),
    );
    em.warnings.push(
        Diagnostic::warning(
            "not-expressible",
            format!(
                "dataset {i} ({}): format `{other}` has no TorchTune builder",
                d.path
            ),
        )
        .with_help("convert the data to input/output columns or to chat messages"),
    );
}

/// The nodes: one dataset key by key, several as a list.
fn put_nodes(em: &mut Emitter, mut nodes: Vec<(Value, Option<bool>)>) {
    if nodes.len() == 1 {
        // One dataset: key by key, so parity comments sit beside the values they explain.
        let (node, builder_toi) = nodes.remove(0);
        let Value::Object(m) = node else {
            return;
        };
        for (k, v) in m {
            let comment = match k.as_str() {
                "train_on_input" => parity_against(
                    em,
                    "data.train_on_inputs",
                    &v,
                    builder_toi.map(Value::Bool).as_ref(),
                    "the builder",
                ),
                "packed" => {
                    parity_against(em, "data.packing", &v, Some(&json!(false)), "TorchTune")
                }
                _ => String::new(),
            };
            carried(em, &format!("dataset.{k}"), v, &["data.datasets"], &comment);
        }
    } else {
        let value = Value::Array(nodes.into_iter().map(|(n, _)| n).collect());
        carried(em, "dataset", value, &["data.datasets"], "");
    }
}

/// The data flags covered by the node as a whole: `train_on_input`, `drop_last` and packing.
fn cover_data_flags(em: &mut Emitter, spec: &RunSpec, native: bool) {
    em.cover(
        "data.train_on_inputs",
        Status::Carried,
        "dataset.train_on_input",
        "",
    );
    if !spec.data.drop_last {
        em.cover(
            "data.drop_last",
            Status::NotExpressible,
            "",
            "TorchTune's recipes always drop each epoch's last incomplete batch",
        );
    }
    if spec.data.packing && !native {
        em.cover("data.packing", Status::Approximated, "dataset.packed", "TorchTune packs greedily in dataset order with a block-causal mask; 0.6.1 also shifts labels across packed samples (a sample's last token learns the next sample's first)");
    } else {
        em.cover("data.packing", Status::Carried, "dataset.packed", "");
    }
}
