//! Reading the model builder, tokenizer and checkpointer of a TorchTune config.

use super::read::{
    add_passthrough, bool_arg, component, default_origin, derived, num_arg, unknown_arg,
    unknown_component, ModelInfo, ATTN_MODULES, LORA_ARGS, MLP_MODULES, TARGET_ORDER,
};
use super::tables::{self, Builder, Component};
use crate::diag::{did_you_mean, Diagnostic};
use crate::ir::{BaseWeights, Method, Origin};
use crate::translate::families;
use crate::translate::reader::{ReadError, Reader};
use serde_json::{json, Value};

// ------------------------------------------------------------------- model

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
    let (module, mut method, allowed_dims): (String, Method, Vec<String>) = match (
        builder, size_free,
    ) {
        (Some(b), _) => (b.module.clone(), b.method, Vec::new()),
        (None, Some(c)) => (c.module.clone(), c.method, c.args.clone()),
        (None, None) => {
            let d = match tables::split_model_path(&path) {
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
                };
            r.warn(d.at(span));
            return Ok(None);
        }
    };
    let origin = r.origin_of("model._component_", r.get("model").map(|e| e.key_span));
    let family = families::by_name(&module)
        .map(|f| f.name.clone())
        .unwrap_or(module.clone());
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
    let lora = method != Method::Full;
    let mut max_seq_len = builder.map(|b| b.max_seq_len);

    let mut attn: Option<Vec<String>> = None;
    let (mut mlp, mut output) = (false, false);
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
        let span = Some(e.key_span);
        match arg.as_str() {
            "lora_attn_modules" => {
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
                attn = Some(names);
            }
            "apply_lora_to_mlp" => mlp = bool_arg(r, &key, e).unwrap_or(false),
            "apply_lora_to_output" => {
                output = bool_arg(r, &key, e).unwrap_or(false);
                let can = builder.map_or_else(
                    || size_free.is_some_and(|c| c.output_lora),
                    |b| b.output_lora,
                );
                if output && !can {
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
                if let Some(v) = num_arg(r, &key, e) {
                    r.set_from("adapter.rank", json!(v as u64), &key, span);
                }
            }
            "lora_alpha" => {
                if let Some(v) = num_arg(r, &key, e) {
                    r.set_from("adapter.alpha", json!(v), &key, span);
                }
            }
            "lora_dropout" => {
                if let Some(v) = num_arg(r, &key, e) {
                    r.set_from("adapter.dropout", json!(v), &key, span);
                }
            }
            "use_dora" => {
                let on = bool_arg(r, &key, e).unwrap_or(false);
                let can = builder.map_or_else(|| size_free.is_some_and(|c| c.dora), |b| b.dora);
                if on && !can {
                    r.warn(
                        Diagnostic::error("conflict", format!("`{path}` has no DoRA option"))
                            .at(span)
                            .with_help("remove use_dora"),
                    );
                }
                r.set_from("adapter.use_dora", json!(on), &key, span);
            }
            "quantize_base" => {
                if bool_arg(r, &key, e) == Some(true) {
                    method = Method::Qlora;
                    r.set_from("adapter.method", json!(Method::Qlora), &key, span);
                    r.set_from(
                        "quantization.base_weights",
                        json!(BaseWeights::Nf4),
                        &key,
                        span,
                    );
                }
            }
            dim => {
                // Size-free builder: the architecture is in the config; keep it verbatim.
                let v = e.node.to_value();
                if dim == "max_seq_len" {
                    max_seq_len = v.as_u64();
                }
                add_passthrough(
                    r,
                    &key,
                    v,
                    "architecture of a size-free builder; the model folder's config.json holds it",
                    e.key_span,
                );
            }
        }
    }
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

/// TorchTune module names in layer order, fused into the family's Hugging Face names where
/// its checkpoints fuse projections (Phi-3's qkv_proj and gate_up_proj).
pub fn hf_targets(family: &str, mut targets: Vec<String>) -> Vec<String> {
    targets.sort_by_key(|t| TARGET_ORDER.iter().position(|o| o == t).unwrap_or(99));
    targets.dedup();
    let Some(f) = families::by_name(family) else {
        return targets;
    };
    for (fused, parts) in [
        ("qkv_proj", &["q_proj", "k_proj", "v_proj"][..]),
        ("gate_up_proj", &["gate_proj", "up_proj"][..]),
    ] {
        if f.linear.iter().any(|l| l == fused)
            && parts.iter().all(|p| targets.iter().any(|t| t == p))
        {
            let at = targets.iter().position(|t| t == parts[0]).unwrap_or(0);
            targets.retain(|t| !parts.contains(&t.as_str()));
            targets.insert(at.min(targets.len()), fused.to_string());
        }
    }
    targets
}

// ------------------------------------------------------------------- tokenizer

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
