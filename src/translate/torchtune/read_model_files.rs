//! Reading the tokenizer and checkpointer of a TorchTune config: the files of the model
//! folder, the chat framing and the sequence length.

use super::read_component::{
    add_passthrough, component, default_origin, derived, unknown_component,
};
use super::read_model::ModelInfo;
use super::tables;
use crate::diag::Diagnostic;
use crate::ir::Origin;
use crate::translate::families;
use crate::translate::node::Entry;
use crate::translate::reader::Reader;
use indexmap::IndexMap;
use serde_json::{json, Value};

// ------------------------------------------------------------------- tokenizer

/// The `tokenizer` node: its folder, the sequence length and the chat framing.
pub(super) fn read_tokenizer(r: &mut Reader, model: &ModelInfo) {
    let t = tables::get();
    let Some((map, path)) = component(r, "tokenizer") else {
        return;
    };
    let Some(tok) = t.tokenizer(&path) else {
        let known: Vec<&str> = t.c.tokenizer.iter().map(|t| t.component.as_str()).collect();
        unknown_component(r, "tokenizer", &path, &known);
        return;
    };
    if !tok.modules.contains(&model.module) {
        let span = map.get("_component_").map(|e| e.node.span());
        r.warn(
            Diagnostic::warning(
                "conflict",
                format!(
                    "tokenizer `{path}` belongs to {}, the model builder to {}",
                    tok.modules.join("/"),
                    model.module
                ),
            )
            .at(span)
            .with_help("TorchTune will tokenize with this tokenizer anyway; check the pairing"),
        );
    }
    tokenizer_folder(r, map, tok);
    sequence_len(r, map, model);
    chat_framing(r, t, map, tok, &path);
}

/// The tokenizer folder: the main file's path minus its place inside a model folder.
fn tokenizer_folder(r: &mut Reader, map: &IndexMap<String, Entry>, tok: &tables::Tokenizer) {
    // The tokenizer folder: the main file's path minus its place inside a model folder.
    let (main_arg, main_file) = tok
        .files
        .first()
        .map(|(a, f)| (a.as_str(), f.as_str()))
        .unwrap_or(("path", ""));
    match map.get(main_arg).map(|e| (e.node.to_value(), e.key_span)) {
        Some((Value::String(p), span)) => {
            r.consume(&format!("tokenizer.{main_arg}"));
            let dir = folder_of(&p, main_file);
            r.set_from(
                "model.tokenizer",
                json!(dir),
                &format!("tokenizer.{main_arg}"),
                Some(span),
            );
        }
        _ => r.warn(
            Diagnostic::error("missing-key", format!("`tokenizer.{main_arg}` is missing"))
                .at(r.get("tokenizer").map(|e| e.key_span))
                .with_help(format!("point it at the model folder's {main_file}")),
        ),
    }
    for arg in tok.files.keys().skip(1) {
        r.consume(&format!("tokenizer.{arg}"));
    }
}

/// Sequence length: the tokenizer truncates to max_seq_len; null means no truncation (the
/// builder's own length bounds the samples).
fn sequence_len(r: &mut Reader, map: &IndexMap<String, Entry>, model: &ModelInfo) {
    // Sequence length: the tokenizer truncates to max_seq_len; null means no truncation.
    match map.get("max_seq_len") {
        Some(e) if !e.node.is_null() => {
            r.consume("tokenizer.max_seq_len");
            match e.node.to_value().as_u64() {
                Some(n) => r.set_from(
                    "data.sequence_len",
                    json!(n),
                    "tokenizer.max_seq_len",
                    Some(e.key_span),
                ),
                None => r.warn(
                    Diagnostic::error(
                        "type-mismatch",
                        "`tokenizer.max_seq_len` must be an integer or null",
                    )
                    .at(Some(e.node.span())),
                ),
            }
        }
        other => {
            r.consume("tokenizer.max_seq_len");
            match model.max_seq_len {
                Some(n) => r.set(
                    "data.sequence_len",
                    json!(n),
                    Origin::Derived {
                        from: vec!["model.family".into(), "model.size".into()],
                        rule: format!(
                            "tokenizer.max_seq_len is {}: no truncation; samples are bounded only by the model's max_seq_len {n}",
                            if other.is_some() { "null" } else { "unset" }
                        ),
                    },
                ),
                None => r.warn(
                    Diagnostic::error("missing-key", "no sequence length: `tokenizer.max_seq_len` is null and the builder has none")
                        .at(r.get("tokenizer").map(|e| e.key_span))
                        .with_help("set `tokenizer.max_seq_len`"),
                ),
            }
        }
    }
}

/// Chat framing: the prompt template named (or the tokenizer's default) as the chat template.
fn chat_framing(
    r: &mut Reader,
    t: &tables::Tables,
    map: &IndexMap<String, Entry>,
    tok: &tables::Tokenizer,
    path: &str,
) {
    // Chat framing.
    let framing = match map.get("prompt_template") {
        None if !tok.prompt_template.is_empty() => {
            let ct =
                t.c.prompt_template
                    .iter()
                    .find(|p| p.component == tok.prompt_template)
                    .map_or(tok.framing.clone(), |p| p.chat_template.clone());
            r.set(
                "model.chat_template",
                json!(ct),
                default_origin(format!(
                    "{path} default prompt_template {}",
                    tok.prompt_template
                )),
            );
            None
        }
        None => Some((tok.framing.clone(), None)),
        Some(e) => {
            r.consume("tokenizer.prompt_template");
            match e.node.to_value() {
                Value::Null => Some((tok.framing.clone(), Some(e.key_span))),
                Value::String(s) => match t.c.prompt_template.iter().find(|p| p.component == s) {
                    Some(p) => Some((p.chat_template.clone(), Some(e.key_span))),
                    None => {
                        add_passthrough(
                            r,
                            "tokenizer.prompt_template",
                            json!(s),
                            "a prompt template with no IR spelling",
                            e.key_span,
                        );
                        Some((tok.framing.clone(), None))
                    }
                },
                v => {
                    add_passthrough(
                        r,
                        "tokenizer.prompt_template",
                        v,
                        "a custom prompt template (role → prefix/suffix)",
                        e.key_span,
                    );
                    Some((tok.framing.clone(), None))
                }
            }
        }
    };
    if let Some((ct, span)) = framing {
        let origin = match span {
            Some(s) => r.origin_of("tokenizer.prompt_template", Some(s)),
            None => derived(
                "model.tokenizer",
                format!("{path} frames chats itself ({})", tok.note),
            ),
        };
        r.set("model.chat_template", json!(ct), origin);
    }
}

/// The model folder a tokenizer file sits in: `/m/original/tokenizer.model` → `/m`.
fn folder_of(path: &str, file_in_folder: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if let Some(dir) = trimmed.strip_suffix(file_in_folder) {
        return dir.trim_end_matches('/').to_string();
    }
    match trimmed.rfind('/') {
        Some(i) => trimmed[..i].to_string(),
        None => ".".to_string(),
    }
}

// ------------------------------------------------------------------- checkpointer

pub(super) fn read_checkpointer(r: &mut Reader) {
    let t = tables::get();
    let Some((map, path)) = component(r, "checkpointer") else {
        return;
    };
    let Some(ck) = t.c.checkpointer.iter().find(|c| c.component == path) else {
        let known: Vec<&str> =
            t.c.checkpointer
                .iter()
                .map(|c| c.component.as_str())
                .collect();
        unknown_component(r, "checkpointer", &path, &known);
        return;
    };
    match map.get("checkpoint_dir") {
        Some(e) if e.node.as_str().is_some() => {
            r.consume("checkpointer.checkpoint_dir");
            let dir = e
                .node
                .as_str()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_string();
            let stripped = (!ck.strip_dir.is_empty())
                .then(|| dir.strip_suffix(&format!("/{}", ck.strip_dir)))
                .flatten();
            match stripped {
                Some(base) => r.set(
                    "model.base",
                    json!(base),
                    derived(
                        "checkpointer.checkpoint_dir",
                        format!(
                            "{} reads Meta weights from <model>/{}/",
                            path.rsplit('.').next().unwrap_or(""),
                            ck.strip_dir
                        ),
                    ),
                ),
                None => r.set_from(
                    "model.base",
                    json!(dir),
                    "checkpointer.checkpoint_dir",
                    Some(e.key_span),
                ),
            }
            if r.ir_value("model.tokenizer").is_none() {
                r.set(
                    "model.tokenizer",
                    json!(dir),
                    derived("model.base", "tokenizer = checkpoint_dir"),
                );
            }
        }
        _ => r.warn(
            Diagnostic::error("missing-key", "`checkpointer.checkpoint_dir` is missing")
                .at(r.get("checkpointer").map(|e| e.key_span))
                .with_help("point it at the folder holding the base model's weights"),
        ),
    }
    if let Some(e) = map.get("model_type") {
        r.consume("checkpointer.model_type");
        let family = r
            .ir_value("model.family")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let expected = families::by_name(&family).map(|f| f.torchtune_model_type.clone());
        let given = e.node.as_str().unwrap_or("");
        if let Some(exp) = expected.filter(|x| x != given) {
            r.warn(
                Diagnostic::warning(
                    "conflict",
                    format!(
                        "`checkpointer.model_type` is {given}, the {family} builders use {exp}"
                    ),
                )
                .at(Some(e.node.span()))
                .with_help(
                    "the model type picks the weight conversion; a mismatch loads the wrong layout",
                ),
            );
        }
    }
    if let Some(e) = map.get("output_dir") {
        r.consume("checkpointer.output_dir");
        let top = r.value("output_dir");
        if top.is_some() && Some(e.node.to_value()) != top {
            r.warn(
                Diagnostic::warning(
                    "conflict",
                    "`checkpointer.output_dir` differs from `output_dir`",
                )
                .at(Some(e.key_span))
                .with_help("tunebridge carries `output_dir`; use `${output_dir}` here"),
            );
        }
    }
}
