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
//! - [`read()`] / [`write()`]: the translator pair. This file holds the entry points, the
//!   keys.toml data, the helpers both sides share and the output layout; the special cases
//!   are in `read.rs` (model, adapter, targets, fused kernels, batch), `read_run.rs`
//!   (schedule, precision, memory, loss, checkpoints, trackers, no-op and renamed keys) and
//!   `write.rs` (the writer).
//!
//! Every key is accounted for: mapped to the IR, dropped because its value is what Axolotl
//! does anyway (`keys.toml [noop]`), kept verbatim in `passthrough` with a reason
//! (`[[ignored]]`, `[[group]]`), refused (`[[unsupported]]`), or warned about as unknown.
//! Left out on purpose: RL trainers, reward models, vision towers (refused, exit 3).

mod datasets;
mod parallel;
mod read;
mod read_run;
#[cfg(test)]
mod tests;
mod write;

use super::emitter::{Emitter, Out};
use super::reader::{Parsed, ReadError, Reader};
use super::table::{Ignored, Kind, Table};
use super::{data, families, yaml, yaml_out, Framework, WriteOptions, Written};
use crate::diag::{Diagnostic, Source, Span};
use crate::ir::{BaseWeights, Method, Resolved, Strategy};
use indexmap::IndexMap;
use read::{
    derive_kernels, derive_shuffle_seed, read_adapter, read_batch, read_drop_last, read_flattening,
    read_model,
};
use read_run::{
    drop_noops, read_checkpoint, read_logging, read_loss, read_memory, read_precision,
    read_renamed, read_schedule,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use write::{
    write_adapter, write_loss, write_model, write_passthrough, write_precision, write_run,
    write_schedule,
};

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

fn ir_str(r: &Reader, path: &str) -> String {
    r.ir_value(path)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The linear layers "all linear" means for a family (Llama-style names when unknown).
fn family_linear(family: &str) -> Vec<String> {
    families::by_name(family)
        .or_else(|| families::by_name("llama"))
        .map(|f| f.linear.clone())
        .unwrap_or_default()
}

/// Whether Axolotl can run its fused LoRA kernels (and so auto-enables them).
fn kernels_possible(
    method: Method,
    base_weights: BaseWeights,
    remote_code: bool,
    strategy: Strategy,
) -> bool {
    let adapter = match method {
        Method::Lora => base_weights != BaseWeights::Int8,
        Method::Qlora => true,
        Method::Full => false,
    };
    adapter && !remote_code && strategy != Strategy::Fsdp1
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
