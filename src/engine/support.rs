//! What the engine runs: every feature check on a spec, in one place, gathering every reason.
//!
//! A run calls [`ensure`] before it loads anything, and `tunebridge run --check` calls
//! [`check`], so the two cannot disagree. Each refusal ([`Unsupported`]) names the IR field as
//! provenance keys it (`optimizer.name`, `data.datasets.0.loader`), the value, and the values
//! the engine does run. Where a module converts an IR value for its own use (the schedule's
//! [`Kind::of`], the optimizer's [`OptimizerKind::of`], a dataset's loader and split, the Alpaca prompt strings, TorchTune's message
//! framing), this file asks that module rather than restating its list.
//!
//! What needs the weights is judged two ways ([`Architecture`]): a run reads the model's
//! `config.json` when it loads it (architecture, activation, RoPE type) and checks the LoRA
//! targets and the longest sample against the loaded model; `run --check` has no weights and
//! judges the architecture from `model.family` (`translators/families.toml`) and the base name
//! (mixture-of-experts and pre-quantised checkpoints).
//!
//! Left out: the presence of the weights, the tokenizer and the dataset files (a dry run
//! checks what the config asks for, not what this machine holds), and `--device`/`--dtype`,
//! which a run checks as it starts.

use super::data::files::{check_loader, check_split};
use super::data::format::{check_torchtune_family, AlpacaStrings};
use super::error::{EngineError, Result, Unsupported};
use super::flavour::Flavour;
use super::model::llama::ARCHITECTURES;
use super::optim::select::OptimizerKind;
use super::quant::int8;
use super::schedule::Kind;
use crate::ir::{BaseWeights, DatasetFormat, Method, Overlong, RunSpec};
use crate::translate::families;

/// How the model's architecture is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// A run: the model's `config.json` is read when the model loads, and refused there.
    FromConfigJson,
    /// `run --check`, without weights: from `model.family` and the base model's name.
    FromFamily,
}

/// Every feature `spec` uses that the engine does not run under `flavour`, in spec order.
/// Empty when the engine runs the whole spec.
pub fn check(spec: &RunSpec, flavour: Flavour, arch: Architecture) -> Vec<Unsupported> {
    let mut out = Vec::new();
    if arch == Architecture::FromFamily {
        out.extend(check_model(spec));
    }
    // Phi-4 under TorchTune: its tokenizer, whatever the dataset
    let tt_family = super::model::torchtune::check(&spec.model.family, flavour);
    let family_refused = tt_family.is_some();
    out.extend(tt_family);
    out.extend(super::model::gemma::check(
        &spec.model.family,
        &spec.model.base,
        flavour,
        arch == Architecture::FromFamily,
    ));
    out.extend(check_quantization(spec));
    out.extend(
        check_data(spec, flavour)
            .into_iter()
            // said once: the family's TorchTune tokenizer is refused above
            .filter(|u| !(family_refused && u.field == "model.family")),
    );
    out.extend(OptimizerKind::of(&spec.optimizer.name).err());
    out.extend(Kind::of(spec.schedule.kind).err());
    out
}

/// [`check`], as a run's error: every reason at once.
pub fn ensure(spec: &RunSpec, flavour: Flavour, arch: Architecture) -> Result<()> {
    let found = check(spec, flavour, arch);
    if found.is_empty() {
        Ok(())
    } else {
        Err(EngineError::UnsupportedFeatures(found))
    }
}

/// Whether the base weights are quantised (QLoRA): `adapter.method = qlora` or any
/// `quantization.base_weights`.
pub fn quantises_base(spec: &RunSpec) -> bool {
    spec.adapter.method == Method::Qlora || spec.quantization.base_weights != BaseWeights::None
}

/// The architecture, judged without weights: the family's Hugging Face `model_type` must be
/// one `model/llama.rs` implements, and the base must be a dense 16/32-bit checkpoint.
fn check_model(spec: &RunSpec) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let m = &spec.model;
    let implemented = ARCHITECTURES.join(", ");
    match families::by_name(&m.family) {
        None => out.push(Unsupported::new(
            "model.family",
            if m.family.is_empty() {
                "(unknown)"
            } else {
                &m.family
            },
            format!(
                "not a family of translators/families.toml; the engine implements {implemented} \
                 models (config.json model_type)"
            ),
        )),
        Some(f) if !ARCHITECTURES.contains(&f.hf_model_type.as_str()) => {
            out.push(Unsupported::new(
                "model.family",
                &m.family,
                format!(
                "a `{}` model; the engine implements {implemented} models (config.json model_type)",
                f.hf_model_type
            ),
            ))
        }
        Some(_) => {}
    }
    let base = m.base.to_ascii_lowercase();
    if ["mixtral", "moe", "-a3b", "-a22b"]
        .iter()
        .any(|p| base.contains(p))
    {
        out.push(Unsupported::new(
            "model.base",
            &m.base,
            format!(
                "a mixture-of-experts model; the engine implements dense {implemented} decoders"
            ),
        ));
    }
    // bitsandbytes NF4 checkpoints (`*-bnb-4bit`) load as they are (`Nf4Tensor::from_bnb`)
    if ["-awq", "gptq", "bnb-8bit", "int8"]
        .iter()
        .any(|p| base.contains(p))
    {
        out.push(Unsupported::new(
            "model.base",
            &m.base,
            "a pre-quantised checkpoint other than bitsandbytes NF4; the engine loads \
             16/32-bit safetensors (and quantises them to NF4 itself) or bitsandbytes NF4 \
             (`*-bnb-4bit`) checkpoints",
        ));
    }
    if ["bnb-4bit", "bnb-nf4"].iter().any(|p| base.contains(p))
        && spec.adapter.method == Method::Full
    {
        out.push(Unsupported::new(
            "adapter.method",
            Method::Full,
            format!(
                "`{}` holds 4-bit weights, which a full fine-tune cannot train",
                m.base
            ),
        ));
    }
    out
}

/// Quantised bases as the engine stores them, bitsandbytes-compatible, under LoRA adapters:
/// NF4 (QLoRA), block 64, with or without double quantisation; LLM.int8 with transformers'
/// defaults.
fn check_quantization(spec: &RunSpec) -> Vec<Unsupported> {
    let mut out = Vec::new();
    if !quantises_base(spec) {
        return out;
    }
    let q = &spec.quantization;
    if q.base_weights == BaseWeights::Fp4 {
        out.push(Unsupported::new(
            "quantization.base_weights",
            q.base_weights,
            "the engine quantises base weights as NF4 only",
        ));
    }
    if q.base_weights == BaseWeights::Int8 {
        // LLM.int8 as transformers configures it (quant/int8.rs); its other knobs are refused
        for (key, value) in &spec.passthrough {
            let Some(knob) = key.strip_prefix("axolotl.bnb_config_kwargs.llm_int8_") else {
                continue;
            };
            let default = match knob {
                "threshold" => value.as_f64() == Some(int8::DEFAULT_THRESHOLD),
                "has_fp16_weight" | "enable_fp32_cpu_offload" => value.as_bool() == Some(false),
                _ => false,
            };
            if !default {
                out.push(Unsupported::new(
                    format!("passthrough.{key}"),
                    value,
                    format!(
                        "the engine's LLM.int8 is bitsandbytes' with transformers' defaults \
                         (llm_int8_threshold {}, int8 weights only, nothing skipped but lm_head); \
                         drop the key",
                        int8::DEFAULT_THRESHOLD
                    ),
                ));
            }
        }
    }
    if q.base_weights != BaseWeights::Int8 && q.block_size != 64 {
        out.push(Unsupported::new(
            "quantization.block_size",
            q.block_size,
            "the engine's NF4 uses bitsandbytes' default block of 64",
        ));
    }
    if spec.adapter.method == Method::Full {
        out.push(Unsupported::new(
            "adapter.method",
            Method::Full,
            "a full fine-tune cannot train quantised base weights",
        ));
    }
    out
}

/// Packing, the overlong policy, and each dataset's loader, split, prompt strings and framing.
fn check_data(spec: &RunSpec, flavour: Flavour) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let d = &spec.data;
    if d.packing && flavour == Flavour::Axolotl {
        out.extend(super::data::multipack::check(spec));
    }
    if d.packing && flavour == Flavour::Unsloth {
        out.extend(super::data::trl_pack::check(d));
    }
    if d.packing && flavour == Flavour::TorchTune {
        if let Some(ds) = d
            .datasets
            .iter()
            .find(|ds| ds.format == DatasetFormat::Completion)
        {
            out.push(Unsupported::new(
                "data.packing",
                "true",
                format!(
                    "`{}` is a completion dataset, which TorchTune packs with \
                     split_across_pack=True; only whole-sample packing is implemented",
                    ds.path
                ),
            ));
        }
    }
    if matches!(d.overlong, Overlong::Split | Overlong::Raise) {
        out.push(Unsupported::new(
            "data.overlong",
            d.overlong,
            "the engine drops or truncates",
        ));
    }
    let mut framing = None;
    for (i, ds) in d.datasets.iter().enumerate() {
        let at = |u: Unsupported| Unsupported {
            field: u
                .field
                .replacen("data.datasets.", &format!("data.datasets.{i}."), 1),
            ..u
        };
        out.extend(check_loader(ds.loader).err().map(at));
        out.extend(check_split(ds).err().map(at));
        if matches!(ds.format, DatasetFormat::Alpaca | DatasetFormat::Instruct) {
            out.extend(
                AlpacaStrings::resolve(&ds.prompt_style, &ds.templates, flavour)
                    .err()
                    .map(at),
            );
        }
        let framed = matches!(
            ds.format,
            DatasetFormat::Alpaca | DatasetFormat::Instruct | DatasetFormat::ChatTemplate
        );
        if flavour == Flavour::TorchTune && framed && framing.is_none() {
            framing = check_torchtune_family(&spec.model.family).err();
        }
    }
    out.extend(framing);
    out
}

#[cfg(test)]
mod tests;
