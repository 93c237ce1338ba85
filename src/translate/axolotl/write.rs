//! IR → Axolotl YAML: the entry point and output layout, the model and chat template, the
//! adapter/quantisation pair, LoRA targets and fused kernels. The rest of the run is in
//! `write_run.rs`.

use super::common::{family_linear, kernels_possible};
use super::datasets;
use super::keys::{keys, table, FW, KERNEL_KEYS};
use super::parallel;
use super::write_run::{write_loss, write_passthrough, write_precision, write_run, write_schedule};
use crate::ir::{BaseWeights, Bias, DatasetFormat, Dtype, Method};
use crate::ir::{Resolved, RunSpec};
use crate::translate::data;
use crate::translate::emitter::Out;
use crate::translate::emitter::{values_equal, Emitter};
use crate::translate::framework::WriteOptions;
use crate::translate::framework::Written;
use crate::translate::report::Status;
use crate::translate::table::Kind;
use crate::translate::yaml_out;
use serde_json::{json, Map, Value};

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

pub(super) fn write_model(em: &mut Emitter, spec: &RunSpec) {
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
            .any(|d| d.format == DatasetFormat::ChatTemplate);
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

/// The adapter: method, quantization, targets and fused kernels; what Axolotl fixes (bias,
/// LoRA weight dtype) is reported.
pub(super) fn write_adapter(em: &mut Emitter, spec: &RunSpec, opts: &WriteOptions) {
    let a = &spec.adapter;
    if a.method == Method::Full {
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
        json!(if a.method == Method::Qlora {
            Method::Qlora
        } else {
            Method::Lora
        }),
        &["adapter.method"],
        Status::Carried,
        "",
    );
    write_quantization(em, spec);
    write_targets(em, spec);
    write_kernels(em, spec, opts);
    if a.bias != Bias::None {
        em.cover(
            "adapter.bias",
            Status::NotExpressible,
            "",
            "Axolotl builds LoraConfig with bias=\"none\"",
        );
    }
    if a.weight_dtype != Dtype::Fp32 {
        em.cover(
            "adapter.weight_dtype",
            Status::Approximated,
            "",
            "PEFT under Axolotl keeps LoRA weights in fp32",
        );
    }
}

/// The base weights' quantization: 4-bit (with bitsandbytes keywords) or 8-bit loading.
fn write_quantization(em: &mut Emitter, spec: &RunSpec) {
    let q = &spec.quantization;
    match q.base_weights {
        BaseWeights::Nf4 | BaseWeights::Fp4 => {
            em.put(
                "load_in_4bit",
                json!(true),
                &["quantization.base_weights"],
                Status::Carried,
                "",
            );
            // Axolotl's built-in QLoRA config: NF4, double quant, block size 64.
            let mut kw = Map::new();
            if q.base_weights == BaseWeights::Fp4 {
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
        BaseWeights::Int8 => {
            em.put(
                "load_in_8bit",
                json!(true),
                &["quantization.base_weights"],
                Status::Carried,
                "",
            );
            em.cover("quantization.double_quant", Status::Defaulted, "", "");
        }
        BaseWeights::None => {
            em.cover("quantization.base_weights", Status::Carried, "adapter", "");
            em.cover("quantization.double_quant", Status::Defaulted, "", "");
        }
    }
    if q.block_size != 64 && q.base_weights != BaseWeights::None {
        em.cover(
            "quantization.block_size",
            Status::NotExpressible,
            "",
            "bitsandbytes in Axolotl quantises in blocks of 64",
        );
    }
}

/// Targets: `lora_target_linear` for "every linear layer", plus any extra module names.
fn write_targets(em: &mut Emitter, spec: &RunSpec) {
    let a = &spec.adapter;
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
}

/// Fused kernels: Axolotl turns them on by itself when it can; written off where the source
/// had them off (or `--strict`).
fn write_kernels(em: &mut Emitter, spec: &RunSpec, opts: &WriteOptions) {
    let a = &spec.adapter;
    let q = &spec.quantization;
    // Fused kernels: Axolotl turns them on by itself when it can.
    let possible = kernels_possible(
        a.method,
        q.base_weights,
        spec.model.trust_remote_code,
        spec.parallel.strategy,
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
}
