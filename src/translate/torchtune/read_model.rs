//! Reading the model builder, tokenizer and checkpointer of a TorchTune config.

use super::common::{hf_targets, ATTN_MODULES, MLP_MODULES};
use super::read_component::{add_passthrough, bool_arg, component, num_arg, unknown_arg};
use super::tables::{self, Builder, Component};
use crate::diag::{did_you_mean, Diagnostic};
use crate::ir::{BaseWeights, Method};
use crate::translate::families;
use crate::translate::node::Entry;
use crate::translate::reader::{ReadError, Reader};
use serde_json::{json, Value};

/// LoRA builder keywords and what they set.
pub(super) const LORA_ARGS: [&str; 8] = [
    "lora_attn_modules",
    "apply_lora_to_mlp",
    "apply_lora_to_output",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "use_dora",
    "quantize_base",
];

/// What the model builder tells the rest of the config.
pub(super) struct ModelInfo {
    pub(super) module: String,
    pub(super) method: Method,
    /// max_seq_len of the builder (sized) or its `max_seq_len` argument (size-free).
    pub(super) max_seq_len: Option<u64>,
}

// ------------------------------------------------------------------- model

/// The `model` node: the builder (sized or size-free) names the family, size and method; its
/// arguments set the adapter; a LoRA builder's modules become the target modules.
pub(super) fn read_model(r: &mut Reader) -> Result<Option<ModelInfo>, ReadError> {
    let t = tables::get();
    let Some((map, path)) = component(r, "model") else {
        return Ok(None);
    };
    let span = map.get("_component_").map(|e| e.node.span());
    let builder: Option<&Builder> = t.builder(&path);
    let size_free: Option<&Component> = if builder.is_none() {
        t.component(&path)
    } else {
        None
    };
    let (module, method, allowed_dims): (String, Method, Vec<String>) = match (builder, size_free) {
        (Some(b), _) => (b.module.clone(), b.method, Vec::new()),
        (None, Some(c)) => (c.module.clone(), c.method, c.args.clone()),
        (None, None) => {
            r.warn(unknown_model(t, &path).at(span));
            return Ok(None);
        }
    };
    let family = set_identity(r, builder, &module, method);
    let lora = method != Method::Full;
    let mut st = ArgState {
        attn: None,
        mlp: false,
        output: false,
        method,
        max_seq_len: builder.map(|b| b.max_seq_len),
    };
    let target_span = map.get("lora_attn_modules").map(|e| e.key_span);
    let allowed: Vec<&str> = if lora {
        LORA_ARGS
            .iter()
            .copied()
            .chain(allowed_dims.iter().map(String::as_str))
            .collect()
    } else {
        allowed_dims.iter().map(String::as_str).collect()
    };
    let m = ModelCtx {
        path: &path,
        builder,
        size_free,
    };
    for (arg, e) in map {
        if arg == "_component_" {
            continue;
        }
        let key = format!("model.{arg}");
        if !allowed.contains(&arg.as_str()) {
            let why_not = if LORA_ARGS.contains(&arg.as_str()) {
                Some(format!(
                    "`{path}` builds a full model; LoRA arguments need a lora_ builder"
                ))
            } else {
                None
            };
            match why_not {
                Some(msg) => {
                    r.warn(
                        Diagnostic::error("conflict", msg)
                            .at(Some(e.key_span))
                            .with_help("use the lora_/qlora_ builder of this model, or remove the LoRA arguments"),
                    );
                    r.consume(&key);
                }
                None => unknown_arg(r, "model", arg, e, &allowed, true),
            }
            continue;
        }
        r.consume(&key);
        read_arg(r, &m, arg, e, &key, &mut st);
    }
    let ArgState {
        attn,
        mlp,
        output,
        method,
        max_seq_len,
    } = st;
    if lora {
        for required in [
            "lora_attn_modules",
            "apply_lora_to_mlp",
            "lora_rank",
            "lora_alpha",
        ] {
            if !map.contains_key(required) {
                r.warn(
                    Diagnostic::error(
                        "missing-key",
                        format!("`model.{required}` is missing: the LoRA recipes read it (cfg.model.{required}) even though the builder has a default"),
                    )
                    .at(r.get("model").map(|e| e.key_span))
                    .with_help(format!("add `{required}:` under `model`")),
                );
            }
        }
        let mut targets: Vec<String> = attn.unwrap_or_default();
        if mlp {
            targets.extend(MLP_MODULES.iter().map(|s| s.to_string()));
        }
        if output {
            targets.push("lm_head".into());
        }
        let targets = hf_targets(&family, targets);
        let origin = r.origin_of("model.lora_attn_modules", target_span);
        // TorchTune lists modules; it has no "every linear layer" switch, so
        // target_all_linear stays false even when the list covers them all.
        r.set("adapter.target_modules", json!(targets), origin);
    }
    Ok(Some(ModelInfo {
        module,
        method,
        max_seq_len,
    }))
}

/// The error for a `_component_` that is no builder tunebridge knows, with the builders of its
/// module (or the modules 0.6.1 ships) as help.
fn unknown_model(t: &tables::Tables, path: &str) -> Diagnostic {
    match tables::split_model_path(path) {
        Some((module, name)) if t.has_module(module) => {
            let names = t.builder_names(module);
            let help = did_you_mean(name, names.iter().map(String::as_str))
                .unwrap_or_else(|| {
                    format!("TorchTune 0.6.1 builders of {module}: {}", names.join(", "))
                });
            Diagnostic::error(
                "unknown-component",
                format!("`{path}` is not a TorchTune 0.6.1 model builder"),
            )
            .with_help(help)
        }
        Some((module, _)) => Diagnostic::error(
            "unknown-component",
            format!("TorchTune 0.6.1 has no `torchtune.models.{module}` builders"),
        )
        .with_help("0.6.1 ships llama2, code_llama2, llama3, llama3_1, llama3_2, llama3_3, mistral, gemma, gemma2, phi3, phi4, qwen2 and qwen2_5 (Qwen3 and Llama 4 came after the release)"),
        None => Diagnostic::error(
            "unknown-component",
            format!("`{path}` is not a TorchTune model builder"),
        )
        .with_help("use a builder from torchtune.models, e.g. torchtune.models.llama3_2.lora_llama3_2_1b"),
    }
}

/// The IR keys the builder alone sets: family, size, method, and NF4 base weights for QLoRA;
/// returns the family.
fn set_identity(r: &mut Reader, builder: Option<&Builder>, module: &str, method: Method) -> String {
    let origin = r.origin_of("model._component_", r.get("model").map(|e| e.key_span));
    let family = families::by_name(module)
        .map(|f| f.name.clone())
        .unwrap_or(module.to_string());
    r.set("model.family", json!(family), origin.clone());
    r.set(
        "model.size",
        json!(builder.map(|b| b.size.clone()).unwrap_or_default()),
        origin.clone(),
    );
    r.set("adapter.method", json!(method), origin.clone());
    if method == Method::Qlora {
        r.set(
            "quantization.base_weights",
            json!(BaseWeights::Nf4),
            origin.clone(),
        );
    }
    family
}

/// The builder the `_component_` names: a sized one or a size-free component.
struct ModelCtx<'a> {
    path: &'a str,
    builder: Option<&'a Builder>,
    size_free: Option<&'a Component>,
}

/// What the arguments set beyond the IR keys written as they are read.
struct ArgState {
    attn: Option<Vec<String>>,
    mlp: bool,
    output: bool,
    method: Method,
    max_seq_len: Option<u64>,
}

/// One allowed argument of the builder.
fn read_arg(r: &mut Reader, m: &ModelCtx, arg: &str, e: &Entry, key: &str, st: &mut ArgState) {
    let ModelCtx {
        path,
        builder,
        size_free,
    } = *m;
    let span = Some(e.key_span);
    match arg {
        "lora_attn_modules" => st.attn = Some(lora_attn_modules(r, e)),
        "apply_lora_to_mlp" => st.mlp = bool_arg(r, key, e).unwrap_or(false),
        "apply_lora_to_output" => {
            st.output = bool_arg(r, key, e).unwrap_or(false);
            let can = builder.map_or_else(
                || size_free.is_some_and(|c| c.output_lora),
                |b| b.output_lora,
            );
            if st.output && !can {
                r.warn(
                    Diagnostic::error(
                        "conflict",
                        format!("`{path}` cannot put LoRA on the output projection"),
                    )
                    .at(span)
                    .with_help("its output is tied to the token embeddings (or the builder has no such option); set apply_lora_to_output: False"),
                );
            }
        }
        "lora_rank" => {
            if let Some(v) = num_arg(r, key, e) {
                r.set_from("adapter.rank", json!(v as u64), key, span);
            }
        }
        "lora_alpha" => {
            if let Some(v) = num_arg(r, key, e) {
                r.set_from("adapter.alpha", json!(v), key, span);
            }
        }
        "lora_dropout" => {
            if let Some(v) = num_arg(r, key, e) {
                r.set_from("adapter.dropout", json!(v), key, span);
            }
        }
        "use_dora" => {
            let on = bool_arg(r, key, e).unwrap_or(false);
            let can = builder.map_or_else(|| size_free.is_some_and(|c| c.dora), |b| b.dora);
            if on && !can {
                r.warn(
                    Diagnostic::error("conflict", format!("`{path}` has no DoRA option"))
                        .at(span)
                        .with_help("remove use_dora"),
                );
            }
            r.set_from("adapter.use_dora", json!(on), key, span);
        }
        "quantize_base" => {
            if bool_arg(r, key, e) == Some(true) {
                st.method = Method::Qlora;
                r.set_from("adapter.method", json!(Method::Qlora), key, span);
                r.set_from(
                    "quantization.base_weights",
                    json!(BaseWeights::Nf4),
                    key,
                    span,
                );
            }
        }
        dim => {
            // Size-free builder: the architecture is in the config; keep it verbatim.
            let v = e.node.to_value();
            if dim == "max_seq_len" {
                st.max_seq_len = v.as_u64();
            }
            add_passthrough(
                r,
                key,
                v,
                "architecture of a size-free builder; the model folder's config.json holds it",
                e.key_span,
            );
        }
    }
}

/// `lora_attn_modules` as Hugging Face module names; a name TorchTune does not know is reported.
fn lora_attn_modules(r: &mut Reader, e: &Entry) -> Vec<String> {
    let items = match e.node.to_value() {
        Value::Array(a) => a,
        Value::String(s) => vec![Value::String(s)],
        _ => Vec::new(),
    };
    let mut names = Vec::new();
    for item in items {
        let name = item.as_str().unwrap_or("").to_string();
        match ATTN_MODULES.iter().find(|(tt, _)| *tt == name) {
            Some((_, hf)) => names.push(hf.to_string()),
            None => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`model.lora_attn_modules` has `{name}`"),
                )
                .at(Some(e.node.span()))
                .with_help("use a subset of q_proj, k_proj, v_proj, output_proj"),
            ),
        }
    }
    names
}
