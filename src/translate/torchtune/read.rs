//! TorchTune YAML → IR.
//!
//! A TorchTune config is an OmegaConf tree whose `_component_` nodes name Python callables.
//! The simple top-level keys come from `translators/torchtune/fields.toml`; this file reads the
//! component nodes against `builders.toml` / `components.toml`: the model builder (family,
//! size, LoRA/QLoRA and its targets), tokenizer (chat framing, sequence length), checkpointer
//! (base weights), datasets, optimizer, LR scheduler, loss and metric logger. `${…}`
//! interpolations are resolved first, as OmegaConf does. The device count is not in a config:
//! it is the `--nproc_per_node` of the `tune run` command that TorchTune configs document in
//! their header comment, which is read when present.
//!
//! Left out on purpose: running Python. A component tunebridge does not know is an error
//! naming the ones it does; RL, distillation, vision, evaluation, generation and quantisation
//! configs are refused (`not supported`).

use super::tables::{self, Builder, Component};
use super::{launch, FW};
use crate::diag::{did_you_mean, Diagnostic, Source, Span};
use crate::ir::Origin;
use crate::translate::node::{Entry, Node};
use crate::translate::reader::{Parsed, ReadError, Reader};
use crate::translate::{data, families, yaml};
use indexmap::IndexMap;
use serde_json::{json, Value};

/// Keys every fine-tuning recipe reads with attribute access (a missing one fails in TorchTune).
const REQUIRED: [&str; 17] = [
    "output_dir",
    "model",
    "tokenizer",
    "checkpointer",
    "resume_from_checkpoint",
    "dataset",
    "seed",
    "shuffle",
    "batch_size",
    "epochs",
    "max_steps_per_epoch",
    "gradient_accumulation_steps",
    "optimizer",
    "loss",
    "metric_logger",
    "device",
    "dtype",
];

/// Keys only the distributed recipes read.
const DISTRIBUTED_KEYS: [&str; 4] = [
    "fsdp_cpu_offload",
    "fsdp_reshard_after_forward",
    "custom_sharded_layers",
    "tensor_parallel_dim",
];

/// LoRA builder keywords and what they set.
const LORA_ARGS: [&str; 8] = [
    "lora_attn_modules",
    "apply_lora_to_mlp",
    "apply_lora_to_output",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "use_dora",
    "quantize_base",
];

/// TorchTune's attention module names → Hugging Face names (`_TO_PEFT_TARGET_MODULES`).
pub const ATTN_MODULES: [(&str, &str); 4] = [
    ("q_proj", "q_proj"),
    ("k_proj", "k_proj"),
    ("v_proj", "v_proj"),
    ("output_proj", "o_proj"),
];
pub const MLP_MODULES: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];
/// Order target modules are listed in (the order of a decoder layer, then the LM head).
pub const TARGET_ORDER: [&str; 8] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "lm_head",
];

/// What the model builder tells the rest of the config.
struct ModelInfo {
    module: String,
    method: String,
    /// max_seq_len of the builder (sized) or its `max_seq_len` argument (size-free).
    max_seq_len: Option<u64>,
}

pub fn read(source: &Source) -> Result<Parsed, ReadError> {
    let parsed = yaml::parse(source).map_err(ReadError::Syntax)?;
    if parsed.as_map().is_none() {
        return Err(ReadError::Syntax(
            Diagnostic::error("syntax", "a TorchTune config is a YAML mapping of keys")
                .at(Some(parsed.span()))
                .locate(source),
        ));
    }
    let mut referenced = Vec::new();
    let root = interpolate(&parsed, &parsed, &mut referenced);
    let mut r = Reader::new(source, &root, data::table(FW), data::defaults(FW));
    r.check_unsupported()?;
    check_components(&r, &root)?;
    for k in &referenced {
        // Top-level keys that only serve as `${…}` variables.
        if !REQUIRED.contains(&k.as_str()) && r.table.field.iter().all(|f| f.key != *k) {
            r.consume(k);
        }
    }
    for key in REQUIRED {
        if r.get(key).is_none() {
            r.warn(
                Diagnostic::error(
                    "missing-key",
                    format!("`{key}` is missing: TorchTune's fine-tuning recipes read `cfg.{key}`"),
                )
                .with_help(format!(
                    "add `{key}:` (see `tune cp <recipe config>` for an example)"
                )),
            );
        }
    }
    r.apply_table();
    let launch = launch::find(&source.text);
    let Some(model) = read_model(&mut r)? else {
        return r.finish(FW.name());
    };
    read_tokenizer(&mut r, &model);
    read_checkpointer(&mut r);
    read_datasets(&mut r);
    read_seed(&mut r);
    read_clip(&mut r);
    read_optimizer(&mut r);
    read_scheduler(&mut r, &model);
    read_loss(&mut r);
    read_logger(&mut r);
    read_resume(&mut r);
    read_parallel(&mut r, &launch, &model);
    let dtype = r
        .ir_value("precision.compute_dtype")
        .cloned()
        .unwrap_or(json!("fp32"));
    r.set(
        "adapter.weight_dtype",
        dtype,
        Origin::Derived {
            from: vec!["precision.compute_dtype".into()],
            rule: "TorchTune builds the adapters in the recipe dtype, like the rest of the model"
                .into(),
        },
    );
    let mut parsed_out = r.finish(FW.name())?;
    // Kept keys come back as written, `${…}` included, so they follow the values they name.
    for (k, v) in parsed_out.resolved.spec.passthrough.iter_mut() {
        let raw = k
            .strip_prefix(&format!("{}.", FW.name()))
            .and_then(|key| parsed.lookup(key));
        if let Some(e) = raw {
            *v = e.node.to_value();
        }
    }
    Ok(parsed_out)
}

// ------------------------------------------------------------------- interpolation

/// Resolve OmegaConf `${a.b}` references in string scalars against the whole tree. A string
/// that is exactly one reference takes the referenced value's type; references inside longer
/// strings are spliced in as text. Resolvers (`${oc.env:X}`) and unknown keys stay verbatim.
fn interpolate(node: &Node, root: &Node, referenced: &mut Vec<String>) -> Node {
    match node {
        Node::Scalar {
            value: Value::String(s),
            span,
        } if s.contains("${") => Node::Scalar {
            value: resolve(s, root, referenced, 0),
            span: *span,
        },
        Node::Scalar { .. } => node.clone(),
        Node::Seq { items, span } => Node::Seq {
            items: items
                .iter()
                .map(|n| interpolate(n, root, referenced))
                .collect(),
            span: *span,
        },
        Node::Map { entries, span } => Node::Map {
            entries: entries
                .iter()
                .map(|(k, e)| {
                    (
                        k.clone(),
                        Entry {
                            key_span: e.key_span,
                            node: interpolate(&e.node, root, referenced),
                        },
                    )
                })
                .collect(),
            span: *span,
        },
    }
}

fn resolve(s: &str, root: &Node, referenced: &mut Vec<String>, depth: usize) -> Value {
    if depth > 8 {
        return Value::String(s.to_string());
    }
    let lookup = |path: &str, referenced: &mut Vec<String>| -> Option<Value> {
        if path.contains(':') || path.starts_with('.') {
            return None;
        }
        let v = root.lookup(path)?.node.to_value();
        let top = path.split('.').next().unwrap_or(path).to_string();
        if !referenced.contains(&top) {
            referenced.push(top);
        }
        Some(match v {
            Value::String(inner) if inner.contains("${") => {
                resolve(&inner, root, referenced, depth + 1)
            }
            v => v,
        })
    };
    if let Some(path) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        if !path.contains("${") && !path.contains('}') {
            return lookup(path, referenced).unwrap_or_else(|| Value::String(s.to_string()));
        }
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Value::String(out);
        };
        let path = &after[..end];
        match lookup(path, referenced) {
            Some(Value::String(v)) => out.push_str(&v),
            Some(Value::Null) | None => out.push_str(&rest[start..start + 3 + end]),
            Some(v) => out.push_str(&v.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Value::String(out)
}

// ------------------------------------------------------------------- scope

/// Refuse configs whose components belong to runs tunebridge does not port.
fn check_components(r: &Reader, root: &Node) -> Result<(), ReadError> {
    let t = tables::get();
    let mut found: Option<(String, Span, &'static str)> = None;
    fn walk(node: &Node, out: &mut Vec<(String, Span)>) {
        match node {
            Node::Map { entries, .. } => {
                for (k, e) in entries {
                    if k == "_component_" {
                        if let Some(s) = e.node.as_str() {
                            out.push((s.to_string(), e.node.span()));
                        }
                    }
                    walk(&e.node, out);
                }
            }
            Node::Seq { items, .. } => items.iter().for_each(|n| walk(n, out)),
            Node::Scalar { .. } => {}
        }
    }
    let mut components = Vec::new();
    walk(root, &mut components);
    for (c, span) in components {
        let reward = tables::split_model_path(&c)
            .is_some_and(|(_, name)| name.contains("reward") || name.contains("classifier"));
        if let Some(u) = t.unsupported(&c) {
            found = Some((c, span, u.feature.as_str()));
            break;
        }
        if reward {
            found = Some((c, span, "reward-model / classifier training"));
            break;
        }
    }
    if let Some((c, span, feature)) = found {
        return Err(ReadError::NotSupported(
            Diagnostic::error("not-supported", format!("not supported: {feature} (`{c}`)"))
                .at(Some(span))
                .with_help(
                    "tunebridge ports and runs supervised fine-tuning of text models (LoRA, QLoRA, full)",
                )
                .locate(r.source),
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------- helpers

/// A component node: its map and `_component_` path. Errors are reported and give None.
fn component<'a>(r: &mut Reader<'a>, key: &str) -> Option<(&'a IndexMap<String, Entry>, String)> {
    let entry = r.get(key)?;
    let Some(map) = entry.node.as_map() else {
        r.warn(
            Diagnostic::error(
                "type-mismatch",
                format!("`{key}` must be a mapping with a `_component_`"),
            )
            .at(Some(entry.node.span())),
        );
        return None;
    };
    let Some(path) = map.get("_component_").and_then(|e| e.node.as_str()) else {
        r.warn(
            Diagnostic::error("missing-key", format!("`{key}` has no `_component_`"))
                .at(Some(entry.key_span))
                .with_help(format!(
                    "add `_component_:` with the dotted path of the {key}"
                )),
        );
        return None;
    };
    r.consume(&format!("{key}._component_"));
    Some((map, path.to_string()))
}

fn unknown_component(r: &mut Reader, key: &str, path: &str, known: &[&str]) {
    let span = r.get(&format!("{key}._component_")).map(|e| e.node.span());
    let help = match did_you_mean(path, known.iter().copied()) {
        Some(s) => s,
        None => format!("tunebridge reads: {}", known.join(", ")),
    };
    r.warn(
        Diagnostic::error(
            "unknown-component",
            format!("`{key}._component_` `{path}` is not a component tunebridge knows"),
        )
        .at(span)
        .with_help(help),
    );
}

/// A keyword of a component that is not one tunebridge reads: TorchTune would pass it on.
fn unknown_arg(r: &mut Reader, key: &str, arg: &str, e: &Entry, known: &[&str], error: bool) {
    let d = if error {
        Diagnostic::error(
            "unknown-key",
            format!("`{key}.{arg}` is not an argument of this {key} builder"),
        )
    } else {
        Diagnostic::warning("unknown-key", format!("`{key}.{arg}` is not read"))
    };
    let d = match did_you_mean(arg, known.iter().copied()) {
        Some(s) => d.with_help(s),
        None if error => d.with_help("TorchTune would fail with an unexpected keyword argument"),
        None => d.with_help("it has no IR field; remove it or check the spelling"),
    };
    r.warn(d.at(Some(e.key_span)));
    r.consume(&format!("{key}.{arg}"));
}

fn bool_arg(r: &mut Reader, key: &str, e: &Entry) -> Option<bool> {
    match e.node.to_value() {
        Value::Bool(b) => Some(b),
        Value::Null => None,
        other => {
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{key}` must be True or False, found `{other}`"),
                )
                .at(Some(e.node.span())),
            );
            None
        }
    }
}

fn num_arg(r: &mut Reader, key: &str, e: &Entry) -> Option<f64> {
    match e.node.to_value() {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().parse::<f64>().is_ok() => s.trim().parse::<f64>().ok(),
        Value::Null => None,
        other => {
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{key}` must be a number, found `{other}`"),
                )
                .at(Some(e.node.span())),
            );
            None
        }
    }
}

fn add_passthrough(r: &mut Reader, key: &str, value: Value, reason: &str, span: Span) {
    let mut pt =
        r.ir.get("passthrough")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
    if let Some(m) = pt.as_object_mut() {
        m.insert(format!("{}.{key}", FW.name()), value);
    }
    r.ir["passthrough"] = pt;
    r.warn(
        Diagnostic::info(
            "not-expressible",
            format!("`{key}` is kept but has no IR field: {reason}"),
        )
        .at(Some(span)),
    );
}

fn derived(from: &str, rule: impl Into<String>) -> Origin {
    Origin::Derived {
        from: vec![from.to_string()],
        rule: rule.into(),
    }
}

fn default_origin(note: impl Into<String>) -> Origin {
    let d = data::defaults(FW);
    Origin::Default {
        framework: d.framework.clone(),
        version: d.version.clone(),
        note: note.into(),
    }
}

// ------------------------------------------------------------------- model

fn read_model(r: &mut Reader) -> Result<Option<ModelInfo>, ReadError> {
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
    let (module, mut method, allowed_dims): (String, String, Vec<String>) = match (
        builder, size_free,
    ) {
        (Some(b), _) => (b.module.clone(), b.method.clone(), Vec::new()),
        (None, Some(c)) => (c.module.clone(), c.method.clone(), c.args.clone()),
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
    if method == "qlora" {
        r.set("quantization.base_weights", json!("nf4"), origin.clone());
    }
    let lora = method != "full";
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
                    method = "qlora".into();
                    r.set_from("adapter.method", json!("qlora"), &key, span);
                    r.set_from("quantization.base_weights", json!("nf4"), &key, span);
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

fn read_tokenizer(r: &mut Reader, model: &ModelInfo) {
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

fn read_checkpointer(r: &mut Reader) {
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

// ------------------------------------------------------------------- datasets

fn read_datasets(r: &mut Reader) {
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
    let Some(spec) = t.dataset(&path) else {
        let known: Vec<&str> = t.c.dataset.iter().map(|d| d.component.as_str()).collect();
        let span = map.get("_component_").map(|e| e.node.span());
        let help = did_you_mean(&path, known.iter().copied())
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
    let s = |k: &str| map.get(k).and_then(|e| e.node.as_str()).map(str::to_string);
    let mut ds = serde_json::Map::new();
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
    // train_on_input: explicit, or the builder's own default.
    let toi = match map.get("train_on_input") {
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
    };
    let mut columns = serde_json::Map::new();
    match spec.format.as_str() {
        "chat_template" => {
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
            let roles: Vec<&str> = if toi.0 {
                vec!["system", "user", "assistant"]
            } else {
                vec!["assistant"]
            };
            ds.insert("roles_to_train".into(), json!(roles));
        }
        "completion" => {
            let col = s("column").unwrap_or_else(|| spec.column.clone());
            columns.insert("text".into(), json!(col));
        }
        _ => {}
    }
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
    if !columns.is_empty() {
        ds.insert("columns".into(), Value::Object(columns));
    }
    if spec.format != "completion" {
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
    Some(Value::Object(ds))
}

// ------------------------------------------------------------------- training keys

fn read_seed(r: &mut Reader) {
    let Some(e) = r.get("seed") else {
        return;
    };
    if e.node.is_null() {
        let span = e.key_span;
        r.set(
            "training.seed",
            json!(0),
            Origin::Derived {
                from: vec!["seed".into()],
                rule: super::RANDOM_SEED_RULE.into(),
            },
        );
        r.warn(
            Diagnostic::warning("random-seed", "`seed: null`: TorchTune draws a new random seed every run")
                .at(Some(span))
                .with_help("the run is not reproducible (LoRA init, dropout); tunebridge records seed 0 and ports it as a fixed seed"),
        );
    }
}

fn read_clip(r: &mut Reader) {
    let Some(e) = r.get("clip_grad_norm") else {
        return;
    };
    let span = Some(e.key_span);
    match e.node.to_value() {
        Value::Null => {}
        Value::Number(n) => r.set_from(
            "optimizer.max_grad_norm",
            json!(n.as_f64().unwrap_or(0.0)),
            "clip_grad_norm",
            span,
        ),
        Value::String(s) if s.trim() == "inf" => {
            r.set_from(
                "optimizer.max_grad_norm",
                json!(0.0),
                "clip_grad_norm",
                span,
            );
            r.warn(
                Diagnostic::info(
                    "clip-grad-norm",
                    "`clip_grad_norm: inf` logs the gradient norm without clipping",
                )
                .at(span),
            );
        }
        Value::String(s) if s.trim().parse::<f64>().is_ok() => r.set_from(
            "optimizer.max_grad_norm",
            json!(s.trim().parse::<f64>().unwrap_or(0.0)),
            "clip_grad_norm",
            span,
        ),
        other => {
            r.set(
                "optimizer.max_grad_norm",
                json!(0.0),
                r.origin_of("clip_grad_norm", span),
            );
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`clip_grad_norm` must be a number, null or 'inf', found `{other}`"),
                )
                .at(Some(e.node.span())),
            );
        }
    }
}

fn read_optimizer(r: &mut Reader) {
    let t = tables::get();
    let Some((map, path)) = component(r, "optimizer") else {
        return;
    };
    let Some(opt) = t.c.optimizer.iter().find(|o| o.component == path) else {
        let known: Vec<&str> = t.c.optimizer.iter().map(|o| o.component.as_str()).collect();
        unknown_component(r, "optimizer", &path, &known);
        return;
    };
    let fused = map.get("fused").map(|e| e.node.to_value()) == Some(json!(true));
    let name = if fused && !opt.fused_name.is_empty() {
        &opt.fused_name
    } else {
        &opt.name
    };
    let span = map.get("_component_").map(|e| e.key_span);
    r.set_from("optimizer.name", json!(name), "optimizer._component_", span);
    if map.contains_key("fused") {
        r.consume("optimizer.fused");
    }
    for (ir, arg, default) in [
        ("optimizer.lr", "lr", opt.defaults.get("lr")),
        (
            "optimizer.weight_decay",
            "weight_decay",
            opt.defaults.get("weight_decay"),
        ),
        ("optimizer.eps", "eps", opt.defaults.get("eps")),
    ] {
        if !opt.args.iter().any(|a| a == arg) {
            continue;
        }
        let key = format!("optimizer.{arg}");
        match map.get(arg) {
            Some(e) if !e.node.is_null() => {
                r.consume(&key);
                if let Some(v) = num_arg(r, &key, e) {
                    r.set_from(ir, json!(v), &key, Some(e.key_span));
                }
            }
            _ => {
                if let Some(d) = default {
                    r.set(
                        ir,
                        d.clone(),
                        default_origin(format!(
                            "{path} default {arg}={}",
                            crate::translate::report::compact(d)
                        )),
                    );
                }
            }
        }
    }
    if opt.args.iter().any(|a| a == "betas") {
        match map.get("betas").map(|e| (e.node.to_value(), e)) {
            Some((Value::Array(b), e)) if b.len() == 2 => {
                r.consume("optimizer.betas");
                for (i, ir) in ["optimizer.beta1", "optimizer.beta2"].iter().enumerate() {
                    let v = b[i]
                        .as_f64()
                        .or_else(|| b[i].as_str().and_then(|s| s.trim().parse().ok()));
                    match v {
                        Some(v) => r.set_from(ir, json!(v), "optimizer.betas", Some(e.key_span)),
                        None => r.warn(
                            Diagnostic::error(
                                "type-mismatch",
                                "`optimizer.betas` must be two numbers",
                            )
                            .at(Some(e.node.span())),
                        ),
                    }
                }
            }
            Some((_, e)) => {
                r.consume("optimizer.betas");
                r.warn(
                    Diagnostic::error(
                        "type-mismatch",
                        "`optimizer.betas` must be a pair [beta1, beta2]",
                    )
                    .at(Some(e.node.span())),
                );
            }
            None => {
                for (ir, k) in [("optimizer.beta1", "beta1"), ("optimizer.beta2", "beta2")] {
                    if let Some(d) = opt.defaults.get(k) {
                        r.set(
                            ir,
                            d.clone(),
                            default_origin(format!("{path} default betas")),
                        );
                    }
                }
            }
        }
    } else if opt.name == "sgd" {
        // No betas: keep the IR's Adam-shaped fields at their documented values.
        r.consume("optimizer.betas");
    }
    for (k, e) in map {
        let key = format!("optimizer.{k}");
        if k == "_component_" || k == "fused" || opt.args.contains(k) {
            continue;
        }
        r.consume(&key);
        add_passthrough(
            r,
            &key,
            e.node.to_value(),
            "an optimizer option with no IR field",
            e.key_span,
        );
    }
}

fn read_scheduler(r: &mut Reader, model: &ModelInfo) {
    let t = tables::get();
    if r.get("lr_scheduler").is_none_or(|e| e.node.is_null()) {
        r.consume("lr_scheduler");
        if model.method != "full" {
            r.warn(
                Diagnostic::error("missing-key", "`lr_scheduler` is missing: the LoRA recipes read `cfg.lr_scheduler`")
                    .with_help("add torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup with num_warmup_steps"),
            );
        }
        return;
    }
    let Some((map, path)) = component(r, "lr_scheduler") else {
        return;
    };
    let Some(sch) = t.c.lr_scheduler.iter().find(|s| s.component == path) else {
        let known: Vec<&str> =
            t.c.lr_scheduler
                .iter()
                .map(|s| s.component.as_str())
                .collect();
        unknown_component(r, "lr_scheduler", &path, &known);
        return;
    };
    let span = map.get("_component_").map(|e| e.key_span);
    let mut kind = sch.kind.clone();
    let mut warmup = 0u64;
    for (k, e) in map {
        let key = format!("lr_scheduler.{k}");
        match k.as_str() {
            "_component_" => {}
            "num_warmup_steps" => {
                r.consume(&key);
                match e.node.to_value().as_u64() {
                    Some(n) => {
                        warmup = n;
                        r.set_from("schedule.warmup_steps", json!(n), &key, Some(e.key_span));
                    }
                    None => r.warn(
                        Diagnostic::error(
                            "type-mismatch",
                            "`lr_scheduler.num_warmup_steps` must be an integer",
                        )
                        .at(Some(e.node.span())),
                    ),
                }
            }
            "num_cycles" if sch.defaults.contains_key("num_cycles") => {
                r.consume(&key);
                if let Some(v) = num_arg(r, &key, e) {
                    if v == 0.0 && kind == "cosine" {
                        kind = "zero_cycles".into();
                    } else {
                        r.set_from("schedule.num_cycles", json!(v), &key, Some(e.key_span));
                    }
                }
            }
            _ => unknown_arg(
                r,
                "lr_scheduler",
                k,
                e,
                &["num_warmup_steps", "num_cycles"],
                true,
            ),
        }
    }
    if !map.contains_key("num_warmup_steps") {
        r.warn(
            Diagnostic::error("missing-key", "`lr_scheduler.num_warmup_steps` is missing")
                .at(r.get("lr_scheduler").map(|e| e.key_span))
                .with_help("the scheduler takes warmup in optimizer steps; add num_warmup_steps: 0 for none"),
        );
    }
    if kind == "zero_cycles" {
        // Cosine with no cycle holds the peak LR after warmup.
        let k = if warmup > 0 {
            "constant_with_warmup"
        } else {
            "constant"
        };
        r.set(
            "schedule.kind",
            json!(k),
            derived(
                "lr_scheduler.num_cycles",
                "cosine with num_cycles 0 keeps the peak LR after warmup",
            ),
        );
    } else {
        r.set_from(
            "schedule.kind",
            json!(kind),
            "lr_scheduler._component_",
            span,
        );
    }
}

fn read_loss(r: &mut Reader) {
    let t = tables::get();
    let Some((map, path)) = component(r, "loss") else {
        return;
    };
    let Some(loss) = t.c.loss.iter().find(|l| l.component == path) else {
        let known: Vec<&str> = t.c.loss.iter().map(|l| l.component.as_str()).collect();
        unknown_component(r, "loss", &path, &known);
        return;
    };
    let span = map.get("_component_").map(|e| e.key_span);
    r.set_from("loss.kind", json!(loss.kind), "loss._component_", span);
    for (k, e) in map {
        let key = format!("loss.{k}");
        match k.as_str() {
            "_component_" => {}
            "num_output_chunks" => r.consume(&key),
            "ignore_index" => {
                r.consume(&key);
                if e.node.to_value() != json!(-100) {
                    r.warn(
                        Diagnostic::warning(
                            "not-expressible",
                            "`loss.ignore_index` is not -100; the IR masks labels with -100",
                        )
                        .at(Some(e.key_span)),
                    );
                }
            }
            _ => unknown_arg(
                r,
                "loss",
                k,
                e,
                &["num_output_chunks", "ignore_index"],
                false,
            ),
        }
    }
}

fn read_logger(r: &mut Reader) {
    let t = tables::get();
    let Some((map, path)) = component(r, "metric_logger") else {
        return;
    };
    let Some(logger) = t.c.metric_logger.iter().find(|l| l.component == path) else {
        let span = map.get("_component_").map(|e| e.node.span());
        r.warn(
            Diagnostic::warning("unknown-component", format!("metric logger `{path}` is not one tunebridge knows; logging.tracker stays none"))
                .at(span),
        );
        return;
    };
    let span = map.get("_component_").map(|e| e.key_span);
    r.set_from(
        "logging.tracker",
        json!(logger.tracker),
        "metric_logger._component_",
        span,
    );
    if !logger.project.is_empty() {
        if let Some(e) = map.get(&logger.project) {
            let key = format!("metric_logger.{}", logger.project);
            r.consume(&key);
            if let Some(p) = e.node.as_str() {
                r.set_from("logging.project", json!(p), &key, Some(e.key_span));
            }
        }
    }
}

fn read_resume(r: &mut Reader) {
    let Some(e) = r.get("resume_from_checkpoint") else {
        return;
    };
    r.consume("resume_from_checkpoint");
    match e.node.to_value() {
        Value::Bool(true) => {
            let out = r
                .value("output_dir")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            r.set(
                "checkpoint.resume_from",
                json!(out),
                derived(
                    "resume_from_checkpoint",
                    "TorchTune resumes from the newest epoch_N (and recipe_state) in output_dir",
                ),
            );
        }
        Value::Bool(false) | Value::Null => {}
        other => r.warn(
            Diagnostic::error(
                "type-mismatch",
                format!("`resume_from_checkpoint` must be True or False, found `{other}`"),
            )
            .at(Some(e.node.span())),
        ),
    }
}

fn read_parallel(r: &mut Reader, launch: &Option<launch::Launch>, model: &ModelInfo) {
    let t = tables::get();
    let dist_key = DISTRIBUTED_KEYS
        .iter()
        .find(|k| r.get(k).is_some_and(|e| !e.node.is_null()))
        .copied();
    let mut distributed = false;
    if let Some(l) = launch {
        let span = Some(Span::new(l.start, l.end));
        if let Some(n) = l.devices() {
            r.set_from("batch.devices", json!(n), "tune run --nproc_per_node", span);
        }
        if let Some(recipe) = t.c.recipe.iter().find(|x| x.name == l.recipe) {
            distributed = recipe.distributed;
            if !recipe.methods.contains(&model.method) {
                r.warn(
                    Diagnostic::warning(
                        "conflict",
                        format!(
                            "the header runs `{}`, but the model builder is a {} fine-tune",
                            l.recipe, model.method
                        ),
                    )
                    .at(span)
                    .with_help(format!(
                        "run it with `{}`",
                        t.recipe(&model.method, recipe.distributed).name
                    )),
                );
            }
        }
    }
    let devices = r
        .ir_value("batch.devices")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if distributed || dist_key.is_some() || devices > 1 {
        let from = match (launch, dist_key) {
            (Some(l), _) if distributed || devices > 1 => format!("tune run {}", l.recipe),
            (_, Some(k)) => k.to_string(),
            _ => "batch.devices".to_string(),
        };
        r.set(
            "parallel.strategy",
            json!("fsdp2"),
            derived(&from, "TorchTune's distributed recipes shard with FSDP2"),
        );
    }
}
