//! Reading the datasets behind `train_dataset`: each source's loading and preparation calls,
//! its formatting function (prompt templates, chat templates, plain text), and the masking
//! `train_on_responses_only` adds.

use super::common::{arg, derived, ir_str};
use crate::diag::{Diagnostic, Span};
use crate::translate::families;
use crate::translate::reader::Reader;
use crate::translate::unsloth::format::{self, split_slots, Formatting};
use crate::translate::unsloth::python::{Call, Py};
use crate::translate::unsloth::script::{self, DataSource, Plan, Script};
use crate::translate::unsloth::script_data::script_data;
use serde_json::{json, Value};

/// What one dataset's rows become.
struct Shaped {
    ds: Value,
    eos: Option<bool>,
    chat: bool,
}

/// The training data: the dataset chain behind `train_dataset`, each dataset shaped by its
/// formatting; masking, EOS, the held-out split and padding-free batching.
pub(super) fn read_data(r: &mut Reader, s: &Script) {
    let Some(trainer) = s.call("SFTTrainer") else {
        r.warn(
            Diagnostic::error("missing-key", "no `SFTTrainer(…)` call: the script does not train")
                .with_help("train with `trainer = SFTTrainer(model = model, train_dataset = dataset, args = SFTConfig(…))`"),
        );
        return;
    };
    let Some(train) = s.arg("SFTTrainer", "train_dataset") else {
        r.warn(
            Diagnostic::error("missing-key", "`SFTTrainer` has no `train_dataset`")
                .at(Some(trainer.callee_span))
                .with_help("pass `train_dataset = dataset`"),
        );
        return;
    };
    several_runs(r, s, trainer);
    let plan = match script::plan_of(s, &train.value, train.span, 0) {
        Ok(p) => p,
        Err(d) => {
            r.warn(d);
            return;
        }
    };
    for w in plan.warnings.clone() {
        r.warn(w);
    }
    let text_field = arg(r, "SFTTrainer.dataset_text_field")
        .or_else(|| arg(r, "SFTConfig.dataset_text_field"))
        .and_then(|(v, _)| v.as_str().map(String::from))
        .filter(|f| !f.is_empty());
    let formatting_func = s
        .arg("SFTTrainer", "formatting_func")
        .and_then(|a| match &a.value {
            Py::Name(n) => s.module.functions.get(n).copied(),
            Py::Lambda(span) => Some(*span),
            _ => None,
        });
    let mut shaped = Vec::new();
    for src in &plan.sources {
        shaped.push(shape(r, s, src, text_field.as_deref(), formatting_func));
    }
    let chat = shaped.iter().any(|d| d.chat);
    masking(r, s, &shaped);
    read_eos(r, &shaped, chat, &plan, train.span);
    if let Some((size, span)) = plan.val_size {
        r.set_from(
            "data.val_size",
            json!(size),
            "train_test_split.test_size",
            Some(span),
        );
    }
    padding_free(r, s);
}

/// A script that trains several times: only the first run is read (reported).
fn several_runs(r: &mut Reader, s: &Script, trainer: &Call) {
    // A script that trains several times (continued pretraining, then instruction tuning):
    // the IR holds one run, the first.
    let trainers: Vec<usize> = s
        .module
        .calls
        .iter()
        .filter(|c| c.name == "train")
        .filter_map(|c| match &c.receiver {
            Some(Py::Call(k)) => Some(*k),
            _ => None,
        })
        .collect();
    let mut distinct = trainers.clone();
    distinct.dedup();
    if distinct.len() > 1 {
        r.warn(
            Diagnostic::warning(
                "several-runs",
                format!(
                    "the script calls `train()` on {} trainers; only the first run is read",
                    distinct.len()
                ),
            )
            .at(Some(trainer.callee_span))
            .with_help("split the stages into separate scripts to port each one"),
        );
    }
}

/// Prompt masking (`train_on_responses_only` or `assistant_only_loss`) with its markers, and
/// the datasets themselves.
fn masking(r: &mut Reader, s: &Script, shaped: &[Shaped]) {
    // Masking.
    let mut train_on_inputs = true;
    let tor = s.call("train_on_responses_only");
    let markers = tor.map(|c| markers_for(r, c.callee_span));
    if tor.is_some() {
        train_on_inputs = false;
    }
    let assistant_only =
        arg(r, "SFTConfig.assistant_only_loss").is_some_and(|(v, _)| v == json!(true));
    if assistant_only && tor.is_none() {
        train_on_inputs = false;
    }
    let mut datasets = Vec::new();
    for mut d in shaped.iter().map(|d| d.ds.clone()) {
        if let Some(Some(m)) = &markers {
            d["response_markers"] = json!({"instruction": m.0, "response": m.1});
        }
        datasets.push(d);
    }
    let key_span = r.get("SFTTrainer.train_dataset").map(|e| e.key_span);
    r.set_from(
        "data.datasets",
        Value::Array(datasets),
        "SFTTrainer.train_dataset",
        key_span,
    );
    if let Some(c) = tor {
        r.set_from(
            "data.train_on_inputs",
            json!(false),
            "train_on_responses_only",
            Some(c.callee_span),
        );
        r.set("data.drop_fully_masked", json!(true), derived(&["data.train_on_inputs"], "train_on_responses_only drops rows whose labels are all -100 (dataset_utils.py L1095)"));
    } else if !train_on_inputs {
        let span = r.get("SFTConfig.assistant_only_loss").map(|e| e.key_span);
        r.set_from(
            "data.train_on_inputs",
            json!(false),
            "SFTConfig.assistant_only_loss",
            span,
        );
    }
}

/// EOS: appended by the formatting function for text; part of the template for chat.
fn read_eos(r: &mut Reader, shaped: &[Shaped], chat: bool, plan: &Plan, train_span: Span) {
    // EOS: appended by the formatting function for text; part of the template for chat.
    let eos: Vec<bool> = shaped.iter().filter_map(|d| d.eos).collect();
    if chat && eos.is_empty() {
        r.set(
            "data.add_eos",
            json!(true),
            derived(
                &["data.datasets"],
                "the chat template closes every turn with its end-of-turn token",
            ),
        );
    } else if let Some(&first) = eos.first() {
        if eos.iter().any(|&e| e != first) {
            r.warn(
                Diagnostic::warning("conflict", "some datasets append EOS and others do not; the IR has one `data.add_eos`, set to true")
                    .at(Some(train_span)),
            );
        }
        let any = eos.iter().any(|&e| e);
        let span = plan.sources.first().map(|s| s.span);
        r.set(
            "data.add_eos",
            json!(any),
            match span {
                Some(sp) if any => r.origin_of("formatting function `+ EOS_TOKEN`", Some(sp)),
                _ => derived(&["data.datasets"], "the formatting function appends no EOS, and Unsloth adds none to text (research/unsloth.md §4.9)"),
            },
        );
    }
}

/// Padding-free batching: explicit, or what Unsloth's auto setting gives.
fn padding_free(r: &mut Reader, s: &Script) {
    // Padding-free batching (research/unsloth.md §4.12).
    if let Some((v, span)) = arg(r, "SFTConfig.padding_free") {
        r.set_from(
            "data.padding_free",
            json!(v == json!(true)),
            "SFTConfig.padding_free",
            Some(span),
        );
    } else if let Some(c) = s.arg("SFTTrainer", "data_collator") {
        r.set(
            "data.padding_free",
            json!(false),
            derived(
                &["data.datasets"],
                format!(
                    "a custom data_collator (`{}`) turns Unsloth's auto padding-free off",
                    s.text(c.span).split('(').next().unwrap_or("")
                ),
            ),
        );
    } else if r.ir_value("data.packing") == Some(&json!(true)) {
        r.set(
            "data.padding_free",
            json!(false),
            derived(&["data.packing"], "packing replaces padding-free batching"),
        );
    } else if matches!(ir_str(r, "model.family").as_str(), "gemma2") {
        r.set(
            "data.padding_free",
            json!(false),
            derived(
                &["model.family"],
                "Unsloth does not auto-enable padding-free for Gemma-2 (trainer.py L97)",
            ),
        );
    }
}

/// Keys of each message when they are not `role`/`content`: ShareGPT's `from`/`value` after
/// `standardize_sharegpt`, or the `mapping` given to `get_chat_template`.
fn message_keys(r: &Reader, s: &Script, src: &DataSource, ds: &mut Value) {
    let mut keys: Vec<(String, String)> = Vec::new();
    if src.standardized.as_deref() == Some("standardize_sharegpt") {
        keys = vec![
            ("role".into(), "from".into()),
            ("content".into(), "value".into()),
        ];
    }
    if let Some(a) = s.arg("get_chat_template", "mapping") {
        if let Py::Dict(kv) = &a.value {
            for (k, v) in kv {
                if let (Some(k @ ("role" | "content")), Some(v)) = (k.as_str(), v.as_str()) {
                    keys.retain(|(kk, _)| kk != k);
                    keys.push((k.to_string(), v.to_string()));
                }
            }
        }
    }
    let _ = r;
    keys.retain(|(k, v)| k != v);
    if keys.is_empty() {
        return;
    }
    if !ds["columns"].is_object() {
        ds["columns"] = json!({});
    }
    for (k, v) in keys {
        ds["columns"][k] = json!(v);
    }
}

/// The messages column, named only when it is not the default `messages`.
fn set_messages(ds: &mut Value, col: &str) {
    if col != "messages" {
        ds["columns"] = json!({ "messages": col });
    }
}

/// Instruction/response markers of `train_on_responses_only`: written, or what Unsloth
/// detects from the chat template.
fn markers_for(r: &mut Reader, span: Span) -> Option<(String, String)> {
    let given = |r: &Reader, k: &str| {
        arg(r, &format!("train_on_responses_only.{k}"))
            .and_then(|(v, _)| v.as_str().map(String::from))
    };
    if let (Some(i), Some(p)) = (given(r, "instruction_part"), given(r, "response_part")) {
        return Some((i, p));
    }
    let mut template = ir_str(r, "model.chat_template");
    if template == "tokenizer_default" {
        template = families::by_name(&ir_str(r, "model.family"))
            .map(|f| f.chat_template.clone())
            .unwrap_or_default();
    }
    let t = script_data()
        .template_by_ir(&template)
        .filter(|t| !t.instruction_part.is_empty());
    match t {
        Some(t) => Some((t.instruction_part.clone(), t.response_part.clone())),
        None => {
            r.warn(
                Diagnostic::info("auto-markers", "train_on_responses_only detects its markers from the chat template at run time; tunebridge cannot tell them")
                    .at(Some(span))
                    .with_help("pass instruction_part = … and response_part = … explicitly"),
            );
            None
        }
    }
}

/// Roles of template slots: by variable name where it says, else by position.
fn slot_roles(vars: &[String], n: usize) -> Vec<String> {
    let named = ["instruction", "input", "output", "response"];
    if n > 0 && vars.len() == n && vars.iter().all(|v| named.contains(&v.as_str())) {
        return vars
            .iter()
            .map(|v| {
                if v == "response" {
                    "output".into()
                } else {
                    v.clone()
                }
            })
            .collect();
    }
    match n {
        3 => vec!["instruction".into(), "input".into(), "output".into()],
        2 => vec!["instruction".into(), "output".into()],
        1 => vec!["output".into()],
        _ => (0..n).map(|i| format!("field{i}")).collect(),
    }
}

/// A prompt text with `{role}` placeholders and, per template slot, its role and the column it
/// reads (`None`: a slot filled by something other than a dataset column).
type Prompt = (String, Vec<(String, Option<String>)>);

/// A template with `{}` slots as the IR's prompt (placeholders by role, response slot
/// dropped). `None` when the text does not end at the response slot.
fn prompt_of(t: &format::TemplateUse, has_output: bool) -> Option<Prompt> {
    let parts = split_slots(&t.template)?;
    let n = parts.len() - 1;
    if n != t.slots.len() || (has_output && !parts[n].is_empty()) {
        return None;
    }
    let vars: Vec<String> = t.slots.iter().map(|s| s.var.clone()).collect();
    let roles = if has_output {
        slot_roles(&vars, n)
    } else {
        let mut r = slot_roles(
            &vars
                .iter()
                .cloned()
                .chain(["output".to_string()])
                .collect::<Vec<_>>(),
            n + 1,
        );
        r.pop();
        r
    };
    let mut prompt = parts[0].clone();
    let mut cols = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        if role != "output" {
            prompt.push_str(&format!("{{{role}}}"));
            prompt.push_str(&parts[i + 1]);
        }
        cols.push((role.clone(), t.slots[i].column.clone()));
    }
    // With the response slot last, `prompt` already ends right before it.
    Some((prompt, cols))
}

/// One dataset's rows as the IR reads them, from its source and its formatting function (the
/// last function mapped over it, or the trainer's `formatting_func`).
fn shape(
    r: &mut Reader,
    s: &Script,
    src: &DataSource,
    text_field: Option<&str>,
    formatting_func: Option<Span>,
) -> Shaped {
    let mut ds = source_keys(src);
    let sc = ShapeCtx { s, src, text_field };
    let summary = formatting_summary(r, s, src, formatting_func);
    let Some(f) = summary else {
        return unformatted(r, &sc, ds);
    };
    if let (Some(out), Some(field)) = (&f.output_column, text_field) {
        if out != field {
            r.warn(
                Diagnostic::warning("conflict", format!("the formatting function returns column `{out}` but the trainer reads `dataset_text_field = \"{field}\"`"))
                    .at(Some(f.span)),
            );
        }
    }
    if !f.templates.is_empty() {
        return templated(r, &sc, &f, ds);
    }
    if let Some(col) = &f.chat_messages {
        return chat_formatted(r, &sc, &f, col, ds);
    }
    if f.columns_read.len() == 1 {
        ds["format"] = json!("completion");
        ds["columns"] = json!({"text": sc.original(&f.columns_read[0])});
        return Shaped {
            ds,
            eos: Some(f.eos),
            chat: false,
        };
    }
    unreadable(
        r,
        &f,
        text_field,
        &mut ds,
        "no prompt template, chat template or single text column",
    );
    Shaped {
        ds,
        eos: Some(f.eos),
        chat: false,
    }
}

/// The source keys: path, split, loader, data files and config name.
fn source_keys(src: &DataSource) -> Value {
    let mut ds = json!({"path": src.path, "split": src.split});
    if !src.loader.is_empty() {
        ds["loader"] = json!(src.loader);
    }
    if !src.data_files.is_empty() {
        ds["data_files"] = json!(src.data_files);
    }
    if !src.name.is_empty() {
        ds["name"] = json!(src.name);
    }
    ds
}

/// What a dataset is shaped from: the script, its source and the trainer's text field.
struct ShapeCtx<'a> {
    s: &'a Script<'a>,
    src: &'a DataSource,
    text_field: Option<&'a str>,
}

impl ShapeCtx<'_> {
    /// A column's name in the source rows, before the script's `rename_column` calls.
    fn original(&self, col: &str) -> String {
        let mut c = col.to_string();
        for (from, to) in self.src.renames.iter().rev() {
            if c == *to {
                c = from.clone();
            }
        }
        c
    }
}

/// The formatting function read: the last one mapped or passed to the trainer (several are
/// reported).
fn formatting_summary(
    r: &mut Reader,
    s: &Script,
    src: &DataSource,
    formatting_func: Option<Span>,
) -> Option<Formatting> {
    let mut funcs: Vec<(Span, Span)> = src.maps.clone();
    if let Some(f) = formatting_func {
        funcs.push((f, f));
    }
    if funcs.len() > 1 {
        r.warn(
            Diagnostic::warning("not-expressible", "several functions are mapped over the dataset; only the last one is read as its formatting")
                .at(Some(funcs[0].1)),
        );
    }
    funcs
        .last()
        .and_then(|(f, _)| format::analyze(s.module, *f))
}

/// No formatting function: the conversations or the text column as they are.
fn unformatted(r: &mut Reader, sc: &ShapeCtx, mut ds: Value) -> Shaped {
    let ShapeCtx { s, src, text_field } = *sc;
    // No formatting function: the text column or the conversations as they are.
    if src.standardized.is_some()
        || (text_field.is_none() && ir_str(r, "model.chat_template") != "tokenizer_default")
    {
        ds["format"] = json!("chat_template");
        set_messages(
            &mut ds,
            &sc.original(if src.standardized.is_some() {
                "conversations"
            } else {
                "messages"
            }),
        );
        message_keys(r, s, src, &mut ds);
        ds["roles_to_train"] = json!(["assistant"]);
        return Shaped {
            ds,
            eos: None,
            chat: true,
        };
    }
    ds["format"] = json!("completion");
    ds["columns"] = json!({"text": sc.original(text_field.unwrap_or("text"))});
    Shaped {
        ds,
        eos: Some(false),
        chat: false,
    }
}

/// The function is not one tunebridge can read: reported, and the rows are read as plain text.
fn unreadable(r: &mut Reader, f: &Formatting, text_field: Option<&str>, ds: &mut Value, why: &str) {
    r.warn(
        Diagnostic::warning("unreadable-format", format!("the formatting function is not one tunebridge can read ({why}); the dataset is read as plain text"))
            .at(Some(f.span))
            .with_help("use the notebook shapes: an Alpaca prompt with `.format(…) + EOS_TOKEN`, `tokenizer.apply_chat_template(…)`, or text + EOS_TOKEN"),
    );
    ds["format"] = json!("completion");
    ds["columns"] = json!({"text": f.output_column.clone().or(text_field.map(String::from)).unwrap_or_else(|| "text".into())});
}

/// A function that fills prompt templates: an Alpaca style, an Alpaca text inside a chat
/// template, or a user-defined instruct prompt.
fn templated(r: &mut Reader, sc: &ShapeCtx, f: &Formatting, mut ds: Value) -> Shaped {
    let text_field = sc.text_field;
    let chat_wrapped = f.chat_messages.is_some();
    let prompts: Option<Vec<Prompt>> = f
        .templates
        .iter()
        .map(|t| prompt_of(t, !chat_wrapped))
        .collect();
    let Some(mut prompts) = prompts.filter(|p| p.len() <= 2) else {
        unreadable(r, f, text_field, &mut ds, "its prompt template has named fields, text after the response, or more than two variants");
        return Shaped {
            ds,
            eos: Some(f.eos),
            chat: false,
        };
    };
    // With-input prompt first.
    prompts.sort_by_key(|(p, _)| !p.contains("{input}"));
    let with = prompts[0].0.clone();
    let without = prompts
        .get(1)
        .map(|p| p.0.clone())
        .unwrap_or_else(|| with.replace("{input}", ""));
    let mut columns = serde_json::Map::new();
    for (role, col) in prompts.iter().flat_map(|p| p.1.iter()) {
        if let Some(c) = col {
            columns.entry(role.clone()).or_insert(json!(sc.original(c)));
        }
    }
    if chat_wrapped {
        // The Alpaca text becomes the user turn of a chat template (TorchTune's framing).
        columns
            .entry("output".to_string())
            .or_insert(json!("output"));
    }
    let defaults = columns.iter().all(|(k, v)| v.as_str() == Some(k.as_str()));
    let style = script_data()
        .alpaca_style
        .iter()
        .find(|st| st.with_input() == with && st.no_input() == without && prompts.len() == 2);
    match (style, chat_wrapped) {
        (Some(st), false) => {
            ds["format"] = json!("alpaca");
            ds["prompt_style"] = json!(st.names[0]);
            if !defaults {
                ds["columns"] = Value::Object(columns);
            }
        }
        (Some(_), true) => {
            ds["format"] = json!("alpaca");
            ds["prompt_style"] = json!("alpaca_chat_template");
            if !defaults {
                ds["columns"] = Value::Object(columns);
            }
            return Shaped {
                ds,
                eos: None,
                chat: true,
            };
        }
        (None, true) => {
            unreadable(
                r,
                f,
                text_field,
                &mut ds,
                "a custom prompt wrapped in a chat template",
            );
            return Shaped {
                ds,
                eos: Some(f.eos),
                chat: false,
            };
        }
        (None, false) => {
            // The IR's `instruct` carries every field of a user-defined prompt; the system
            // ones are empty here (Axolotl's user_defined.py defaults).
            let mut cols = serde_json::Map::new();
            cols.insert("system".into(), json!("system"));
            for role in ["instruction", "input", "output"] {
                cols.insert(
                    role.into(),
                    columns.get(role).cloned().unwrap_or(json!(role)),
                );
            }
            ds["format"] = json!("instruct");
            ds["columns"] = Value::Object(cols);
            ds["templates"] = json!({"format": with, "no_input_format": without, "system_format": "{system}", "system_prompt": ""});
        }
    }
    Shaped {
        ds,
        eos: Some(f.eos),
        chat: false,
    }
}

/// A function that applies the chat template: a turn pair from two columns, or a messages
/// column.
fn chat_formatted(
    r: &mut Reader,
    sc: &ShapeCtx,
    f: &Formatting,
    col: &Option<String>,
    mut ds: Value,
) -> Shaped {
    let ShapeCtx { s, src, .. } = *sc;
    // A user/assistant turn built from two columns (TorchTune's instruct framing).
    let var_col = |name: &str| {
        f.vars
            .iter()
            .find(|(v, _)| v == name)
            .map(|(_, c)| sc.original(c))
    };
    // Turns built from two columns read in user-then-assistant order (Granite notebook).
    let pair = (f.columns_read.len() == 2).then(|| {
        (
            sc.original(&f.columns_read[0]),
            sc.original(&f.columns_read[1]),
        )
    });
    let named = var_col("input").zip(var_col("output"));
    if let (None, Some((input, output))) = (col, named.or(pair)) {
        ds["format"] = json!("instruct");
        ds["prompt_style"] = json!("chat_template");
        ds["columns"] = json!({"input": input, "output": output});
        return Shaped {
            ds,
            eos: None,
            chat: true,
        };
    }
    let col = col
        .clone()
        .or_else(|| f.columns_read.first().cloned())
        .unwrap_or_else(|| "messages".into());
    ds["format"] = json!("chat_template");
    set_messages(&mut ds, &sc.original(&col));
    message_keys(r, s, src, &mut ds);
    ds["roles_to_train"] = json!(["assistant"]);
    Shaped {
        ds,
        eos: None,
        chat: true,
    }
}
