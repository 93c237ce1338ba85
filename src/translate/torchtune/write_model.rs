//! Writing the model builder, tokenizer and checkpointer of a TorchTune config.

use super::common::{hf_targets, ATTN_MODULES, MLP_MODULES};
use super::tables::{self, Tables};
use super::write_common::{carried, json_path, number, read_config_json, written_dtype, Place};
use crate::diag::Diagnostic;
use crate::ir::RunSpec;
use crate::ir::{AdapterInit, BaseWeights, Bias, Method};
use crate::translate::emitter::{values_equal, Emitter};
use crate::translate::families;
use crate::translate::report::Status;
use serde_json::json;

/// The builder a spec is written with.
pub(super) struct Choice {
    pub(super) module: String,
    /// A size-free builder: architecture keywords are written (or passed through).
    pub(super) size_free: bool,
    pub(super) output_lora: bool,
    /// The output projection is the embedding matrix (no output LoRA possible).
    pub(super) tied: bool,
    pub(super) dora: bool,
    pub(super) model_type: String,
    /// The longest sequence the builder takes (sized builder), if known.
    pub(super) max_seq_len: Option<u64>,
}

// ------------------------------------------------------------------- model

/// The `model` builder: the module for the family, a sized builder (or a size-free one with
/// its dimensions), and the LoRA arguments; returns what the rest of the config needs.
pub(super) fn write_model(em: &mut Emitter, t: &Tables, spec: &RunSpec, base: &Place) -> Choice {
    let method = spec.adapter.method;
    let (module, stand_in_note, model_type) = pick_module(em, t, spec);
    // QLoRA on a module without qlora_ builders: its lora_ builder with quantize_base.
    let has_qlora = t
        .builders
        .iter()
        .any(|b| b.module == module && b.method == Method::Qlora);
    let (builder_method, quantize_arg) = match method {
        Method::Qlora if !has_qlora => (Method::Lora, true),
        m => (m, false),
    };
    let instruct = spec.model.base.to_ascii_lowercase().contains("instruct");
    let sized = if stand_in_note.is_some() {
        None
    } else if spec.model.size.is_empty() {
        t.only_size(&module, builder_method)
    } else {
        t.sized(&module, builder_method, &spec.model.size, instruct)
    };
    let mut choice = Choice {
        module: module.clone(),
        size_free: sized.is_none(),
        output_lora: false,
        tied: false,
        dora: false,
        model_type,
        max_seq_len: None,
    };
    match sized {
        Some(b) => {
            carried(
                em,
                "model._component_",
                json!(b.path()),
                &["model.size"],
                "",
            );
            choice.output_lora = b.output_lora;
            choice.tied = b.tied;
            choice.max_seq_len = Some(b.max_seq_len);
            choice.dora = b.dora;
            if b.size != spec.model.size {
                em.cover(
                    "model.size",
                    Status::Approximated,
                    "model._component_",
                    &format!(
                        "the size is not in the model name; {} is the only {module} size",
                        b.size
                    ),
                );
            }
        }
        None => {
            let comp = t
                .size_free(&module, method)
                .or_else(|| t.size_free("llama3", method));
            let Some(comp) = comp else {
                return choice;
            };
            choice.output_lora = comp.output_lora;
            choice.dora = comp.dora;
            carried(
                em,
                "model._component_",
                json!(comp.path()),
                &["model.size"],
                "",
            );
            write_dimensions(em, t, spec, base, comp);
        }
    }
    if method == Method::Full {
        cover_full(em, spec);
        return choice;
    }
    em.cover("adapter.method", Status::Carried, "model._component_", "");
    // A size-free LoRA builder has no qlora_ twin: it quantizes through quantize_base.
    write_lora(em, spec, &choice, quantize_arg || choice.size_free);
    choice
}

/// The builders' module for the family: its own, or a stand-in (reported) when 0.6.1 ships
/// none; with the tokenizer's model type. Returns (module, stand-in note, model type).
fn pick_module(em: &mut Emitter, t: &Tables, spec: &RunSpec) -> (String, Option<String>, String) {
    let family =
        families::by_name(&spec.model.family).or_else(|| families::detect(&spec.model.base));
    let wanted = family.map_or("unknown".to_string(), |f| f.torchtune_module.clone());
    // A family 0.6.1 does not ship is written as its stand-in, and said so.
    let (module, stand_in_note) = if t.has_module(&wanted) {
        (wanted.clone(), None)
    } else {
        match t.stand_in(&wanted) {
            Some(m) => (m.stand_in.clone(), Some(m.note.clone())),
            None => (
                "llama3".to_string(),
                Some(format!("TorchTune 0.6.1 has no `{wanted}` builders")),
            ),
        }
    };
    let model_type = families::all()
        .iter()
        .find(|f| f.torchtune_module == module)
        .map(|f| f.torchtune_model_type.clone())
        .unwrap_or_else(|| "LLAMA3".into());
    match &stand_in_note {
        Some(note) => {
            em.cover(
                "model.family",
                Status::NotExpressible,
                "model._component_",
                note,
            );
            em.warnings.push(
                Diagnostic::warning(
                    "not-expressible",
                    format!(
                        "no TorchTune 0.6.1 builder for family `{}`",
                        spec.model.family
                    ),
                )
                .with_help(note.clone()),
            );
        }
        None => {
            // The family the written builder reads back as (generic Llama → llama2 builders).
            let read_back = t.family_of_module(&module);
            if read_back != spec.model.family {
                em.cover(
                    "model.family",
                    Status::Approximated,
                    "model._component_",
                    &format!("TorchTune builds this architecture with its `{module}` builders"),
                );
            } else {
                em.cover("model.family", Status::Carried, "model._component_", "");
            }
        }
    }
    (module, stand_in_note, model_type)
}

/// A full fine-tune: adapter and quantization values equal to TorchTune's read back the same;
/// others cannot.
fn cover_full(em: &mut Emitter, spec: &RunSpec) {
    // No adapters: values equal to TorchTune's read back the same; others cannot.
    let flat = spec.flat();
    for (path, v) in flat
        .iter()
        .filter(|(p, _)| p.starts_with("adapter.") || p.starts_with("quantization."))
    {
        if path == "adapter.method" {
            continue;
        }
        match em.defaults.get(path) {
            Some(d) if values_equal(d, v) => em.cover(path, Status::Defaulted, "", ""),
            _ if path == "adapter.weight_dtype"
                && v.as_str() == Some(written_dtype(spec).as_str()) =>
            {
                em.cover(path, Status::Carried, "dtype", "")
            }
            _ => em.cover(
                path,
                Status::NotExpressible,
                "",
                "a full fine-tune has no adapter; TorchTune has nowhere to keep this",
            ),
        }
    }
    em.cover("adapter.method", Status::Carried, "model._component_", "");
}

/// Architecture keywords of a size-free builder, from the model folder's config.json.
fn write_dimensions(
    em: &mut Emitter,
    t: &Tables,
    spec: &RunSpec,
    base: &Place,
    comp: &tables::Component,
) {
    let Some(cfg) = read_config_json(&base.dir) else {
        let has_passthrough = spec
            .passthrough
            .keys()
            .any(|k| k.starts_with("torchtune.model."));
        if !has_passthrough {
            em.cover(
                "model.size",
                Status::NotExpressible,
                "model._component_",
                &format!("no TorchTune 0.6.1 builder for this size, and no {}/config.json to read the architecture from", base.dir),
            );
        }
        return;
    };
    let mut missing = Vec::new();
    for arg in &comp.args {
        let keys = t.c.hf_config.get(arg).cloned().unwrap_or_default();
        let v = keys
            .iter()
            .find_map(|k| json_path(&cfg, k).filter(|v| !v.is_null()).cloned());
        match v {
            Some(v) => carried(em, &format!("model.{arg}"), v, &[], ""),
            None if comp.defaults.contains_key(arg)
                || arg == "intermediate_dim" && comp.name.contains("llama") => {}
            None => missing.push(arg.clone()),
        }
    }
    if missing.is_empty() {
        em.cover("model.size", Status::Carried, "model._component_", "");
    } else {
        em.cover(
            "model.size",
            Status::NotExpressible,
            "model._component_",
            &format!("{}/config.json lacks {}", base.dir, missing.join(", ")),
        );
    }
}

fn write_lora(em: &mut Emitter, spec: &RunSpec, choice: &Choice, quantize_arg: bool) {
    write_lora_targets(em, spec, choice);
    write_lora_scaling(em, spec, choice);
    write_lora_quantization(em, spec, quantize_arg);
    cover_lora_options(em, spec);
}

/// `lora_attn_modules`, `apply_lora_to_mlp`, `apply_lora_to_output`, and what the target list
/// loses on the way.
fn write_lora_targets(em: &mut Emitter, spec: &RunSpec, choice: &Choice) {
    let a = &spec.adapter;
    // Fused Hugging Face names (Phi-3) stand for their parts.
    let mut names: Vec<String> = Vec::new();
    for m in &a.target_modules {
        match m.as_str() {
            "qkv_proj" => names.extend(["q_proj", "k_proj", "v_proj"].map(String::from)),
            "gate_up_proj" => names.extend(["gate_proj", "up_proj"].map(String::from)),
            other => names.push(other.to_string()),
        }
    }
    let attn: Vec<String> = ATTN_MODULES
        .iter()
        .filter(|(_, hf)| names.iter().any(|n| n == hf))
        .map(|(tt, _)| tt.to_string())
        .collect();
    let mlp_count = MLP_MODULES
        .iter()
        .filter(|m| names.iter().any(|n| n == *m))
        .count();
    let lm_head = names.iter().any(|n| n == "lm_head");
    let known: Vec<&str> = ATTN_MODULES
        .iter()
        .map(|(_, hf)| *hf)
        .chain(MLP_MODULES)
        .chain(["lm_head"])
        .collect();
    let others: Vec<&String> = names
        .iter()
        .filter(|n| !known.contains(&n.as_str()))
        .collect();
    carried(
        em,
        "model.lora_attn_modules",
        json!(attn),
        &["adapter.target_modules"],
        "",
    );
    carried(
        em,
        "model.apply_lora_to_mlp",
        json!(mlp_count > 0),
        &["adapter.target_modules"],
        "",
    );
    if lm_head && choice.output_lora {
        carried(
            em,
            "model.apply_lora_to_output",
            json!(true),
            &["adapter.target_modules"],
            "",
        );
    }
    if a.target_all_linear {
        em.cover(
            "adapter.target_all_linear",
            Status::Approximated,
            "model.lora_attn_modules",
            "TorchTune lists the modules; it has no \"every linear layer\" switch (the same layers are targeted)",
        );
    } else {
        em.cover(
            "adapter.target_all_linear",
            Status::Carried,
            "model.lora_attn_modules",
            "",
        );
    }
    // What a TorchTune reader will see: layer order, fused names where the family fuses.
    let mut expanded: Vec<String> = attn
        .iter()
        .filter_map(|tt| {
            ATTN_MODULES
                .iter()
                .find(|(t, _)| t == tt)
                .map(|(_, hf)| hf.to_string())
        })
        .collect();
    if mlp_count > 0 {
        expanded.extend(MLP_MODULES.iter().map(|s| s.to_string()));
    }
    if lm_head && choice.output_lora {
        expanded.push("lm_head".into());
    }
    if others.is_empty() && hf_targets(&spec.model.family, expanded) != a.target_modules {
        em.cover(
            "adapter.target_modules",
            Status::Approximated,
            "model.lora_attn_modules",
            "the same layers, named as a TorchTune config reads back: in layer order, with the family's fused names (qkv_proj, gate_up_proj)",
        );
    }
    if mlp_count > 0 && mlp_count < 3 {
        em.cover("adapter.target_modules", Status::Approximated, "model.apply_lora_to_mlp", "apply_lora_to_mlp wraps gate, up and down projections together; all three get adapters");
    }
    if lm_head && !choice.output_lora {
        let why = if choice.tied {
            "its output projection is tied to the token embeddings"
        } else {
            "the builder has no apply_lora_to_output"
        };
        em.cover(
            "adapter.target_modules",
            Status::NotExpressible,
            "",
            &format!("lm_head gets no adapter: {why}"),
        );
    }
    if !others.is_empty() {
        em.cover(
            "adapter.target_modules",
            Status::NotExpressible,
            "",
            &format!("TorchTune LoRA wraps attention, MLP and output projections only; {} get no adapters", others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
        );
    }
}

/// Rank, alpha, dropout and DoRA.
fn write_lora_scaling(em: &mut Emitter, spec: &RunSpec, choice: &Choice) {
    let a = &spec.adapter;
    // Written in a TorchTune-shaped order; the values the recipes require always.
    let rank = json!(a.rank);
    let c = em.parity_comment("adapter.rank", &rank);
    carried(em, "model.lora_rank", rank, &["adapter.rank"], &c);
    let alpha = number(a.alpha);
    let c = em.parity_comment("adapter.alpha", &json!(a.alpha));
    carried(em, "model.lora_alpha", alpha, &["adapter.alpha"], &c);
    let dropout = json!(a.dropout);
    let c = em.parity_comment("adapter.dropout", &dropout);
    carried(em, "model.lora_dropout", dropout, &["adapter.dropout"], &c);
    if a.use_dora {
        if choice.dora {
            carried(em, "model.use_dora", json!(true), &["adapter.use_dora"], "");
        } else {
            em.cover(
                "adapter.use_dora",
                Status::NotExpressible,
                "",
                "this builder has no DoRA option",
            );
        }
    }
}

/// The NF4 base (a `qlora_` builder or `quantize_base`), and what TorchTune quantizes anyway.
fn write_lora_quantization(em: &mut Emitter, spec: &RunSpec, quantize_arg: bool) {
    match spec.quantization.base_weights {
        BaseWeights::Nf4 => {
            if quantize_arg {
                carried(
                    em,
                    "model.quantize_base",
                    json!(true),
                    &["quantization.base_weights"],
                    "NF4 base through the LoRA builder (no qlora_ builder fits)",
                );
            } else {
                em.cover(
                    "quantization.base_weights",
                    Status::Carried,
                    "model._component_",
                    "",
                );
            }
            if !spec.quantization.double_quant {
                em.cover(
                    "quantization.double_quant",
                    Status::NotExpressible,
                    "",
                    "torchao's NF4 always quantizes the block scalers too",
                );
            }
        }
        BaseWeights::None => {}
        other @ (BaseWeights::Fp4 | BaseWeights::Int8) => em.cover(
            "quantization.base_weights",
            Status::NotExpressible,
            "",
            &format!("TorchTune quantizes LoRA bases to NF4 only; `{other}` has no equivalent"),
        ),
    }
    if !spec.quantization.skip_modules.is_empty() {
        em.cover("quantization.skip_modules", Status::Approximated, "", "TorchTune keeps the output projection and embeddings unquantized and quantizes every other linear layer");
    }
}

/// Adapter options TorchTune has no key for: reported, and the adapter dtype warned about.
fn cover_lora_options(em: &mut Emitter, spec: &RunSpec) {
    let a = &spec.adapter;
    if a.bias != Bias::None {
        em.cover(
            "adapter.bias",
            Status::NotExpressible,
            "",
            "TorchTune LoRA trains no biases",
        );
    }
    if a.use_rslora {
        em.cover(
            "adapter.use_rslora",
            Status::NotExpressible,
            "",
            "TorchTune scales LoRA by alpha/rank; there is no rsLoRA option",
        );
    }
    if !a.modules_to_save.is_empty() {
        em.cover(
            "adapter.modules_to_save",
            Status::NotExpressible,
            "",
            "the LoRA recipes train adapter parameters only",
        );
    }
    if a.init != AdapterInit::KaimingUniform {
        em.cover(
            "adapter.init",
            Status::NotExpressible,
            "",
            "TorchTune initialises A Kaiming-uniform and B zero",
        );
    }
    if a.init_seed.is_some_and(|s| s != spec.training.seed) {
        em.cover(
            "adapter.init_seed",
            Status::NotExpressible,
            "",
            "TorchTune seeds LoRA init with `seed` (+ rank)",
        );
    }
    if !a.init_from.is_empty() {
        em.cover(
            "adapter.init_from",
            Status::NotExpressible,
            "",
            "TorchTune starts adapters from scratch unless resuming its own run",
        );
    }
    if a.fused_kernels {
        em.cover(
            "adapter.fused_kernels",
            Status::Approximated,
            "",
            "TorchTune has no fused LoRA kernels; the reference LoRA path runs (numerically close)",
        );
    }
    if a.weight_dtype != spec.precision.compute_dtype && a.weight_dtype != written_dtype(spec) {
        em.cover(
            "adapter.weight_dtype",
            Status::NotExpressible,
            "",
            &format!(
                "TorchTune keeps adapters in the recipe dtype ({}), not {}",
                written_dtype(spec),
                a.weight_dtype
            ),
        );
        em.warnings.push(
            Diagnostic::warning(
                "adapter-dtype",
                format!("adapters train in {} under TorchTune, {} in the source", written_dtype(spec), a.weight_dtype),
            )
            .with_help("PEFT-based stacks keep LoRA weights and their optimizer state in fp32; expect small drifts in the loss curve"),
        );
    } else {
        em.cover("adapter.weight_dtype", Status::Carried, "dtype", "");
    }
}
