//! Axolotl YAML (target: Axolotl 0.18 schema, checked against the 0.19.0 wheel) ⇄ IR.
//!
//! Simple keys come from `translators/axolotl/fields.toml`; the data for everything else is in
//! `translators/axolotl/keys.toml`. This module handles what a table cannot say: the
//! adapter/quantisation pair, `special_tokens`, `lora_target_linear` and regex targets, the
//! batch-size triple, warmup given as a ratio, scheduler kwargs, precision flags, gradient
//! checkpointing and activation offloading, the loss plugins (Cut Cross Entropy, Liger), the
//! save cadence, trackers, and the fused LoRA kernels Axolotl turns on by itself. Dataset
//! lists are in [`datasets`], DeepSpeed and FSDP in [`parallel`].
//!
//! Every key is accounted for: mapped to the IR, dropped because its value is what Axolotl
//! does anyway (`keys.toml [noop]`), kept verbatim in `passthrough` with a reason
//! (`[[ignored]]`, `[[group]]`), refused (`[[unsupported]]`), or warned about as unknown.
//! Left out on purpose: RL trainers, reward models, vision towers (refused, exit 3).

mod datasets;
mod parallel;
#[cfg(test)]
mod tests;

use super::emitter::{values_equal, Emitter, Out};
use super::reader::{Parsed, ReadError, Reader};
use super::report::Status;
use super::table::{Ignored, Kind, Table};
use super::{data, families, yaml, yaml_out, Framework, WriteOptions, Written};
use crate::diag::{Diagnostic, Source, Span};
use crate::ir::{Origin, Resolved, RunSpec};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

const FW: Framework = Framework::Axolotl;

/// The four switches of Axolotl's fused LoRA kernels (auto-enabled when none is set).
const KERNEL_KEYS: [&str; 4] = [
    "lora_mlp_kernel",
    "lora_qkv_kernel",
    "lora_o_kernel",
    "lora_embedding_kernel",
];

/// Legacy attention switches and the `attn_implementation` each stands for
/// (schemas/config.py, deprecated in favour of attn_implementation).
const LEGACY_ATTENTION: [(&str, &str); 6] = [
    ("flash_attention", "flash_attention_2"),
    ("sdp_attention", "sdpa"),
    ("eager_attention", "eager"),
    ("flex_attention", "flex_attention"),
    ("xformers_attention", "xformers"),
    ("sage_attention", "sage"),
];

/// `translators/axolotl/keys.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// `chat_template` values Axolotl accepts (schemas/enums.py ChatTemplate).
    chat_templates: Vec<String>,
    section: Vec<SectionSpec>,
    /// key → values that ask for Axolotl's own default (`"*"` = any value).
    noop: IndexMap<String, Value>,
    datasets: DatasetKeys,
    plugins: Plugins,
    fsdp_layer_class: IndexMap<String, String>,
    deepspeed: IndexMap<String, DeepSpeedFile>,
    group: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionSpec {
    title: String,
    keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetKeys {
    /// `type:` spellings of the alpaca family, kept verbatim as the prompt style.
    alpaca_styles: Vec<String>,
    /// Entry keys with no IR field, kept per dataset.
    kept: Vec<String>,
    /// RL / reward dataset types (or their prefix), refused.
    rl_types: Vec<String>,
    /// Entry key → values that are Axolotl's own default.
    noop: IndexMap<String, Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plugins {
    cut_cross_entropy: String,
    liger: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeepSpeedFile {
    stage: u32,
    #[serde(default)]
    offload_params: bool,
    #[serde(default)]
    offload_optimizer: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    reason: String,
    keys: Vec<String>,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        toml::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/translators/axolotl/keys.toml"
        )))
        .unwrap_or_else(|e| panic!("built-in translators/axolotl/keys.toml is invalid: {e}"))
    })
}

/// fields.toml plus the schema's long tail from keys.toml `[[group]]` as `ignored` entries.
fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = data::table(FW).clone();
        for g in &keys().group {
            for k in &g.keys {
                let known = t.field.iter().any(|f| &f.key == k)
                    || t.ignored.iter().any(|i| &i.key == k)
                    || t.unsupported.iter().any(|u| &u.key == k);
                if !known {
                    t.ignored.push(Ignored {
                        key: k.clone(),
                        reason: g.reason.clone(),
                    });
                }
            }
        }
        t
    })
}

// ---------------------------------------------------------------- reading

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
    parallel::read(&mut r, keys());
    derive_kernels(&mut r, &kernels);
    derive_shuffle_seed(&mut r);
    drop_noops(&mut r);
    read_renamed(&mut r);
    r.finish(FW.name())
}

/// Keep a source value verbatim in `passthrough` (written back only to Axolotl) and say so.
fn keep(r: &mut Reader, key: &str, value: Value, span: Option<Span>, reason: &str) {
    if value.is_null() {
        return;
    }
    if !r.ir.get("passthrough").is_some_and(Value::is_object) {
        r.ir["passthrough"] = Value::Object(Map::new());
    }
    if let Some(m) = r.ir["passthrough"].as_object_mut() {
        m.insert(format!("{}.{key}", FW.name()), value);
    }
    r.warn(
        Diagnostic::info(
            "not-expressible",
            format!("`{key}` is kept but has no IR field: {reason}"),
        )
        .at(span),
    );
}

fn str_value(r: &Reader, key: &str) -> Option<String> {
    r.value(key).and_then(|v| v.as_str().map(str::to_string))
}

fn key_span(r: &Reader, key: &str) -> Option<Span> {
    r.get(key).map(|e| e.key_span)
}

fn read_model(r: &mut Reader) {
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
                rule: format!("model name matches family {}", f.name),
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
                Diagnostic::error("type-mismatch", format!("`chat_template: {}` is not one of Axolotl's templates", super::table::value_text(&t)))
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
struct KernelKeys(Vec<(String, Value, Span)>);

fn read_adapter(r: &mut Reader) -> Result<KernelKeys, ReadError> {
    r.consume("adapter");
    let adapter = r.value("adapter");
    let span = key_span(r, "adapter");
    let four_bit = r.value("load_in_4bit") == Some(json!(true));
    let eight_bit = r.value("load_in_8bit") == Some(json!(true));
    for (key, q) in [("load_in_4bit", "nf4"), ("load_in_8bit", "int8")] {
        if let Some(e) = r.get(key) {
            r.consume(key);
            if e.node.to_value() == json!(true) {
                r.set_from("quantization.base_weights", json!(q), key, Some(e.key_span));
            }
        }
    }
    match adapter.as_ref().and_then(Value::as_str) {
        Some("lora") if four_bit => r.set_from("adapter.method", json!("qlora"), "adapter", span),
        Some("lora") => r.set_from("adapter.method", json!("lora"), "adapter", span),
        Some("qlora") => {
            r.set_from("adapter.method", json!("qlora"), "adapter", span);
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

/// The linear layers "all linear" means for a family (Llama-style names when unknown).
fn family_linear(family: &str) -> Vec<String> {
    families::by_name(family)
        .or_else(|| families::by_name("llama"))
        .map(|f| f.linear.clone())
        .unwrap_or_default()
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
fn derive_kernels(r: &mut Reader, given: &KernelKeys) {
    let method = ir_str(r, "adapter.method");
    if method == "full" {
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
    let possible = kernels_possible(
        &method,
        &ir_str(r, "quantization.base_weights"),
        r.ir_value("model.trust_remote_code") == Some(&json!(true)),
        &ir_str(r, "parallel.strategy"),
    );
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
fn derive_shuffle_seed(r: &mut Reader) {
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

/// Whether Axolotl can run its fused LoRA kernels (and so auto-enables them).
fn kernels_possible(method: &str, base_weights: &str, remote_code: bool, strategy: &str) -> bool {
    matches!(method, "lora" | "qlora")
        && !(method == "lora" && base_weights == "int8")
        && !remote_code
        && strategy != "fsdp1"
}

fn ir_str(r: &Reader, path: &str) -> String {
    r.ir_value(path)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The last incomplete batch of an epoch: the multipack sampler always drops it
/// (utils/samplers/multipack.py, drop_last=True); without packing `dataloader_drop_last`
/// decides (HF default false).
fn read_drop_last(r: &mut Reader) {
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
fn read_flattening(r: &mut Reader) {
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
fn read_batch(r: &mut Reader) {
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

/// Warmup (steps or ratio, never both), the scheduler's kwargs and its floor.
fn read_schedule(r: &mut Reader) {
    let steps = r.get("warmup_steps").filter(|e| !e.node.is_null());
    let ratio = r.get("warmup_ratio").filter(|e| !e.node.is_null());
    r.consume("warmup_ratio");
    let max_steps = r
        .ir_value("training.max_steps")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // Axolotl's builder: int(ratio × total); a computed 1 becomes 2 (core/builders/base.py).
    let from_ratio = |ratio: f64, cap: Option<u64>| {
        let mut s = (ratio * max_steps as f64).floor() as u64;
        if let Some(c) = cap {
            s = s.min(c);
        }
        if s == 1 {
            2
        } else {
            s
        }
    };
    match (steps, ratio) {
        (Some(s), Some(q)) => {
            let truthy = |v: Value| v.as_f64().is_some_and(|f| f != 0.0);
            if truthy(s.node.to_value()) && truthy(q.node.to_value()) {
                r.warn(
                    Diagnostic::error("conflict", "`warmup_steps` and `warmup_ratio` are both set")
                        .at(Some(q.key_span))
                        .with_help(format!(
                            "Axolotl rejects this: keep one (warmup_steps is at line {})",
                            r.source.line_col(s.key_span.start).0
                        )),
                );
            }
        }
        (Some(_), None) => r.set(
            "schedule.warmup_ratio",
            json!(0.0),
            Origin::Derived {
                from: vec!["schedule.warmup_steps".into()],
                rule: "warmup given in steps".into(),
            },
        ),
        (None, Some(q)) => match super::table::coerce(Kind::Float, &q.node.to_value()) {
            Ok(v) => {
                let ratio = v.as_f64().unwrap_or(0.0);
                r.set_from(
                    "schedule.warmup_ratio",
                    json!(ratio),
                    "warmup_ratio",
                    Some(q.key_span),
                );
                if max_steps > 0 {
                    let s = from_ratio(ratio, None);
                    r.set(
                        "schedule.warmup_steps",
                        json!(s),
                        Origin::Derived {
                            from: vec!["schedule.warmup_ratio".into(), "training.max_steps".into()],
                            rule: format!("int({ratio} × max_steps {max_steps}) = {s}, as Axolotl's builder when max_steps ends the run"),
                        },
                    );
                }
            }
            Err(expected) => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`warmup_ratio` must be {expected}"),
                )
                .at(Some(q.node.span())),
            ),
        },
        (None, None) if max_steps > 0 => {
            let s = from_ratio(0.03, Some(100));
            r.set(
                "schedule.warmup_steps",
                json!(s),
                Origin::Derived {
                    from: vec!["training.max_steps".into()],
                    rule: format!(
                        "no warmup key: min(int(0.03 × max_steps {max_steps}), 100) = {s}"
                    ),
                },
            );
        }
        (None, None) => {}
    }
    // lr_scheduler_kwargs: num_cycles and the min-LR floor are IR; the rest is kept.
    if let Some(e) = r.get("lr_scheduler_kwargs") {
        if e.node.is_null() {
            r.consume("lr_scheduler_kwargs");
        }
        let kw = e.node.to_value();
        let lr = r
            .ir_value("optimizer.lr")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if let Some(c) = kw.get("num_cycles").and_then(Value::as_f64) {
            r.consume("lr_scheduler_kwargs.num_cycles");
            r.set_from(
                "schedule.num_cycles",
                json!(c),
                "lr_scheduler_kwargs.num_cycles",
                Some(e.key_span),
            );
        }
        if let Some(m) = kw.get("min_lr_rate").and_then(Value::as_f64) {
            r.consume("lr_scheduler_kwargs.min_lr_rate");
            r.set_from(
                "schedule.min_lr_ratio",
                json!(m),
                "lr_scheduler_kwargs.min_lr_rate",
                Some(e.key_span),
            );
        } else if let Some(m) = kw
            .get("min_lr")
            .and_then(Value::as_f64)
            .filter(|_| lr > 0.0)
        {
            r.consume("lr_scheduler_kwargs.min_lr");
            r.set(
                "schedule.min_lr_ratio",
                json!(m / lr),
                Origin::Derived {
                    from: vec!["lr_scheduler_kwargs.min_lr".into(), "optimizer.lr".into()],
                    rule: format!("min_lr {m} / learning_rate {lr}"),
                },
            );
        }
    }
}

/// bf16 / fp16 / tf32 and the load dtypes (utils/config resolve_dtype): Axolotl loads the
/// model in the training dtype, so every run is "pure" in the IR's terms.
fn read_precision(r: &mut Reader) {
    let bf16 = r.value("bf16");
    let fp16 = r.value("fp16") == Some(json!(true));
    let flag = |r: &Reader, k: &str| r.value(k) == Some(json!(true));
    let (bfloat16, float16, float32) =
        (flag(r, "bfloat16"), flag(r, "float16"), flag(r, "float32"));
    for k in ["bf16", "fp16", "bfloat16", "float16", "float32"] {
        r.consume(k);
    }
    let set = |r: &mut Reader, dtype: &str, key: &str| {
        let span = key_span(r, key);
        r.set_from("precision.compute_dtype", json!(dtype), key, span);
    };
    match &bf16 {
        Some(Value::Bool(true)) => set(r, "bf16", "bf16"),
        _ if fp16 => set(r, "fp16", "fp16"),
        Some(Value::String(s)) if s == "auto" => set(r, "bf16", "bf16"),
        Some(Value::Bool(false)) if !bfloat16 && !float16 => set(r, "fp32", "bf16"),
        Some(Value::Bool(false)) | None => {}
        Some(other) => {
            let span = r.get("bf16").map(|e| e.node.span());
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`bf16` must be true, false or auto, found `{other}`"),
                )
                .at(span),
            );
        }
    }
    if bfloat16 {
        set(r, "bf16", "bfloat16");
    } else if float16 {
        set(r, "fp16", "float16");
    } else if float32 && bf16.is_none() && !fp16 {
        set(r, "fp32", "float32");
    }
}

/// Gradient checkpointing and activation offloading (schemas/validation.py: `offload` is the
/// deprecated spelling of `gradient_checkpointing: true` + `activation_offloading: legacy`).
fn read_memory(r: &mut Reader) {
    if let Some(e) = r.get("gradient_checkpointing") {
        r.consume("gradient_checkpointing");
        let gc = match e.node.to_value() {
            Value::Bool(true) => Some("on"),
            Value::String(s) if s == "offload" => Some("offload"),
            Value::String(s) if s == "offload_disk" => Some("on"),
            Value::Bool(false) => Some("off"),
            Value::Null => None,
            other => {
                r.warn(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`gradient_checkpointing` must be true, false, offload or offload_disk, found `{other}`"),
                    )
                    .at(Some(e.node.span())),
                );
                None
            }
        };
        if let Some(gc) = gc {
            r.set_from(
                "memory.gradient_checkpointing",
                json!(gc),
                "gradient_checkpointing",
                Some(e.key_span),
            );
        }
        if e.node.as_str() == Some("offload_disk") {
            r.set_from(
                "memory.activation_offloading",
                json!(true),
                "gradient_checkpointing",
                Some(e.key_span),
            );
        }
    }
    if let Some(e) = r.get("activation_offloading") {
        r.consume("activation_offloading");
        match e.node.to_value() {
            Value::Bool(b) => r.set_from("memory.activation_offloading", json!(b), "activation_offloading", Some(e.key_span)),
            Value::String(s) if s == "legacy" => {
                // The old offloaded checkpointing: the IR's `offload`.
                r.set_from("memory.gradient_checkpointing", json!("offload"), "activation_offloading", Some(e.key_span));
            }
            Value::String(s) if s == "disk" || s == "hidden_states" => {
                r.set_from("memory.activation_offloading", json!(true), "activation_offloading", Some(e.key_span));
                r.warn(
                    Diagnostic::info(
                        "approximated",
                        format!("`activation_offloading: {s}` is read as activation offloading to CPU"),
                    )
                    .at(Some(e.key_span)),
                );
            }
            Value::Null => {}
            other => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`activation_offloading` must be true, false, legacy, disk or hidden_states, found `{other}`"),
                )
                .at(Some(e.node.span())),
            ),
        }
    }
}

/// Loss replacements: the Cut Cross Entropy plugin, Liger's fused linear cross entropy and
/// Axolotl's chunked cross entropy are `loss.kind`; other plugins are kept.
fn read_loss(r: &mut Reader) {
    let k = keys();
    let plugins: Vec<String> = r
        .value("plugins")
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let plugins_span = key_span(r, "plugins");
    r.consume("plugins");
    let cce_listed = plugins.contains(&k.plugins.cut_cross_entropy);
    let liger_listed = plugins.contains(&k.plugins.liger);
    let mut kinds: Vec<(&str, &str)> = Vec::new();
    // `cut_cross_entropy` defaults to true once the plugin is listed.
    r.consume("cut_cross_entropy");
    if cce_listed && r.value("cut_cross_entropy") != Some(json!(false)) {
        kinds.push(("cut_cross_entropy", "plugins"));
    }
    r.consume("liger_fused_linear_cross_entropy");
    if liger_listed && r.value("liger_fused_linear_cross_entropy") == Some(json!(true)) {
        kinds.push((
            "fused_linear_cross_entropy",
            "liger_fused_linear_cross_entropy",
        ));
    }
    r.consume("chunked_cross_entropy");
    if r.value("chunked_cross_entropy") == Some(json!(true)) {
        kinds.push(("chunked_cross_entropy", "chunked_cross_entropy"));
    }
    match kinds.as_slice() {
        [] => {}
        [(kind, key)] => {
            let span = key_span(r, key).or(plugins_span);
            r.set_from("loss.kind", json!(kind), key, span);
        }
        many => r.warn(
            Diagnostic::error(
                "conflict",
                format!(
                    "more than one cross-entropy replacement: {}",
                    many.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                ),
            )
            .at(plugins_span)
            .with_help("Axolotl allows at most one (cut_cross_entropy, chunked, Liger CE or FLCE)"),
        ),
    }
    // The Liger plugin stays listed while any of its other switches is on.
    let other_liger = r
        .root
        .as_map()
        .map(|m| {
            m.iter().any(|(key, e)| {
                key.starts_with("liger_")
                    && key != "liger_fused_linear_cross_entropy"
                    && e.node.to_value() == json!(true)
            })
        })
        .unwrap_or(false);
    let kept: Vec<String> = plugins
        .into_iter()
        .filter(|p| {
            !(*p == k.plugins.cut_cross_entropy && ir_str(r, "loss.kind") == "cut_cross_entropy"
                || *p == k.plugins.liger
                    && !other_liger
                    && ir_str(r, "loss.kind") == "fused_linear_cross_entropy")
        })
        .collect();
    if !kept.is_empty() {
        keep(
            r,
            "plugins",
            json!(kept),
            plugins_span,
            "Axolotl plugins other than the loss replacements",
        );
    }
}

/// Save cadence: steps, once per epoch (`saves_per_epoch: 1`, `save_strategy: epoch`), or
/// kept verbatim when the IR cannot say it.
fn read_checkpoint(r: &mut Reader) {
    let strategy = str_value(r, "save_strategy");
    let steps = r.get("save_steps").filter(|e| !e.node.is_null());
    for k in ["save_steps", "saves_per_epoch", "save_strategy"] {
        r.consume(k);
    }
    if let (Some(s), Some(e)) = (&strategy, steps) {
        if s != "steps" {
            r.warn(
                Diagnostic::error(
                    "conflict",
                    format!("`save_steps` with `save_strategy: {s}`"),
                )
                .at(Some(e.key_span))
                .with_help("Axolotl rejects this: set save_strategy: steps or remove save_steps"),
            );
        }
    }
    if let Some(e) = steps {
        let v = e.node.to_value();
        match v.as_f64() {
            Some(f) if f >= 1.0 && f.fract() == 0.0 => r.set_from(
                "checkpoint.save_steps",
                json!(f as u64),
                "save_steps",
                Some(e.key_span),
            ),
            Some(f) if f > 0.0 && f < 1.0 => keep(
                r,
                "save_steps",
                v,
                Some(e.key_span),
                "save cadence as a fraction of the total steps",
            ),
            _ => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`save_steps` must be a step count or a fraction below 1, found `{v}`"),
                )
                .at(Some(e.node.span())),
            ),
        }
        return;
    }
    if let Some(e) = r.get("saves_per_epoch").filter(|e| !e.node.is_null()) {
        match e.node.to_value().as_u64() {
            Some(1) => r.set_from(
                "checkpoint.save_steps",
                json!(0),
                "saves_per_epoch",
                Some(e.key_span),
            ),
            _ => keep(
                r,
                "saves_per_epoch",
                e.node.to_value(),
                Some(e.key_span),
                "checkpoint cadence as a fraction of an epoch",
            ),
        }
    }
    match strategy.as_deref() {
        None | Some("steps") => {}
        Some("epoch") => {
            let span = key_span(r, "save_strategy");
            r.set_from("checkpoint.save_steps", json!(0), "save_strategy", span);
        }
        Some(other) => {
            let span = key_span(r, "save_strategy");
            keep(
                r,
                "save_strategy",
                json!(other),
                span,
                "checkpoint policy the IR cannot say",
            );
        }
    }
}

/// Experiment trackers: W&B (`wandb_project` or `use_wandb`), TensorBoard, MLflow.
fn read_logging(r: &mut Reader) {
    for k in [
        "use_wandb",
        "wandb_project",
        "wandb_mode",
        "use_tensorboard",
        "use_mlflow",
        "mlflow_experiment_name",
    ] {
        r.consume(k);
    }
    let mode = str_value(r, "wandb_mode");
    let project = str_value(r, "wandb_project").filter(|p| !p.is_empty());
    let use_wandb = r.value("use_wandb") == Some(json!(true));
    let mut trackers: Vec<(&str, &str)> = Vec::new();
    if (project.is_some() || use_wandb) && mode.as_deref() != Some("disabled") {
        trackers.push((
            "wandb",
            if project.is_some() {
                "wandb_project"
            } else {
                "use_wandb"
            },
        ));
    }
    if r.value("use_tensorboard") == Some(json!(true)) {
        trackers.push(("tensorboard", "use_tensorboard"));
    }
    if r.value("use_mlflow") == Some(json!(true)) {
        trackers.push(("mlflow", "use_mlflow"));
    }
    if let Some((tracker, key)) = trackers.first().copied() {
        let span = key_span(r, key);
        r.set_from("logging.tracker", json!(tracker), key, span);
        let project_key = match tracker {
            "wandb" => "wandb_project",
            "mlflow" => "mlflow_experiment_name",
            _ => "",
        };
        if let Some(p) = str_value(r, project_key).filter(|p| !p.is_empty()) {
            let span = key_span(r, project_key);
            r.set_from("logging.project", json!(p), project_key, span);
        }
    }
    // The IR has one tracker: the others are kept for Axolotl.
    for (_, key) in trackers.iter().skip(1) {
        let span = key_span(r, key);
        keep(r, key, json!(true), span, "a second experiment tracker");
    }
    if let Some(m) = mode.filter(|m| m != "disabled") {
        let span = key_span(r, "wandb_mode");
        keep(r, "wandb_mode", json!(m), span, "Weights & Biases mode");
    }
    if trackers.first().map(|t| t.0) != Some("mlflow") {
        if let Some(p) = str_value(r, "mlflow_experiment_name") {
            let span = key_span(r, "mlflow_experiment_name");
            keep(
                r,
                "mlflow_experiment_name",
                json!(p),
                span,
                "MLflow experiment name",
            );
        }
    }
}

/// Drop keys whose value is what Axolotl does anyway (keys.toml `[noop]`).
fn drop_noops(r: &mut Reader) {
    for (key, values) in &keys().noop {
        let Some(e) = r.get(key) else { continue };
        let v = e.node.to_value();
        let hit = values == "*"
            || values
                .as_array()
                .is_some_and(|vs| vs.iter().any(|x| values_equal(x, &v)));
        if hit {
            r.consume(key);
        }
    }
    // Padding and eval packing follow sample_packing by default (validation.py).
    let packing = r.value("sample_packing") == Some(json!(true));
    for key in ["pad_to_sequence_len", "eval_sample_packing"] {
        if r.get(key)
            .is_some_and(|e| e.node.to_value() == json!(packing))
        {
            r.consume(key);
        }
    }
}

/// Deprecated spellings (fields.toml `[[renamed]]`): warn, then read as the new key.
fn read_renamed(r: &mut Reader) {
    for rn in &table().renamed {
        let Some(e) = r.root.lookup(&rn.from) else {
            continue;
        };
        r.consume(&rn.from);
        r.warn(
            Diagnostic::warning(
                "deprecated-key",
                format!("`{}` is deprecated; read as `{}`", rn.from, rn.to),
            )
            .at(Some(e.key_span))
            .with_help(format!("rename it to `{}`", rn.to)),
        );
        let reason = table()
            .ignored
            .iter()
            .find(|i| i.key == rn.to)
            .map(|i| i.reason.clone())
            .unwrap_or_else(|| "no IR field".into());
        keep(r, &rn.to, e.node.to_value(), Some(e.key_span), &reason);
    }
}

// ---------------------------------------------------------------- writing

pub fn write(resolved: &Resolved, from: &str, opts: &WriteOptions) -> Written {
    let spec = &resolved.spec;
    let mut em = Emitter::new(resolved, FW.name(), table(), data::defaults(FW));
    write_model(&mut em, spec);
    write_adapter(&mut em, spec, opts);
    datasets::write(&mut em, spec, keys());
    write_schedule(&mut em, resolved);
    write_precision(&mut em, spec);
    write_loss(&mut em, spec);
    parallel::write(&mut em, spec, keys());
    write_run(&mut em, spec);
    em.apply_table();
    write_passthrough(&mut em, spec);
    let (mut outs, report) = em.finish(from, &opts.source_name);
    integer_keys(&mut outs);
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

fn write_model(em: &mut Emitter, spec: &RunSpec) {
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
    if !spec.model.special_tokens.is_empty() {
        em.put(
            "special_tokens",
            json!(spec.model.special_tokens),
            &["model.special_tokens"],
            Status::Carried,
            "",
        );
    }
    let template = spec.model.chat_template.as_str();
    if keys().chat_templates.iter().any(|k| k == template) {
        if template == "tokenizer_default" {
            em.cover("model.chat_template", Status::Defaulted, "", "");
        } else {
            let comment = em.parity_comment("model.chat_template", &json!(template));
            em.put(
                "chat_template",
                json!(template),
                &["model.chat_template"],
                Status::Carried,
                &comment,
            );
        }
    } else if template != "none" {
        em.cover(
            "model.chat_template",
            Status::Approximated,
            "",
            &format!("Axolotl has no `{template}` template; the tokenizer's own template (tokenizer_default) frames the conversations"),
        );
    }
    if spec.model.chat_template == "none" {
        // Axolotl has no "no template": its default frames only chat_template datasets.
        let chats = spec
            .data
            .datasets
            .iter()
            .any(|d| d.format == "chat_template");
        let (status, note) = if chats {
            (
                Status::NotExpressible,
                "Axolotl frames chat_template datasets with the tokenizer's template",
            )
        } else {
            (
                Status::Approximated,
                "Axolotl always has a chat template but applies it only to chat_template datasets; this run has none",
            )
        };
        em.cover("model.chat_template", status, "", note);
    }
}

/// Account for IR fields the run does not use (a full fine-tune's LoRA settings): those equal
/// to Axolotl's default are defaulted; the others cannot be said, and do not matter.
fn cover_unused(em: &mut Emitter, prefixes: &[&str], note: &str) {
    let paths: Vec<(String, Value)> = em
        .flat
        .iter()
        .filter(|(k, _)| {
            prefixes.iter().any(|p| k.starts_with(&format!("{p}."))) && !em.is_covered(k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (path, value) in paths {
        let same = em
            .defaults
            .get(&path)
            .is_some_and(|d| values_equal(d, &value));
        if same {
            em.cover(&path, Status::Defaulted, "", "");
        } else {
            em.cover(&path, Status::NotExpressible, "", note);
        }
    }
}

fn write_adapter(em: &mut Emitter, spec: &RunSpec, opts: &WriteOptions) {
    let a = &spec.adapter;
    if a.method == "full" {
        em.cover(
            "adapter.method",
            Status::Carried,
            "adapter",
            "no `adapter` key: a full fine-tune",
        );
        if !a.fused_kernels {
            em.cover(
                "adapter.fused_kernels",
                Status::Carried,
                "",
                "no LoRA kernels in a full fine-tune",
            );
        }
        cover_unused(
            em,
            &["adapter", "quantization"],
            "not used by a full fine-tune",
        );
        return;
    }
    em.put(
        "adapter",
        json!(if a.method == "qlora" { "qlora" } else { "lora" }),
        &["adapter.method"],
        Status::Carried,
        "",
    );
    let q = &spec.quantization;
    match q.base_weights.as_str() {
        "nf4" | "fp4" => {
            em.put(
                "load_in_4bit",
                json!(true),
                &["quantization.base_weights"],
                Status::Carried,
                "",
            );
            // Axolotl's built-in QLoRA config: NF4, double quant, block size 64.
            let mut kw = Map::new();
            if q.base_weights == "fp4" {
                kw.insert("bnb_4bit_quant_type".into(), json!("fp4"));
            }
            if !q.double_quant {
                kw.insert("bnb_4bit_use_double_quant".into(), json!(false));
            }
            if kw.is_empty() {
                em.cover(
                    "quantization.double_quant",
                    Status::Carried,
                    "load_in_4bit",
                    "",
                );
            } else {
                em.put(
                    "bnb_config_kwargs",
                    Value::Object(kw),
                    &["quantization.double_quant", "quantization.base_weights"],
                    Status::Carried,
                    "",
                );
            }
        }
        "int8" => {
            em.put(
                "load_in_8bit",
                json!(true),
                &["quantization.base_weights"],
                Status::Carried,
                "",
            );
            em.cover("quantization.double_quant", Status::Defaulted, "", "");
        }
        "none" => {
            em.cover("quantization.base_weights", Status::Carried, "adapter", "");
            em.cover("quantization.double_quant", Status::Defaulted, "", "");
        }
        _ => {}
    }
    if q.block_size != 64 && q.base_weights != "none" {
        em.cover(
            "quantization.block_size",
            Status::NotExpressible,
            "",
            "bitsandbytes in Axolotl quantises in blocks of 64",
        );
    }
    // Targets: `lora_target_linear` for "every linear layer", plus any extra module names.
    let linear = family_linear(&spec.model.family);
    let regex_kept = spec.passthrough.contains_key("axolotl.lora_target_modules");
    if a.target_all_linear {
        em.put(
            "lora_target_linear",
            json!(true),
            &["adapter.target_all_linear", "adapter.target_modules"],
            Status::Carried,
            "",
        );
        let extra: Vec<&String> = a
            .target_modules
            .iter()
            .filter(|m| !linear.contains(m))
            .collect();
        if !extra.is_empty() && !regex_kept {
            em.put(
                "lora_target_modules",
                json!(extra),
                &["adapter.target_modules"],
                Status::Carried,
                "",
            );
        }
    } else {
        em.cover(
            "adapter.target_all_linear",
            Status::Carried,
            "lora_target_modules",
            "",
        );
        if regex_kept {
            em.cover(
                "adapter.target_modules",
                Status::Carried,
                "lora_target_modules",
                "the source's regex",
            );
        }
    }
    // Fused kernels: Axolotl turns them on by itself when it can.
    let possible = kernels_possible(
        &a.method,
        &q.base_weights,
        spec.model.trust_remote_code,
        &spec.parallel.strategy,
    );
    let off = |em: &mut Emitter, status: Status, comment: &str| {
        for k in KERNEL_KEYS {
            em.put(k, json!(false), &["adapter.fused_kernels"], status, comment);
        }
    };
    match (a.fused_kernels, possible) {
        (true, true) if opts.strict => off(em, Status::Approximated, "--strict: reference LoRA path instead of the source's fused kernels"),
        (true, true) => em.cover("adapter.fused_kernels", Status::Carried, "", "Axolotl auto-enables its fused LoRA kernels"),
        (true, false) => em.cover(
            "adapter.fused_kernels",
            Status::Approximated,
            "",
            "Axolotl cannot run its fused LoRA kernels with 8-bit LoRA, remote code or FSDP1; the reference LoRA path is used",
        ),
        (false, true) => off(em, Status::Carried, "parity: Axolotl would auto-enable fused LoRA kernels"),
        (false, false) => em.cover("adapter.fused_kernels", Status::Carried, "", "Axolotl does not enable them here"),
    }
    if a.bias != "none" {
        em.cover(
            "adapter.bias",
            Status::NotExpressible,
            "",
            "Axolotl builds LoraConfig with bias=\"none\"",
        );
    }
    if a.weight_dtype != "fp32" {
        em.cover(
            "adapter.weight_dtype",
            Status::Approximated,
            "",
            "PEFT under Axolotl keeps LoRA weights in fp32",
        );
    }
}

/// Warmup as a ratio when the source gave one; scheduler kwargs; the min-LR floor.
fn write_schedule(em: &mut Emitter, resolved: &Resolved) {
    let s = &resolved.spec.schedule;
    let prov = &resolved.provenance;
    let axolotl_default = matches!(prov.get("schedule.warmup_ratio"), Some(Origin::Default { framework, .. }) if framework == FW.name());
    if s.warmup_ratio > 0.0 && !prov.is_explicit("schedule.warmup_steps") {
        if axolotl_default {
            // Axolotl's own default (3 %, capped at 100 steps) applies when neither key is set.
            em.cover("schedule.warmup_ratio", Status::Defaulted, "", "");
            em.cover("schedule.warmup_steps", Status::Defaulted, "", "");
        } else {
            em.put(
                "warmup_ratio",
                json!(s.warmup_ratio),
                &["schedule.warmup_ratio", "schedule.warmup_steps"],
                Status::Carried,
                "",
            );
        }
    } else {
        em.cover("schedule.warmup_ratio", Status::Carried, "warmup_steps", "");
    }
    let mut kwargs = Map::new();
    match s.kind.as_str() {
        "cosine_with_min_lr" | "cosine_warmup_with_min_lr" => {
            kwargs.insert("min_lr_rate".into(), json!(s.min_lr_ratio));
            em.cover(
                "schedule.min_lr_ratio",
                Status::Carried,
                "lr_scheduler_kwargs.min_lr_rate",
                "",
            );
        }
        "cosine" => {} // cosine_min_lr_ratio through the table
        _ if s.min_lr_ratio != 0.0 => em.cover(
            "schedule.min_lr_ratio",
            Status::NotExpressible,
            "",
            &format!("Axolotl's `{}` schedule has no LR floor", s.kind),
        ),
        _ => em.cover("schedule.min_lr_ratio", Status::Defaulted, "", ""),
    }
    let default_cycles = if s.kind == "cosine_with_restarts" {
        1.0
    } else {
        0.5
    };
    if matches!(
        s.kind.as_str(),
        "cosine" | "cosine_with_restarts" | "cosine_with_min_lr"
    ) && s.num_cycles != default_cycles
    {
        kwargs.insert("num_cycles".into(), json!(s.num_cycles));
        em.cover(
            "schedule.num_cycles",
            Status::Carried,
            "lr_scheduler_kwargs.num_cycles",
            "",
        );
    } else if s.num_cycles != 0.5
        && !matches!(
            s.kind.as_str(),
            "cosine" | "cosine_with_restarts" | "cosine_with_min_lr"
        )
    {
        em.cover(
            "schedule.num_cycles",
            Status::Defaulted,
            "",
            "not used by this schedule",
        );
    }
    if !kwargs.is_empty() {
        em.put(
            "lr_scheduler_kwargs",
            Value::Object(kwargs),
            &[],
            Status::Carried,
            "",
        );
    }
}

fn write_precision(em: &mut Emitter, spec: &RunSpec) {
    let p = &spec.precision;
    let (bf16, fp16) = match p.compute_dtype.as_str() {
        "bf16" => (true, false),
        "fp16" => (false, true),
        _ => (false, false),
    };
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
    if p.mode != "pure" && p.compute_dtype != "fp32" {
        em.cover(
            "precision.mode",
            Status::Approximated,
            "bf16",
            "Axolotl loads the model in the training dtype; fp32 master weights are not available (LoRA weights stay fp32)",
        );
    } else {
        em.cover("precision.mode", Status::Carried, "bf16", "");
    }
    let m = &spec.memory;
    // Under FSDP2, activation checkpointing belongs to fsdp_config (parallel::write).
    let fsdp = spec.parallel.strategy == "fsdp2" && m.gradient_checkpointing == "on";
    if !fsdp || m.gradient_checkpointing == "off" {
        let gc = match m.gradient_checkpointing.as_str() {
            "on" | "offload" => json!(true),
            _ => json!(false),
        };
        em.put(
            "gradient_checkpointing",
            gc,
            &["memory.gradient_checkpointing"],
            Status::Carried,
            "",
        );
    }
    if m.gradient_checkpointing == "offload" {
        em.put(
            "activation_offloading",
            json!("legacy"),
            &[
                "memory.gradient_checkpointing",
                "memory.activation_offloading",
            ],
            Status::Carried,
            "offloaded checkpoints (was gradient_checkpointing: offload)",
        );
    } else if m.activation_offloading {
        let status = if m.gradient_checkpointing == "off" {
            Status::Approximated
        } else {
            Status::Carried
        };
        em.put(
            "activation_offloading",
            json!(true),
            &["memory.activation_offloading"],
            status,
            "Axolotl offloads activations only with gradient checkpointing",
        );
    } else {
        em.cover("memory.activation_offloading", Status::Defaulted, "", "");
    }
}

fn write_loss(em: &mut Emitter, spec: &RunSpec) {
    let k = keys();
    match spec.loss.kind.as_str() {
        "cross_entropy" => em.cover("loss.kind", Status::Defaulted, "", ""),
        "chunked_cross_entropy" => em.put(
            "chunked_cross_entropy",
            json!(true),
            &["loss.kind"],
            Status::Carried,
            "",
        ),
        "cut_cross_entropy" => {
            em.put(
                "plugins",
                json!([k.plugins.cut_cross_entropy]),
                &["loss.kind"],
                Status::Carried,
                "",
            );
            em.put(
                "cut_cross_entropy",
                json!(true),
                &["loss.kind"],
                Status::Carried,
                "",
            );
        }
        "fused_linear_cross_entropy" => {
            em.put(
                "plugins",
                json!([k.plugins.liger]),
                &["loss.kind"],
                Status::Carried,
                "",
            );
            em.put(
                "liger_fused_linear_cross_entropy",
                json!(true),
                &["loss.kind"],
                Status::Carried,
                "",
            );
        }
        other => em.cover(
            "loss.kind",
            Status::Approximated,
            "",
            &format!("Axolotl has no `{other}`; its standard cross entropy is used"),
        ),
    }
}

/// Devices, data order, checkpoints, trackers.
fn write_run(em: &mut Emitter, spec: &RunSpec) {
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
    if spec.data.shuffle_seed != spec.training.seed {
        let note = if spec.data.shuffle {
            "Axolotl shuffles with `seed`; a separate data-order seed cannot be set"
        } else {
            "Axolotl's data-order seed is `seed` (unused here: no shuffling)"
        };
        em.cover("data.shuffle_seed", Status::NotExpressible, "", note);
    } else {
        em.cover("data.shuffle_seed", Status::Carried, "seed", "");
    }
    if let Some(seed) = spec.adapter.init_seed {
        if seed != spec.training.seed {
            em.cover(
                "adapter.init_seed",
                Status::NotExpressible,
                "",
                "Axolotl does not seed LoRA init; pin it with lora_model_dir",
            );
        }
    }
    if spec.checkpoint.save_steps > 0 {
        em.put(
            "save_strategy",
            json!("steps"),
            &["checkpoint.save_steps"],
            Status::Carried,
            "",
        );
        em.put(
            "save_steps",
            json!(spec.checkpoint.save_steps),
            &["checkpoint.save_steps"],
            Status::Carried,
            "",
        );
    } else {
        em.cover(
            "checkpoint.save_steps",
            Status::Carried,
            "",
            "no save_steps: Axolotl saves once per epoch",
        );
    }
    let l = &spec.logging;
    match l.tracker.as_str() {
        "wandb" if !l.project.is_empty() => em.put(
            "wandb_project",
            json!(l.project),
            &["logging.tracker", "logging.project"],
            Status::Carried,
            "",
        ),
        "wandb" => em.put(
            "use_wandb",
            json!(true),
            &["logging.tracker"],
            Status::Carried,
            "",
        ),
        "tensorboard" => em.put(
            "use_tensorboard",
            json!(true),
            &["logging.tracker"],
            Status::Carried,
            "",
        ),
        "mlflow" => {
            em.put(
                "use_mlflow",
                json!(true),
                &["logging.tracker"],
                Status::Carried,
                "",
            );
            if !l.project.is_empty() {
                em.put(
                    "mlflow_experiment_name",
                    json!(l.project),
                    &["logging.project"],
                    Status::Carried,
                    "",
                );
            }
        }
        "none" => em.cover("logging.tracker", Status::Defaulted, "", ""),
        other => em.cover(
            "logging.tracker",
            Status::NotExpressible,
            "",
            &format!("Axolotl has no `{other}` tracker"),
        ),
    }
    if !l.project.is_empty() && !matches!(l.tracker.as_str(), "wandb" | "mlflow") {
        em.cover(
            "logging.project",
            Status::NotExpressible,
            "",
            "no project setting for this tracker in Axolotl",
        );
    }
}

/// Passthrough keys of our own framework come back verbatim, merged into what was written
/// (`fsdp_config.sync_module_states` joins `fsdp_config`; `datasets.N.*` was merged by the
/// dataset writer; a kept `plugins` list is joined with the loss plugin).
fn write_passthrough(em: &mut Emitter, spec: &RunSpec) {
    let own = format!("{}.", FW.name());
    let mut tree = Map::new();
    for (k, v) in &spec.passthrough {
        let Some(key) = k.strip_prefix(&own) else {
            continue;
        };
        if key.starts_with("datasets.") {
            continue;
        }
        insert_dotted(&mut tree, key, v.clone());
    }
    for (key, value) in tree {
        let existing = em.out.iter_mut().find(|o| o.key == key);
        match existing {
            Some(o) => merge(&mut o.value, value),
            None => em.put(&key, value, &[], Status::Carried, ""),
        }
    }
}

/// Insert `a.b.c = v` into a nested map.
fn insert_dotted(tree: &mut Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            tree.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let child = tree
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Some(m) = child.as_object_mut() {
                insert_dotted(m, rest, value);
            }
        }
    }
}

/// Merge a kept value into a written one: maps key by key (written keys win), lists as a
/// union, anything else replaced by the kept value (the source's own spelling).
fn merge(into: &mut Value, kept: Value) {
    match (into, kept) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for v in b {
                if !a.contains(&v) {
                    a.push(v);
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Keys the schema types as integers are written without a fraction (`lora_alpha: 16`).
fn integer_keys(outs: &mut [Out]) {
    for o in outs.iter_mut() {
        let int = table()
            .field
            .iter()
            .any(|f| f.key == o.key && f.kind == Kind::Int);
        if let Some(f) = o
            .value
            .as_f64()
            .filter(|f| int && f.fract() == 0.0 && o.value.is_f64())
        {
            o.value = json!(f as i64);
        }
    }
}

/// Lay the keys out under the headings of keys.toml, in its order.
fn render(outs: &[Out], from: &str, source: &str) -> String {
    let spec = &keys().section;
    let place = |key: &str| -> (usize, usize) {
        let top = key.split('.').next().unwrap_or(key);
        spec.iter()
            .enumerate()
            .find_map(|(si, s)| s.keys.iter().position(|k| k == top).map(|ki| (si, ki)))
            .unwrap_or((spec.len() - 1, usize::MAX))
    };
    let mut sorted: Vec<&Out> = outs.iter().collect();
    sorted.sort_by_key(|o| place(&o.key)); // stable: unlisted keys keep their write order
    let mut groups: Vec<(String, Vec<Out>)> = Vec::new();
    for o in sorted {
        let title = spec[place(&o.key).0].title.clone();
        match groups.last_mut() {
            Some((t, items)) if *t == title => items.push(o.clone()),
            _ => groups.push((title, vec![o.clone()])),
        }
    }
    let sections = yaml_out::render_sections(&groups);
    let env = minijinja::Environment::new();
    env.render_str(
        data::template(FW),
        minijinja::context! { sections => sections, from => from, source => source, file_name => FW.default_file_name() },
    )
    .expect("the built-in Axolotl template renders")
}
