//! Axolotl YAML → IR: the entry point, then the model (tokenizer, family, attention, chat template, `special_tokens`), the
//! adapter/quantisation pair with `bnb_config_kwargs`, LoRA targets (`lora_target_linear`,
//! regex `lora_target_modules`), the fused LoRA kernels Axolotl turns on by itself, the
//! shuffle seed, and the batch: the size triple, `dataloader_drop_last` and
//! `batch_flattening`.

use super::common::{family_linear, ir_str, keep, kernels_possible, key_span, str_value};
use super::datasets;
use super::eval::read_eval;
use super::keys::{keys, table, FW, KERNEL_KEYS, LEGACY_ATTENTION};
use super::parallel;
use super::read_run::{
    drop_noops, read_checkpoint, read_logging, read_loss, read_memory, read_precision,
    read_renamed, read_schedule,
};
use crate::diag::did_you_mean;
use crate::diag::Source;
use crate::diag::{Diagnostic, Span};
use crate::ir::Origin;
use crate::ir::{BaseWeights, Method, Strategy};
use crate::translate::data;
use crate::translate::families;
use crate::translate::reader::Parsed;
use crate::translate::reader::{ReadError, Reader};
use crate::translate::yaml;
use serde_json::{json, Map, Value};

pub fn read(source: &Source) -> Result<Parsed, ReadError> {
    let root = yaml::parse(source).map_err(ReadError::Syntax)?;
    if root.as_map().is_none() {
        return Err(ReadError::Syntax(
            Diagnostic::error("syntax", "an Axolotl config is a YAML mapping of keys")
                .at(Some(root.span()))
                .locate(source),
        ));
    }
    let mut r = Reader::new(source, &root, table(), data::defaults(FW));
    r.check_unsupported()?;
    r.apply_table();
    read_model(&mut r);
    let kernels = read_adapter(&mut r)?;
    datasets::read(&mut r, keys())?;
    read_flattening(&mut r);
    read_drop_last(&mut r);
    read_batch(&mut r);
    read_schedule(&mut r);
    read_precision(&mut r);
    read_memory(&mut r);
    read_loss(&mut r);
    read_checkpoint(&mut r);
    read_logging(&mut r);
    read_eval(&mut r);
    parallel::read(&mut r, keys());
    derive_kernels(&mut r, &kernels);
    derive_shuffle_seed(&mut r);
    drop_noops(&mut r);
    read_renamed(&mut r);
    r.finish(FW.name())
}

pub(super) fn read_model(r: &mut Reader) {
    let base = str_value(r, "base_model").unwrap_or_default();
    if r.value("tokenizer_config").is_none() && !base.is_empty() {
        r.set(
            "model.tokenizer",
            json!(base),
            Origin::Derived {
                from: vec!["model.base".into()],
                rule: "tokenizer_config unset: the tokenizer is loaded from base_model".into(),
            },
        );
    }
    if str_value(r, "base_model_config").is_some_and(|c| c == base) {
        r.consume("base_model_config");
    }
    match families::detect(&base) {
        Some(f) => r.set(
            "model.family",
            json!(f.name),
            Origin::Derived {
                from: vec!["model.base".into()],
                rule: format!("recognised as family {} (name, or the local folder's config.json and tokenizer)", f.name),
            },
        ),
        None if !base.is_empty() => {
            let span = key_span(r, "base_model");
            r.warn(
                Diagnostic::warning(
                    "unknown-family",
                    format!("cannot tell the model family of `{base}`"),
                )
                .at(span)
                .with_help(
                    "TorchTune needs a family-specific builder, and `lora_target_linear` is \
                     spelled out with Llama-style layer names; name the model by its hub id or \
                     point at a folder with config.json",
                ),
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
    // Legacy attention switches map onto attn_implementation; combining both is an error.
    for (key, attention) in LEGACY_ATTENTION {
        let Some(e) = r.get(key) else { continue };
        r.consume(key);
        if e.node.to_value() != json!(true) {
            continue;
        }
        if r.value("attn_implementation").is_some() {
            r.warn(
                Diagnostic::error(
                    "conflict",
                    format!("`{key}` and `attn_implementation` are both set"),
                )
                .at(Some(e.key_span))
                .with_help(format!(
                    "Axolotl rejects the combination; keep `attn_implementation: {attention}`"
                )),
            );
            continue;
        }
        r.set_from("model.attention", json!(attention), key, Some(e.key_span));
        r.warn(
            Diagnostic::info(
                "deprecated-key",
                format!("`{key}: true` is deprecated; read as `attn_implementation: {attention}`"),
            )
            .at(Some(e.key_span)),
        );
    }
    if let Some(e) = r.get("chat_template").filter(|e| !e.node.is_null()) {
        let t = e.node.to_value();
        let known = t.as_str().is_some_and(|t| {
            keys().chat_templates.iter().any(|k| k == t)
                || t.starts_with("tokenizer_default_fallback_")
        });
        if !known {
            r.warn(
                Diagnostic::error("type-mismatch", format!("`chat_template: {}` is not one of Axolotl's templates", crate::translate::table::value_text(&t)))
                    .at(Some(e.node.span()))
                    .with_help("use a name from axolotl/utils/schemas/enums.py (llama3, chatml, qwen_25, …), tokenizer_default, or chat_template_jinja for your own"),
            );
        }
    }
    read_special_tokens(r);
    if r.value("chat_template_jinja").is_some() && r.value("chat_template").is_none() {
        r.set(
            "model.chat_template",
            json!("jinja"),
            Origin::Derived {
                from: vec!["chat_template_jinja".into()],
                rule: "an inline template implies chat_template: jinja".into(),
            },
        );
    }
}

/// `special_tokens`: the named string tokens are IR; `additional_special_tokens` is kept.
fn read_special_tokens(r: &mut Reader) {
    let Some(e) = r.get("special_tokens") else {
        return;
    };
    let Some(map) = e.node.as_map() else {
        if e.node.is_null() {
            r.consume("special_tokens");
        } else {
            r.consume("special_tokens");
            r.warn(
                Diagnostic::error("type-mismatch", "`special_tokens` must be a mapping")
                    .at(Some(e.node.span()))
                    .with_help("write e.g. `special_tokens: {pad_token: \"<|end_of_text|>\"}`"),
            );
        }
        return;
    };
    let mut tokens = Map::new();
    for (k, entry) in map {
        if k == "additional_special_tokens" {
            continue; // kept through [[ignored]]
        }
        let full = format!("special_tokens.{k}");
        r.consume(&full);
        match entry.node.to_value() {
            Value::String(s) => {
                tokens.insert(k.clone(), json!(s));
            }
            Value::Null => {}
            other => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{full}` must be a token string, found `{other}`"),
                )
                .at(Some(entry.node.span())),
            ),
        }
    }
    if !tokens.is_empty() {
        r.set_from(
            "model.special_tokens",
            Value::Object(tokens),
            "special_tokens",
            Some(e.key_span),
        );
    }
}

/// What the source said about the fused kernels: the keys given and their values.
pub(super) struct KernelKeys(Vec<(String, Value, Span)>);

pub(super) fn read_adapter(r: &mut Reader) -> Result<KernelKeys, ReadError> {
    r.consume("adapter");
    let adapter = r.value("adapter");
    let span = key_span(r, "adapter");
    let four_bit = r.value("load_in_4bit") == Some(json!(true));
    let eight_bit = r.value("load_in_8bit") == Some(json!(true));
    for (key, q) in [
        ("load_in_4bit", BaseWeights::Nf4),
        ("load_in_8bit", BaseWeights::Int8),
    ] {
        if let Some(e) = r.get(key) {
            r.consume(key);
            if e.node.to_value() == json!(true) {
                r.set_from("quantization.base_weights", json!(q), key, Some(e.key_span));
            }
        }
    }
    match adapter.as_ref().and_then(Value::as_str) {
        Some("lora") if four_bit => {
            r.set_from("adapter.method", json!(Method::Qlora), "adapter", span)
        }
        Some("lora") => r.set_from("adapter.method", json!(Method::Lora), "adapter", span),
        Some("qlora") => {
            r.set_from("adapter.method", json!(Method::Qlora), "adapter", span);
            if eight_bit {
                r.warn(
                    Diagnostic::error("conflict", "`adapter: qlora` with `load_in_8bit: true`")
                        .at(key_span(r, "load_in_8bit"))
                        .with_help("QLoRA is 4-bit: set load_in_4bit: true and drop load_in_8bit"),
                );
            } else if !four_bit {
                r.warn(
                    Diagnostic::error("conflict", "`adapter: qlora` needs `load_in_4bit: true`")
                        .at(span)
                        .with_help("add `load_in_4bit: true`, or use `adapter: lora`"),
                );
            }
        }
        // A misspelt method is a typo, not an unsupported adapter.
        Some(other) if did_you_mean(other, ["lora", "qlora"]).is_some() => {
            let hint = did_you_mean(other, ["lora", "qlora"]).unwrap_or_default();
            return Err(ReadError::Invalid(vec![Diagnostic::error(
                "unknown-value",
                format!("unknown adapter.method `{other}` (from `adapter`)"),
            )
            .at(span)
            .with_help(format!(
                "{hint} expected one of {}: `adapter: lora` or `adapter: qlora`, no `adapter` for full",
                Method::SPELLINGS.join(", ")
            ))
            .locate(r.source)]));
        }
        Some(other) => {
            return Err(ReadError::NotSupported(
                Diagnostic::error("not-supported", format!("not supported: adapter `{other}`"))
                    .at(span)
                    .with_help(
                        "tunebridge ports LoRA, QLoRA and full fine-tunes: use lora or qlora, \
                         or remove `adapter` for a full fine-tune",
                    )
                    .locate(r.source),
            ))
        }
        None if four_bit || eight_bit => {
            let k = if four_bit {
                "load_in_4bit"
            } else {
                "load_in_8bit"
            };
            r.warn(
                Diagnostic::error("conflict", format!("`{k}: true` without an adapter"))
                    .at(key_span(r, k))
                    .with_help("quantised base weights are frozen: add `adapter: lora` (or qlora)"),
            );
        }
        None => {}
    }
    read_bnb_kwargs(r);
    read_targets(r);
    // The kernels are decided once parallelism is known (derive_kernels).
    let given = KERNEL_KEYS
        .iter()
        .filter_map(|k| {
            let e = r.get(k)?;
            Some((k.to_string(), e.node.to_value(), e.key_span))
        })
        .collect::<Vec<_>>();
    for k in KERNEL_KEYS {
        r.consume(k);
    }
    Ok(KernelKeys(
        given.into_iter().filter(|(_, v, _)| !v.is_null()).collect(),
    ))
}

/// `bnb_config_kwargs`: the 4-bit type and double quantisation are IR; the rest is kept.
fn read_bnb_kwargs(r: &mut Reader) {
    let Some(e) = r.get("bnb_config_kwargs") else {
        return;
    };
    if e.node.is_null() {
        r.consume("bnb_config_kwargs");
        return;
    }
    let v = e.node.to_value();
    if let Some(dq) = v
        .get("bnb_4bit_use_double_quant")
        .filter(|v| v.is_boolean())
    {
        r.consume("bnb_config_kwargs.bnb_4bit_use_double_quant");
        r.set_from(
            "quantization.double_quant",
            dq.clone(),
            "bnb_config_kwargs.bnb_4bit_use_double_quant",
            Some(e.key_span),
        );
    }
    if let Some(qt) = v.get("bnb_4bit_quant_type").and_then(Value::as_str) {
        r.consume("bnb_config_kwargs.bnb_4bit_quant_type");
        if r.ir_value("quantization.base_weights") == Some(&json!("nf4")) {
            r.set_from(
                "quantization.base_weights",
                json!(qt),
                "bnb_config_kwargs.bnb_4bit_quant_type",
                Some(e.key_span),
            );
        }
    }
}

/// `lora_target_modules` as a regex string, and `lora_target_linear`.
fn read_targets(r: &mut Reader) {
    let family = r
        .ir_value("model.family")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let linear = family_linear(&family);
    if let Some(e) = r.get("lora_target_modules") {
        if let Some(pattern) = e.node.as_str() {
            match resolve_target_regex(pattern, &linear) {
                Ok((names, all_layers)) => {
                    if !all_layers {
                        r.warn(
                            Diagnostic::warning(
                                "not-expressible",
                                "the `lora_target_modules` regex selects some layers only; the IR keeps the module names",
                            )
                            .at(Some(e.node.span()))
                            .with_help("the Axolotl output keeps the regex; other frameworks train these modules in every layer"),
                        );
                    }
                    if names.is_empty() {
                        r.warn(
                            Diagnostic::error(
                                "conflict",
                                format!("the `lora_target_modules` regex matches none of {}", linear.join(", ")),
                            )
                            .at(Some(e.node.span()))
                            .with_help("PEFT matches a string against the full module path, e.g. `.*\\.(q_proj|v_proj)`"),
                        );
                    }
                    r.set_from(
                        "adapter.target_modules",
                        json!(names),
                        "lora_target_modules",
                        Some(e.key_span),
                    );
                    keep(
                        r,
                        "lora_target_modules",
                        json!(pattern),
                        None,
                        "the regex itself (PEFT full match on module paths)",
                    );
                }
                Err(msg) => r.warn(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`lora_target_modules` is not a valid regex: {msg}"),
                    )
                    .at(Some(e.node.span())),
                ),
            }
        }
    }
    let Some(e) = r.get("lora_target_linear") else {
        return;
    };
    r.consume("lora_target_linear");
    if e.node.to_value() != json!(true) {
        return;
    }
    // Axolotl: the union of every Linear's last name segment (lm_head excluded) and the list.
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

/// Which of a family's linear layers a PEFT regex target selects: PEFT full-matches the
/// pattern against module paths (`model.layers.3.self_attn.q_proj`). Returns the names and
/// whether each matches in every layer tried.
fn resolve_target_regex(pattern: &str, linear: &[String]) -> Result<(Vec<String>, bool), String> {
    let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    let mut all_layers = true;
    for name in linear {
        let block = if name.contains("proj")
            && !name.contains("gate")
            && !name.contains("up")
            && !name.contains("down")
        {
            "self_attn"
        } else {
            "mlp"
        };
        let hits: Vec<bool> = [0, 1, 7, 15, 31, 47, 79]
            .iter()
            .map(|i| re.is_match(&format!("model.layers.{i}.{block}.{name}")) || re.is_match(name))
            .collect();
        if hits.iter().any(|h| *h) {
            names.push(name.clone());
            all_layers &= hits.iter().all(|h| *h);
        }
    }
    Ok((names, all_layers))
}

/// Fused LoRA kernels: explicit keys win; otherwise Axolotl turns them on for LoRA/QLoRA
/// unless the kernels cannot run (schemas/config.py check_auto_enable_lora_kernels).
pub(super) fn derive_kernels(r: &mut Reader, given: &KernelKeys) {
    let method = ir_str(r, "adapter.method").parse::<Method>();
    if method == Ok(Method::Full) {
        r.set(
            "adapter.fused_kernels",
            json!(false),
            Origin::Derived {
                from: vec!["adapter.method".into()],
                rule: "a full fine-tune has no LoRA kernels".into(),
            },
        );
        return;
    }
    if let Some((k, _, span)) = given.0.first() {
        // Any key set switches the auto-enable off: only the keys set to true are on.
        let on = given.0.iter().any(|(_, v, _)| *v == json!(true));
        r.set_from("adapter.fused_kernels", json!(on), k, Some(*span));
        return;
    }
    // A value outside its set is reported when the spec is built; no kernels until then.
    let possible = match (
        method,
        ir_str(r, "quantization.base_weights").parse::<BaseWeights>(),
        ir_str(r, "parallel.strategy").parse::<Strategy>(),
    ) {
        (Ok(method), Ok(base_weights), Ok(strategy)) => kernels_possible(
            method,
            base_weights,
            r.ir_value("model.trust_remote_code") == Some(&json!(true)),
            strategy,
        ),
        _ => false,
    };
    r.set(
        "adapter.fused_kernels",
        json!(possible),
        Origin::Derived {
            from: vec![
                "adapter.method".into(),
                "quantization.base_weights".into(),
                "model.trust_remote_code".into(),
                "parallel.strategy".into(),
            ],
            rule: if possible {
                "Axolotl auto-enables lora_mlp/qkv/o/embedding_kernel when none is set".into()
            } else {
                "Axolotl does not auto-enable the fused LoRA kernels with 8-bit LoRA, remote code or FSDP1".into()
            },
        },
    );
}

/// Axolotl shuffles the merged datasets with `seed` (utils/data/shared.py merge_datasets).
pub(super) fn derive_shuffle_seed(r: &mut Reader) {
    if let Some(seed) = r.ir_value("training.seed").cloned() {
        r.set(
            "data.shuffle_seed",
            seed,
            Origin::Derived {
                from: vec!["training.seed".into()],
                rule: "Axolotl shuffles the merged datasets with `seed`".into(),
            },
        );
    }
}

/// The last incomplete batch of an epoch: the multipack sampler always drops it
/// (utils/samplers/multipack.py, drop_last=True); without packing `dataloader_drop_last`
/// decides (HF default false).
pub(super) fn read_drop_last(r: &mut Reader) {
    let packing = r.ir_value("data.packing") == Some(&json!(true));
    let given = r.get("dataloader_drop_last").filter(|e| !e.node.is_null());
    r.consume("dataloader_drop_last");
    match given {
        Some(e) if packing => {
            let (v, span) = (e.node.to_value(), Some(e.key_span));
            keep(
                r,
                "dataloader_drop_last",
                v,
                span,
                "with sample_packing the multipack sampler drops the last batch anyway",
            );
        }
        Some(e) => match e.node.to_value() {
            Value::Bool(b) => r.set_from(
                "data.drop_last",
                json!(b),
                "dataloader_drop_last",
                Some(e.key_span),
            ),
            other => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`dataloader_drop_last` must be true or false, found `{other}`"),
                )
                .at(Some(e.node.span())),
            ),
        },
        None => {}
    }
    if packing {
        r.set(
            "data.drop_last",
            json!(true),
            Origin::Derived {
                from: vec!["data.packing".into()],
                rule:
                    "sample_packing: the multipack sampler drops each epoch's last incomplete batch"
                        .into(),
            },
        );
    }
}

/// `batch_flattening`: padding-free batches without packing; `auto` turns it on where it can
/// run (varlen attention, no packing, more than one sample per batch; validation.py).
pub(super) fn read_flattening(r: &mut Reader) {
    let Some(e) = r.get("batch_flattening") else {
        return;
    };
    r.consume("batch_flattening");
    let span = Some(e.key_span);
    match e.node.to_value() {
        Value::Bool(b) => r.set_from("data.padding_free", json!(b), "batch_flattening", span),
        Value::String(s) if s == "auto" => {
            let varlen = matches!(
                ir_str(r, "model.attention").as_str(),
                "flash_attention_2" | "flash_attention_3" | "flex_attention" | "xformers" | "sage"
            );
            let packing = r.ir_value("data.packing") == Some(&json!(true));
            let micro = r
                .ir_value("batch.micro_batch_per_device")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            let on = varlen && !packing && micro > 1;
            r.set(
                "data.padding_free",
                json!(on),
                Origin::Derived {
                    from: vec!["model.attention".into(), "data.packing".into(), "batch.micro_batch_per_device".into()],
                    rule: "batch_flattening: auto is on with varlen attention, no packing and micro batch > 1".into(),
                },
            );
        }
        Value::Null => {}
        other => r.warn(
            Diagnostic::error(
                "type-mismatch",
                format!("`batch_flattening` must be true, false or auto, found `{other}`"),
            )
            .at(Some(e.node.span())),
        ),
    }
}

/// The batch triple: Axolotl's validator wants two of micro_batch_size,
/// gradient_accumulation_steps and batch_size, and never accumulation with batch_size.
pub(super) fn read_batch(r: &mut Reader) {
    let micro = r.value("micro_batch_size").is_some();
    let accum = r.value("gradient_accumulation_steps").is_some();
    r.consume("batch_size");
    let batch = r.get("batch_size").filter(|e| !e.node.is_null());
    match batch {
        Some(e) if accum => r.warn(
            Diagnostic::error(
                "conflict",
                "`batch_size` and `gradient_accumulation_steps` are both set",
            )
            .at(Some(e.key_span))
            .with_help("Axolotl rejects this: keep micro_batch_size and gradient_accumulation_steps, drop batch_size"),
        ),
        Some(e) if !micro => r.warn(
            Diagnostic::error(
                "missing-key",
                "`batch_size` alone: at least two of micro_batch_size, gradient_accumulation_steps, batch_size must be set",
            )
            .at(Some(e.key_span))
            .with_help("Axolotl rejects this: add `micro_batch_size`"),
        ),
        Some(e) => {
            let total = e.node.to_value().as_u64().unwrap_or(0);
            let mb = r
                .ir_value("batch.micro_batch_per_device")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            if total % mb != 0 || total < mb {
                r.warn(
                    Diagnostic::warning(
                        "effective-batch",
                        format!("batch_size {total} is not a multiple of micro_batch_size {mb}; Axolotl floors the accumulation"),
                    )
                    .at(Some(e.key_span)),
                );
            }
            r.set(
                "batch.grad_accum_steps",
                json!((total / mb).max(1)),
                Origin::Derived {
                    from: vec!["batch_size".into(), "micro_batch_size".into()],
                    rule: format!("batch_size {total} // micro_batch_size {mb}"),
                },
            );
        }
        None if !(micro && accum) => {
            let given = if micro {
                "micro_batch_size"
            } else if accum {
                "gradient_accumulation_steps"
            } else {
                "neither micro_batch_size nor gradient_accumulation_steps"
            };
            let span = key_span(r, "micro_batch_size")
                .or(key_span(r, "gradient_accumulation_steps"))
                .or(key_span(r, "base_model"));
            r.warn(
                Diagnostic::warning(
                    "missing-key",
                    format!("only {given} is set; Axolotl takes 1 for the rest of the batch triple"),
                )
                .at(span)
                .with_help("set two of micro_batch_size, gradient_accumulation_steps and batch_size explicitly"),
            );
        }
        None => {}
    }
}
