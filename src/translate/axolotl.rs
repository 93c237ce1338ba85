//! Axolotl YAML (target: Axolotl 0.18 schema) ⇄ IR.
//!
//! Simple keys come from `translators/axolotl/fields.toml`; this module handles what a table
//! cannot say: the adapter/quantisation pair, `lora_target_linear`, the dataset list, the
//! batch-size triple, warmup given as a ratio, precision flags, gradient checkpointing, the
//! fused LoRA kernels Axolotl turns on by itself, DeepSpeed and FSDP.

use super::emitter::{Emitter, Out};
use super::node::Node;
use super::reader::{Parsed, ReadError, Reader};
use super::report::Status;
use super::{data, families, yaml, yaml_out, Framework, WriteOptions, Written};
use crate::diag::{Diagnostic, Source};
use crate::ir::{Origin, Resolved};
use serde_json::{json, Value};

const FW: Framework = Framework::Axolotl;

/// The four switches of Axolotl's fused LoRA kernels (auto-enabled when unset).
const KERNEL_KEYS: [&str; 4] = [
    "lora_mlp_kernel",
    "lora_qkv_kernel",
    "lora_o_kernel",
    "lora_embedding_kernel",
];

/// Dataset keys read per entry; anything else in an entry is reported.
const DATASET_KEYS: [&str; 15] = [
    "path",
    "type",
    "ds_type",
    "data_files",
    "split",
    "name",
    "field",
    "field_messages",
    "roles_to_train",
    "chat_template",
    "message_property_mappings",
    "train_on_eos",
    "conversation",
    "revision",
    "trust_remote_code",
];

pub fn read(source: &Source) -> Result<Parsed, ReadError> {
    let root = yaml::parse(source).map_err(ReadError::Syntax)?;
    if root.as_map().is_none() {
        return Err(ReadError::Syntax(
            Diagnostic::error("syntax", "an Axolotl config is a YAML mapping of keys")
                .at(Some(root.span()))
                .locate(source),
        ));
    }
    let mut r = Reader::new(source, &root, data::table(FW), data::defaults(FW));
    r.check_unsupported()?;
    r.apply_table();
    read_model(&mut r);
    read_adapter(&mut r);
    read_datasets(&mut r)?;
    read_batch(&mut r);
    read_warmup(&mut r);
    read_precision(&mut r);
    read_parallel(&mut r);
    r.finish(FW.name())
}

fn read_model(r: &mut Reader) {
    let base = r
        .value("base_model")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if r.value("tokenizer_config").is_none() && !base.is_empty() {
        r.set(
            "model.tokenizer",
            json!(base),
            Origin::Derived {
                from: vec!["model.base".into()],
                rule: "tokenizer = base_model".into(),
            },
        );
    }
    for key in [
        "base_model_config",
        "model_type",
        "tokenizer_type",
        "tokenizer_use_fast",
        "type_of_model",
    ] {
        r.consume(key);
    }
    match families::detect(&base) {
        Some(f) => r.set(
            "model.family",
            json!(f.name),
            Origin::Derived {
                from: vec!["model.base".into()],
                rule: format!("model name matches family {}", f.name),
            },
        ),
        None if !base.is_empty() => {
            let span = r.get("base_model").map(|e| e.node.span());
            r.warn(
                Diagnostic::warning("unknown-family", format!("cannot tell the model family of `{base}`"))
                    .at(span)
                    .with_help("TorchTune needs a family-specific builder; name the model by its hub id or point at a folder with config.json"),
            );
        }
        None => {}
    }
    let size = families::size_tag(&base);
    if !size.is_empty() {
        r.set(
            "model.size",
            json!(size),
            Origin::Derived {
                from: vec!["model.base".into()],
                rule: "parameter count in the model name".into(),
            },
        );
    }
    // Legacy attention switches map onto attn_implementation.
    for (key, attention) in [
        ("flash_attention", "flash_attention_2"),
        ("sdp_attention", "sdpa"),
        ("eager_attention", "eager"),
        ("flex_attention", "flex_attention"),
    ] {
        if let Some(e) = r.get(key) {
            r.consume(key);
            if e.node.to_value() == json!(true) {
                r.set_from("model.attention", json!(attention), key, Some(e.key_span));
            }
        }
    }
}

fn read_adapter(r: &mut Reader) {
    r.consume("adapter");
    let adapter = r
        .value("adapter")
        .and_then(|v| v.as_str().map(str::to_string));
    let span = r.get("adapter").map(|e| e.key_span);
    let four_bit = r.value("load_in_4bit") == Some(json!(true));
    let eight_bit = r.value("load_in_8bit") == Some(json!(true));
    for key in ["load_in_4bit", "load_in_8bit"] {
        if let Some(e) = r.get(key) {
            r.consume(key);
            if e.node.to_value() == json!(true) {
                let q = if key == "load_in_4bit" { "nf4" } else { "int8" };
                r.set_from("quantization.base_weights", json!(q), key, Some(e.key_span));
            }
        }
    }
    match adapter.as_deref() {
        Some("lora") if four_bit => r.set_from("adapter.method", json!("qlora"), "adapter", span),
        Some(m @ ("lora" | "qlora")) => r.set_from("adapter.method", json!(m), "adapter", span),
        Some(other) => {
            r.warn(
                Diagnostic::error(
                    "not-supported",
                    format!("adapter `{other}` is not supported"),
                )
                .at(span)
                .with_help("use lora or qlora, or remove `adapter` for a full fine-tune"),
            );
        }
        None => {}
    }
    let _ = eight_bit;
    if let Some(e) = r.get("bnb_config_kwargs") {
        r.consume("bnb_config_kwargs");
        let v = e.node.to_value();
        if let Some(dq) = v.get("bnb_4bit_use_double_quant") {
            r.set_from(
                "quantization.double_quant",
                dq.clone(),
                "bnb_config_kwargs.bnb_4bit_use_double_quant",
                Some(e.key_span),
            );
        }
        if let Some(qt) = v.get("bnb_4bit_quant_type").and_then(Value::as_str) {
            r.set_from(
                "quantization.base_weights",
                json!(qt),
                "bnb_config_kwargs.bnb_4bit_quant_type",
                Some(e.key_span),
            );
        }
    }
    // lora_target_linear adds every linear layer of the family to the targets.
    if let Some(e) = r.get("lora_target_linear") {
        r.consume("lora_target_linear");
        if e.node.to_value() == json!(true) {
            let family = r
                .ir_value("model.family")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let linear = families::by_name(&family)
                .map(|f| f.linear.clone())
                .unwrap_or_else(|| {
                    families::by_name("llama")
                        .map(|f| f.linear.clone())
                        .unwrap_or_default()
                });
            let mut targets: Vec<String> = r
                .ir_value("adapter.target_modules")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            for m in linear {
                if !targets.contains(&m) {
                    targets.push(m);
                }
            }
            r.set_from(
                "adapter.target_modules",
                json!(targets),
                "lora_target_linear",
                Some(e.key_span),
            );
            r.set_from(
                "adapter.target_all_linear",
                json!(true),
                "lora_target_linear",
                Some(e.key_span),
            );
        }
    }
    // Fused kernels: explicit false on all of them turns the auto-enable off.
    let given: Vec<(String, Value, crate::diag::Span)> = KERNEL_KEYS
        .iter()
        .filter_map(|k| {
            r.get(k)
                .map(|e| (k.to_string(), e.node.to_value(), e.key_span))
        })
        .collect();
    for (k, _, _) in &given {
        r.consume(k);
    }
    if let Some((k, _, span)) = given.first() {
        let any_on = given.iter().any(|(_, v, _)| *v == json!(true));
        let all_off = given.len() >= 3 && given.iter().all(|(_, v, _)| *v == json!(false));
        let fused = any_on || !all_off;
        r.set_from("adapter.fused_kernels", json!(fused), k, Some(*span));
    }
    // Axolotl only auto-enables the kernels for LoRA without dropout and bias.
    let method = r
        .ir_value("adapter.method")
        .and_then(Value::as_str)
        .unwrap_or("full")
        .to_string();
    let dropout = r
        .ir_value("adapter.dropout")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if given.is_empty()
        && (method == "full" || dropout > 0.0 || r.value("trust_remote_code") == Some(json!(true)))
    {
        r.set(
            "adapter.fused_kernels",
            json!(false),
            Origin::Derived {
                from: vec!["adapter.method".into(), "adapter.dropout".into()],
                rule: "Axolotl auto-enables fused LoRA kernels only for LoRA with dropout 0 and no remote code".into(),
            },
        );
    }
}

fn read_datasets(r: &mut Reader) -> Result<(), ReadError> {
    let Some(entry) = r.get("datasets") else {
        r.warn(
            Diagnostic::error(
                "missing-key",
                "no `datasets`: Axolotl needs at least one training dataset",
            )
            .with_help("add `datasets:` with a `path` and a `type`"),
        );
        return Ok(());
    };
    r.consume("datasets");
    r.consume("test_datasets");
    let Some(items) = entry.node.as_seq() else {
        r.warn(
            Diagnostic::error("type-mismatch", "`datasets` must be a list")
                .at(Some(entry.node.span())),
        );
        return Ok(());
    };
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
        let s = |k: &str| {
            map.get(k)
                .and_then(|e| e.node.as_str())
                .unwrap_or("")
                .to_string()
        };
        let mut ds = json!({"path": s("path"), "split": if s("split").is_empty() { "train".to_string() } else { s("split") }});
        if let Some(loader) = map.get("ds_type").and_then(|e| e.node.as_str()) {
            ds["loader"] = json!(loader);
        } else if let Some(ext) = std::path::Path::new(&s("path"))
            .extension()
            .and_then(|e| e.to_str())
        {
            let loader = match ext {
                "jsonl" => "json",
                e => e,
            };
            if ["json", "parquet", "csv", "arrow", "txt"].contains(&loader) {
                ds["loader"] = json!(loader);
            }
        }
        if let Some(files) = map.get("data_files") {
            ds["data_files"] = match files.node.to_value() {
                Value::String(s) => json!([s]),
                v => v,
            };
        }
        if !s("name").is_empty() {
            ds["name"] = json!(s("name"));
        }
        let type_node = map.get("type");
        match type_node.map(|e| &e.node) {
            Some(Node::Map { entries, .. }) => {
                // User-defined instruction format.
                ds["format"] = json!("instruct");
                let mut columns = serde_json::Map::new();
                let mut templates = serde_json::Map::new();
                for (k, e) in entries {
                    let v = e.node.to_value();
                    match k.strip_prefix("field_") {
                        Some(col) => {
                            columns.insert(col.to_string(), v);
                        }
                        None => {
                            templates.insert(k.clone(), v);
                        }
                    }
                }
                ds["columns"] = Value::Object(columns);
                ds["templates"] = Value::Object(templates);
            }
            Some(n) => {
                let t = n.as_str().unwrap_or("").to_string();
                let (base, style) = t.split_once(':').map_or((t.as_str(), ""), |(b, s)| (b, s));
                match base {
                    "alpaca" => {
                        ds["format"] = json!("alpaca");
                        ds["prompt_style"] = json!(if style.is_empty() {
                            "alpaca".to_string()
                        } else {
                            format!("alpaca:{style}")
                        });
                    }
                    "alpaca_chat" | "alpaca_instruct" | "alpaca_w_system" => {
                        ds["format"] = json!("alpaca");
                        ds["prompt_style"] = json!(t);
                    }
                    "chat_template" => {
                        ds["format"] = json!("chat_template");
                        if let Some(m) = map.get("field_messages").and_then(|e| e.node.as_str()) {
                            ds["columns"] = json!({"messages": m});
                        }
                        if let Some(roles) = map.get("roles_to_train") {
                            ds["roles_to_train"] = roles.node.to_value();
                        } else {
                            ds["roles_to_train"] = json!(["assistant"]);
                        }
                    }
                    "completion" => {
                        ds["format"] = json!("completion");
                        ds["columns"] = json!({"text": if s("field").is_empty() { "text".to_string() } else { s("field") }});
                    }
                    "input_output" => ds["format"] = json!("input_output"),
                    t if t.starts_with("sharegpt") => {
                        return Err(ReadError::NotSupported(
                            Diagnostic::error(
                                "not-supported",
                                "dataset type `sharegpt` was removed from Axolotl",
                            )
                            .at(Some(n.span()))
                            .with_help(
                                "use `type: chat_template` with `field_messages: conversations`",
                            )
                            .locate(r.source),
                        ));
                    }
                    "" => {
                        r.warn(
                            Diagnostic::error(
                                "not-supported",
                                "pre-tokenized datasets (no `type`) are not supported",
                            )
                            .at(Some(item.span()))
                            .with_help("give the dataset a `type` such as alpaca or chat_template"),
                        );
                    }
                    other => {
                        r.warn(
                            Diagnostic::error("not-supported", format!("dataset type `{other}` is not supported"))
                                .at(Some(n.span()))
                                .with_help("supported: alpaca, chat_template, completion, input_output, or a user-defined `type:` mapping"),
                        );
                    }
                }
            }
            None => r.warn(
                Diagnostic::error("missing-key", format!("`datasets[{i}]` has no `type`"))
                    .at(Some(item.span()))
                    .with_help("add `type: alpaca` (or chat_template, completion, input_output)"),
            ),
        }
        for (k, e) in map {
            if !DATASET_KEYS.contains(&k.as_str()) && !k.starts_with("field_") {
                r.warn(
                    Diagnostic::warning(
                        "unknown-key",
                        format!("unknown dataset key `datasets[{i}].{k}` is not read"),
                    )
                    .at(Some(e.key_span)),
                );
            }
        }
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

fn read_batch(r: &mut Reader) {
    // batch_size (discouraged) gives accumulation = batch_size / micro_batch_size.
    if let Some(e) = r.get("batch_size") {
        r.consume("batch_size");
        let total = e.node.to_value().as_u64().unwrap_or(0);
        let micro = r
            .ir_value("batch.micro_batch_per_device")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1);
        if r.get("gradient_accumulation_steps").is_some() {
            r.warn(
                Diagnostic::error(
                    "conflict",
                    "`batch_size` and `gradient_accumulation_steps` are both set",
                )
                .at(Some(e.key_span))
                .with_help(
                    "keep micro_batch_size and gradient_accumulation_steps; drop batch_size",
                ),
            );
        } else {
            r.set(
                "batch.grad_accum_steps",
                json!(total / micro),
                Origin::Derived {
                    from: vec!["batch_size".into(), "micro_batch_size".into()],
                    rule: format!("batch_size {total} / micro_batch_size {micro}"),
                },
            );
        }
    }
}

fn read_warmup(r: &mut Reader) {
    if let Some(e) = r.get("warmup_ratio") {
        r.consume("warmup_ratio");
        let ratio = e.node.to_value().as_f64().unwrap_or(0.0);
        r.set_from(
            "schedule.warmup_ratio",
            json!(ratio),
            "warmup_ratio",
            Some(e.key_span),
        );
        let max_steps = r
            .ir_value("training.max_steps")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if max_steps > 0 && r.get("warmup_steps").is_none() {
            // HF TrainingArguments.get_warmup_steps: ceil(ratio × total steps).
            let steps = (ratio * max_steps as f64).ceil() as u64;
            r.set(
                "schedule.warmup_steps",
                json!(steps),
                Origin::Derived {
                    from: vec!["schedule.warmup_ratio".into(), "training.max_steps".into()],
                    rule: format!("ceil({ratio} × {max_steps})"),
                },
            );
        }
    }
}

fn read_precision(r: &mut Reader) {
    let flag = |r: &Reader, k: &str| r.value(k);
    let bf16 = flag(r, "bf16");
    let fp16 = flag(r, "fp16");
    let fp32 = flag(r, "float32");
    for k in ["bf16", "fp16", "float32", "bfloat16", "float16"] {
        r.consume(k);
    }
    let key_span = |r: &Reader, k: &str| r.get(k).map(|e| e.key_span);
    if fp16 == Some(json!(true)) {
        r.set_from(
            "precision.compute_dtype",
            json!("fp16"),
            "fp16",
            key_span(r, "fp16"),
        );
    } else if matches!(bf16, Some(Value::Bool(true))) || bf16 == Some(json!("auto")) {
        r.set_from(
            "precision.compute_dtype",
            json!("bf16"),
            "bf16",
            key_span(r, "bf16"),
        );
    } else if bf16 == Some(json!(false)) || fp32 == Some(json!(true)) {
        r.set_from(
            "precision.compute_dtype",
            json!("fp32"),
            "bf16",
            key_span(r, "bf16").or(key_span(r, "float32")),
        );
    }
    if r.value("bfloat16") == Some(json!(true)) {
        r.set_from(
            "precision.mode",
            json!("pure"),
            "bfloat16",
            key_span(r, "bfloat16"),
        );
        r.set_from(
            "precision.compute_dtype",
            json!("bf16"),
            "bfloat16",
            key_span(r, "bfloat16"),
        );
    }
    if let Some(e) = r.get("gradient_checkpointing") {
        r.consume("gradient_checkpointing");
        let gc = match e.node.to_value() {
            Value::Bool(true) => "on",
            Value::String(s) if s.starts_with("offload") => "offload",
            _ => "off",
        };
        r.set_from(
            "memory.gradient_checkpointing",
            json!(gc),
            "gradient_checkpointing",
            Some(e.key_span),
        );
    }
    r.consume("gradient_checkpointing_kwargs");
    r.consume("save_strategy");
    r.consume("save_safetensors");
    r.consume("eval_sample_packing");
    r.consume("pad_to_sequence_len");
    r.consume("use_wandb");
    if r.value("wandb_project").is_some() || r.value("use_wandb") == Some(json!(true)) {
        let span = r
            .get("wandb_project")
            .or(r.get("use_wandb"))
            .map(|e| e.key_span);
        r.set_from("logging.tracker", json!("wandb"), "wandb_project", span);
    }
    if r.value("use_tensorboard") == Some(json!(true)) {
        r.consume("use_tensorboard");
        r.set(
            "logging.tracker",
            json!("tensorboard"),
            Origin::explicit("use_tensorboard"),
        );
    }
}

fn read_parallel(r: &mut Reader) {
    if let Some(e) = r.get("deepspeed") {
        r.consume("deepspeed");
        let path = match e.node.to_value() {
            Value::String(s) => s,
            v => v.to_string(),
        };
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        let stage = ["zero3", "zero2", "zero1"]
            .iter()
            .find(|z| name.contains(*z))
            .map_or(0, |z| z[4..].parse::<u32>().unwrap_or(0));
        r.set_from(
            "parallel.strategy",
            json!("deepspeed"),
            "deepspeed",
            Some(e.key_span),
        );
        r.set_from(
            "parallel.deepspeed_config",
            json!(path),
            "deepspeed",
            Some(e.key_span),
        );
        r.set_from(
            "parallel.zero_stage",
            json!(stage),
            "deepspeed",
            Some(e.key_span),
        );
        if name.contains("offload") {
            r.set_from(
                "parallel.cpu_offload",
                json!(true),
                "deepspeed",
                Some(e.key_span),
            );
        }
    }
    let fsdp = r.get("fsdp_config");
    if let Some(e) = fsdp {
        r.consume("fsdp_config");
        r.consume("fsdp");
        r.consume("fsdp_version");
        let v = e.node.to_value();
        let version = r
            .value("fsdp_version")
            .or_else(|| v.get("fsdp_version").cloned())
            .or_else(|| v.get("version").cloned())
            .and_then(|v| v.as_u64())
            .unwrap_or(1);
        r.set_from(
            "parallel.strategy",
            json!(if version >= 2 { "fsdp2" } else { "fsdp1" }),
            "fsdp_config",
            Some(e.key_span),
        );
        let get = |k: &str| v.get(k).or_else(|| v.get(format!("fsdp_{k}"))).cloned();
        if let Some(Value::Bool(b)) = get("offload_params") {
            r.set_from(
                "parallel.cpu_offload",
                json!(b),
                "fsdp_config.offload_params",
                Some(e.key_span),
            );
        }
        if let Some(Value::Bool(b)) = get("reshard_after_forward") {
            r.set_from(
                "parallel.reshard_after_forward",
                json!(b),
                "fsdp_config.reshard_after_forward",
                Some(e.key_span),
            );
        }
        if get("activation_checkpointing") == Some(json!(true)) {
            r.set_from(
                "memory.gradient_checkpointing",
                json!("on"),
                "fsdp_config.activation_checkpointing",
                Some(e.key_span),
            );
        }
    }
}

// ---------------------------------------------------------------- writing

pub fn write(resolved: &Resolved, from: &str, opts: &WriteOptions) -> Written {
    let spec = &resolved.spec;
    let mut em = Emitter::new(resolved, FW.name(), data::table(FW), data::defaults(FW));
    let full = spec.adapter.method == "full";

    // Adapter and quantisation come first: `adapter` decides which other keys apply.
    if full {
        em.cover(
            "adapter",
            Status::Defaulted,
            "",
            "not used by a full fine-tune",
        );
        em.cover("adapter.method", Status::Carried, "adapter", "");
        em.cover("quantization", Status::Defaulted, "", "");
    } else {
        let adapter = if spec.adapter.method == "qlora" {
            "qlora"
        } else {
            "lora"
        };
        em.put(
            "adapter",
            json!(adapter),
            &["adapter.method"],
            Status::Carried,
            "",
        );
        match spec.quantization.base_weights.as_str() {
            "nf4" => em.put(
                "load_in_4bit",
                json!(true),
                &["quantization.base_weights"],
                Status::Carried,
                "",
            ),
            "int8" => em.put(
                "load_in_8bit",
                json!(true),
                &["quantization.base_weights"],
                Status::Carried,
                "",
            ),
            "none" => em.cover("quantization.base_weights", Status::Carried, "adapter", ""),
            _ => {}
        }
        if spec.quantization.base_weights == "nf4" {
            // Axolotl's built-in QLoRA config is NF4 + double quant, block size 64.
            let dq = spec.quantization.double_quant;
            if dq {
                em.cover(
                    "quantization.double_quant",
                    Status::Carried,
                    "load_in_4bit",
                    "",
                );
            } else {
                em.put(
                    "bnb_config_kwargs",
                    json!({"bnb_4bit_use_double_quant": false}),
                    &["quantization.double_quant"],
                    Status::Carried,
                    "",
                );
            }
        } else {
            em.cover("quantization.double_quant", Status::Defaulted, "", "");
        }
        if spec.adapter.target_all_linear {
            em.put(
                "lora_target_linear",
                json!(true),
                &["adapter.target_all_linear", "adapter.target_modules"],
                Status::Carried,
                "",
            );
        } else {
            em.cover(
                "adapter.target_all_linear",
                Status::Carried,
                "lora_target_modules",
                "",
            );
        }
        if !spec.adapter.fused_kernels {
            // Axolotl turns its fused LoRA kernels on by itself; they change numerics slightly.
            for k in KERNEL_KEYS {
                em.put(
                    k,
                    json!(false),
                    &["adapter.fused_kernels"],
                    Status::Carried,
                    "parity: Axolotl would auto-enable fused LoRA kernels",
                );
            }
        } else if opts.strict {
            em.cover(
                "adapter.fused_kernels",
                Status::Approximated,
                "",
                "--strict asks for reference numerics, but the source used fused kernels",
            );
        } else {
            em.cover("adapter.fused_kernels", Status::Carried, "", "");
        }
        if spec.adapter.bias != "none" {
            em.cover(
                "adapter.bias",
                Status::NotExpressible,
                "",
                "Axolotl has no LoRA bias setting",
            );
        }
        if spec.adapter.weight_dtype != "fp32" {
            em.cover(
                "adapter.weight_dtype",
                Status::Approximated,
                "",
                "PEFT under Axolotl keeps LoRA weights in fp32",
            );
        }
    }
    if spec.model.tokenizer != spec.model.base {
        em.put(
            "tokenizer_config",
            json!(spec.model.tokenizer),
            &["model.tokenizer"],
            Status::Carried,
            "",
        );
    } else {
        em.cover("model.tokenizer", Status::Carried, "base_model", "");
    }
    em.cover("model.family", Status::Carried, "base_model", "");
    em.cover("model.size", Status::Carried, "base_model", "");

    // Datasets.
    let datasets: Vec<Value> = spec
        .data
        .datasets
        .iter()
        .map(|d| {
            let mut m = serde_json::Map::new();
            m.insert("path".into(), json!(d.path));
            if !d.loader.is_empty() {
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
            match d.format.as_str() {
                "alpaca" => {
                    m.insert(
                        "type".into(),
                        json!(if d.prompt_style.is_empty() {
                            "alpaca".to_string()
                        } else {
                            d.prompt_style.clone()
                        }),
                    );
                }
                "chat_template" => {
                    m.insert("type".into(), json!("chat_template"));
                    if let Some(col) = d.columns.get("messages") {
                        m.insert("field_messages".into(), json!(col));
                    }
                    if !d.roles_to_train.is_empty() && d.roles_to_train != ["assistant"] {
                        m.insert("roles_to_train".into(), json!(d.roles_to_train));
                    }
                }
                "completion" => {
                    m.insert("type".into(), json!("completion"));
                    if let Some(col) = d.columns.get("text").filter(|c| *c != "text") {
                        m.insert("field".into(), json!(col));
                    }
                }
                "input_output" => {
                    m.insert("type".into(), json!("input_output"));
                }
                "instruct" => {
                    let mut t = serde_json::Map::new();
                    for (k, v) in &d.columns {
                        t.insert(format!("field_{k}"), json!(v));
                    }
                    for (k, v) in &d.templates {
                        t.insert(k.clone(), json!(v));
                    }
                    m.insert("type".into(), Value::Object(t));
                }
                other => {
                    m.insert("type".into(), json!(other));
                }
            }
            Value::Object(m)
        })
        .collect();
    em.put(
        "datasets",
        Value::Array(datasets),
        &["data.datasets"],
        Status::Carried,
        "",
    );
    for (i, d) in spec.data.datasets.iter().enumerate() {
        if !d.response_markers.is_empty() {
            em.cover(
                &format!("data.datasets.{i}.response_markers"),
                Status::Approximated,
                "train_on_inputs",
                "Axolotl masks prompts by format, not by marker strings",
            );
        }
        if d.prompt_style.starts_with("alpaca_chat_") || d.prompt_style == "alpaca_chat_template" {
            em.cover(
                &format!("data.datasets.{i}.prompt_style"),
                Status::Approximated,
                "type",
                "Axolotl's `alpaca` frames the prompt as plain text, not as a chat turn",
            );
        }
    }
    // Warmup: a ratio is written as a ratio when the source gave one.
    if spec.schedule.warmup_ratio > 0.0 && !resolved.provenance.is_explicit("schedule.warmup_steps")
    {
        em.put(
            "warmup_ratio",
            json!(spec.schedule.warmup_ratio),
            &["schedule.warmup_ratio", "schedule.warmup_steps"],
            Status::Carried,
            "",
        );
    } else {
        em.cover("schedule.warmup_ratio", Status::Carried, "warmup_steps", "");
    }
    // Precision.
    let (bf16, fp16) = match spec.precision.compute_dtype.as_str() {
        "bf16" => (true, false),
        "fp16" => (false, true),
        _ => (false, false),
    };
    if spec.precision.mode == "pure" && bf16 {
        em.put(
            "bfloat16",
            json!(true),
            &["precision.mode"],
            Status::Carried,
            "whole model in bf16, as TorchTune trains",
        );
    }
    em.put(
        "bf16",
        json!(bf16),
        &["precision.compute_dtype"],
        Status::Carried,
        "",
    );
    em.put(
        "fp16",
        json!(fp16),
        &["precision.compute_dtype"],
        Status::Carried,
        "",
    );
    let gc = match spec.memory.gradient_checkpointing.as_str() {
        "on" => json!(true),
        "offload" => json!("offload"),
        _ => json!(false),
    };
    em.put(
        "gradient_checkpointing",
        gc,
        &["memory.gradient_checkpointing"],
        Status::Carried,
        "",
    );
    // Parallelism.
    match spec.parallel.strategy.as_str() {
        "deepspeed" => {
            let path = if spec.parallel.deepspeed_config.is_empty() {
                format!(
                    "deepspeed_configs/zero{}{}.json",
                    spec.parallel.zero_stage.max(1),
                    if spec.parallel.cpu_offload {
                        "_bf16_cpuoffload_all"
                    } else {
                        ""
                    }
                )
            } else {
                spec.parallel.deepspeed_config.clone()
            };
            em.put(
                "deepspeed",
                json!(path),
                &[
                    "parallel.strategy",
                    "parallel.deepspeed_config",
                    "parallel.zero_stage",
                    "parallel.cpu_offload",
                ],
                Status::Carried,
                "",
            );
            em.cover("parallel.reshard_after_forward", Status::Defaulted, "", "");
        }
        "fsdp1" | "fsdp2" => {
            let version = if spec.parallel.strategy == "fsdp2" {
                2
            } else {
                1
            };
            let mut cfg = serde_json::Map::new();
            cfg.insert("fsdp_version".into(), json!(version));
            cfg.insert("offload_params".into(), json!(spec.parallel.cpu_offload));
            cfg.insert(
                "reshard_after_forward".into(),
                json!(spec.parallel.reshard_after_forward),
            );
            cfg.insert("auto_wrap_policy".into(), json!("TRANSFORMER_BASED_WRAP"));
            cfg.insert("state_dict_type".into(), json!("FULL_STATE_DICT"));
            em.put(
                "fsdp_config",
                Value::Object(cfg),
                &[
                    "parallel.strategy",
                    "parallel.cpu_offload",
                    "parallel.reshard_after_forward",
                ],
                Status::Carried,
                "",
            );
            em.cover("parallel.zero_stage", Status::Defaulted, "", "");
        }
        _ => {
            // Single device or plain DDP: Axolotl picks DDP itself under a multi-GPU launcher.
            em.cover("parallel", Status::Carried, "", "");
        }
    }
    if spec.batch.devices > 1 {
        // An Axolotl config does not record the GPU count: the launcher decides it.
        let note = format!(
            "Axolotl configs do not record the GPU count; launch on {} GPUs with the written command",
            spec.batch.devices
        );
        em.cover("batch.devices", Status::Approximated, "", &note);
        em.cover("batch.global_batch", Status::Approximated, "", &note);
        if spec.parallel.strategy == "ddp" {
            em.cover("parallel.strategy", Status::Approximated, "", &note);
        }
    }
    em.cover("batch.global_batch", Status::Carried, "", "");
    if spec.data.shuffle_seed != spec.training.seed && spec.data.shuffle {
        em.cover(
            "data.shuffle_seed",
            Status::NotExpressible,
            "",
            "Axolotl shuffles with `seed`; a separate data-order seed cannot be set",
        );
    } else {
        em.cover("data.shuffle_seed", Status::Carried, "seed", "");
    }
    if let Some(seed) = spec.adapter.init_seed {
        if seed != spec.training.seed {
            em.cover(
                "adapter.init_seed",
                Status::NotExpressible,
                "",
                "Axolotl does not seed LoRA init separately; pin it with lora_model_dir",
            );
        }
    }
    if spec.checkpoint.save_steps > 0 {
        em.put("save_strategy", json!("steps"), &[], Status::Carried, "");
    }
    if spec.logging.tracker == "wandb" && spec.logging.project.is_empty() {
        em.cover(
            "logging.tracker",
            Status::Approximated,
            "",
            "set wandb_project to log to Weights & Biases",
        );
    } else {
        em.cover("logging.tracker", Status::Carried, "wandb_project", "");
    }
    em.apply_table();
    // Passthrough keys of our own framework come back verbatim.
    let own = format!("{}.", FW.name());
    for (k, v) in &spec.passthrough {
        if let Some(key) = k.strip_prefix(&own) {
            em.put(key, v.clone(), &[], Status::Carried, "");
        }
    }
    let (outs, report) = em.finish(from, &opts.source_name);
    let text = render(&outs, from, &opts.source_name);
    Written {
        text,
        command: if spec.batch.devices > 1 {
            format!(
                "axolotl train {} --launcher torchrun -- --nproc_per_node={}",
                FW.default_file_name(),
                spec.batch.devices
            )
        } else {
            format!("axolotl train {}", FW.default_file_name())
        },
        report,
    }
}

fn render(outs: &[Out], from: &str, source: &str) -> String {
    let sections = yaml_out::render_sections(&Emitter::sectioned(outs));
    let env = minijinja::Environment::new();
    env.render_str(
        data::template(FW),
        minijinja::context! { sections => sections, from => from, source => source, file_name => FW.default_file_name() },
    )
    .expect("the built-in Axolotl template renders")
}
