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

use super::read_data::read_datasets;
use super::read_model::{read_checkpointer, read_model, read_tokenizer};
use super::tables;
use super::{launch, FW};
use crate::diag::{did_you_mean, Diagnostic, Source, Span};
use crate::ir::{Method, Origin, ScheduleKind};
use crate::translate::node::{Entry, Node};
use crate::translate::reader::{Parsed, ReadError, Reader};
use crate::translate::{data, yaml};
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
pub(super) struct ModelInfo {
    pub(super) module: String,
    pub(super) method: Method,
    /// max_seq_len of the builder (sized) or its `max_seq_len` argument (size-free).
    pub(super) max_seq_len: Option<u64>,
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
pub(super) fn component<'a>(
    r: &mut Reader<'a>,
    key: &str,
) -> Option<(&'a IndexMap<String, Entry>, String)> {
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

pub(super) fn unknown_component(r: &mut Reader, key: &str, path: &str, known: &[&str]) {
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
pub(super) fn unknown_arg(
    r: &mut Reader,
    key: &str,
    arg: &str,
    e: &Entry,
    known: &[&str],
    error: bool,
) {
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

pub(super) fn bool_arg(r: &mut Reader, key: &str, e: &Entry) -> Option<bool> {
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

pub(super) fn num_arg(r: &mut Reader, key: &str, e: &Entry) -> Option<f64> {
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

pub(super) fn add_passthrough(r: &mut Reader, key: &str, value: Value, reason: &str, span: Span) {
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

pub(super) fn derived(from: &str, rule: impl Into<String>) -> Origin {
    Origin::Derived {
        from: vec![from.to_string()],
        rule: rule.into(),
    }
}

pub(super) fn default_origin(note: impl Into<String>) -> Origin {
    let d = data::defaults(FW);
    Origin::Default {
        framework: d.framework.clone(),
        version: d.version.clone(),
        note: note.into(),
    }
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
        if model.method != Method::Full {
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
    let kind = sch.kind;
    // Cosine with `num_cycles: 0` is read as a constant schedule below.
    let mut zero_cycles = false;
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
                    if v == 0.0 && kind == ScheduleKind::Cosine {
                        zero_cycles = true;
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
    if zero_cycles {
        // Cosine with no cycle holds the peak LR after warmup.
        let k = if warmup > 0 {
            ScheduleKind::ConstantWithWarmup
        } else {
            ScheduleKind::Constant
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
                        t.recipe(model.method, recipe.distributed).name
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
