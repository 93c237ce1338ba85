//! IR → TorchTune 0.6.1 YAML.
//!
//! Picks the recipe (LoRA or full, single device or distributed), the model builder by family
//! and size (a size-free builder with the dimensions of the model folder's `config.json` when
//! no sized builder fits), the family's tokenizer and checkpointer model type, and writes every
//! value that changes the numbers explicitly, with `# parity:` comments where the source took a
//! default TorchTune does not share. What TorchTune cannot say is reported, never dropped.

use super::read::{hf_targets, ATTN_MODULES, MLP_MODULES};
use super::tables::{self, Recipe, Tables};
use super::{FW, RANDOM_SEED_RULE};
use crate::diag::Diagnostic;
use crate::ir::{Origin, Resolved, RunSpec};
use crate::translate::emitter::{values_equal, Emitter, Out};
use crate::translate::report::{compact, Status};
use crate::translate::{data, families, yaml_out, WriteOptions, Written};
use serde_json::{json, Map, Value};
use std::path::Path;

/// The builder a spec is written with.
struct Choice {
    module: String,
    /// A size-free builder: architecture keywords are written (or passed through).
    size_free: bool,
    output_lora: bool,
    /// The output projection is the embedding matrix (no output LoRA possible).
    tied: bool,
    dora: bool,
    model_type: String,
    /// The longest sequence the builder takes (sized builder), if known.
    max_seq_len: Option<u64>,
}

/// Where the base weights live for TorchTune, which reads local folders only.
struct Place {
    dir: String,
    /// `tune download …` when the source named a Hub id.
    download: Option<String>,
}

fn place(model: &str) -> Place {
    let local = model.starts_with('/')
        || model.starts_with('.')
        || model.starts_with('~')
        || Path::new(model).exists()
        || model.matches('/').count() != 1;
    if local {
        return Place {
            dir: model.trim_end_matches('/').to_string(),
            download: None,
        };
    }
    let name = model.rsplit('/').next().unwrap_or(model);
    let dir = format!("/tmp/{name}");
    Place {
        download: Some(format!("tune download {model} --output-dir {dir}")),
        dir,
    }
}

/// The recipe that runs a spec: LoRA/QLoRA or full, one device or several.
pub fn recipe_for(spec: &RunSpec) -> &'static Recipe {
    let distributed = spec.batch.devices > 1 || spec.parallel.strategy != "single";
    tables::get().recipe(&spec.adapter.method, distributed)
}

/// `tune run [--nproc_per_node N] <recipe> --config <file>`.
pub fn command_for(spec: &RunSpec, file: &str) -> String {
    let recipe = recipe_for(spec);
    if recipe.distributed {
        format!(
            "tune run --nproc_per_node {} {} --config {file}",
            spec.batch.devices.max(1),
            recipe.name
        )
    } else {
        format!("tune run {} --config {file}", recipe.name)
    }
}

pub fn write(resolved: &Resolved, from: &str, opts: &WriteOptions) -> Written {
    let spec = &resolved.spec;
    let t = tables::get();
    let mut em = Emitter::new(resolved, FW.name(), data::table(FW), data::defaults(FW));
    let recipe = recipe_for(spec);
    let base = place(&spec.model.base);
    let native = from == FW.name();

    let choice = write_model(&mut em, t, spec, &base);
    write_tokenizer(&mut em, t, spec, &base, &choice);
    write_checkpointer(&mut em, t, spec, &base, &choice);
    write_datasets(&mut em, t, spec, native);
    write_steps(&mut em, spec, from);
    write_optimizer(&mut em, t, spec, from);
    write_schedule(&mut em, t, spec, recipe);
    write_loss_and_precision(&mut em, t, spec);
    write_parallel(&mut em, spec, recipe);
    write_logging(&mut em, t, spec);
    em.apply_table();
    // Keys kept verbatim from a TorchTune source come back as they were.
    let own = format!("{}.", FW.name());
    for (k, v) in &spec.passthrough {
        if let Some(key) = k.strip_prefix(&own) {
            if key.starts_with("model.") && !choice.size_free {
                continue;
            }
            // The source's own spelling replaces what was generated at that spot.
            let child = format!("{key}.");
            em.out.retain(|o| {
                !(key.starts_with(&format!("{}.", o.key)) || o.key.starts_with(&child))
            });
            em.put(key, v.clone(), &[], Status::Carried, "");
        }
    }
    if !em.out.iter().any(|o| o.key == "device") {
        em.put("device", json!("cuda"), &[], Status::Carried, "");
    }
    let command = command_for(spec, FW.default_file_name());
    let (outs, mut report) = em.finish(from, &opts.source_name);
    if native {
        // Defaults of one framework cannot drift from themselves.
        report.warnings.retain(|d| d.id != "default-differs");
    }
    let mut text = render(
        t,
        &outs,
        from,
        &opts.source_name,
        recipe,
        &command,
        base.download.as_deref(),
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Written {
        text,
        command,
        report,
    }
}

// ------------------------------------------------------------------- helpers

fn carried(em: &mut Emitter, key: &str, value: Value, irs: &[&str], comment: &str) {
    em.put(key, value, irs, Status::Carried, comment);
}

/// `# parity:` comment against a component's own default (the table defaults cover the rest).
fn parity_against(
    em: &Emitter,
    ir: &str,
    v: &Value,
    target_default: Option<&Value>,
    what: &str,
) -> String {
    let why = match em.resolved.provenance.get(ir) {
        Some(Origin::Explicit { .. }) | None => return String::new(),
        Some(Origin::Default { framework, .. }) => format!("{framework} default"),
        Some(Origin::Derived { .. }) => "derived".to_string(),
    };
    match target_default {
        Some(d) if !values_equal(d, v) => format!("parity: {why}; {what} would use {}", compact(d)),
        _ => String::new(),
    }
}

/// Whole numbers as integers (`lora_alpha: 16`), others as floats.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn read_config_json(dir: &str) -> Option<Value> {
    let text = std::fs::read_to_string(Path::new(dir).join("config.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn json_path<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |node, seg| node.get(seg))
}

// ------------------------------------------------------------------- model

fn write_model(em: &mut Emitter, t: &Tables, spec: &RunSpec, base: &Place) -> Choice {
    let method = spec.adapter.method.as_str();
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
    // QLoRA on a module without qlora_ builders: its lora_ builder with quantize_base.
    let has_qlora = t
        .builders
        .iter()
        .any(|b| b.module == module && b.method == "qlora");
    let (builder_method, quantize_arg) = match method {
        "qlora" if !has_qlora => ("lora", true),
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
    if method == "full" {
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
                _ if path == "adapter.weight_dtype" && v.as_str() == Some(written_dtype(spec)) => {
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
        return choice;
    }
    em.cover("adapter.method", Status::Carried, "model._component_", "");
    // A size-free LoRA builder has no qlora_ twin: it quantizes through quantize_base.
    write_lora(em, spec, &choice, quantize_arg || choice.size_free);
    choice
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
    match spec.quantization.base_weights.as_str() {
        "nf4" => {
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
        "none" => {}
        other => em.cover(
            "quantization.base_weights",
            Status::NotExpressible,
            "",
            &format!("TorchTune quantizes LoRA bases to NF4 only; `{other}` has no equivalent"),
        ),
    }
    if !spec.quantization.skip_modules.is_empty() {
        em.cover("quantization.skip_modules", Status::Approximated, "", "TorchTune keeps the output projection and embeddings unquantized and quantizes every other linear layer");
    }
    if a.bias != "none" {
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
    if a.init != "kaiming_uniform" {
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

// ------------------------------------------------------------------- tokenizer, checkpointer

fn write_tokenizer(em: &mut Emitter, t: &Tables, spec: &RunSpec, base: &Place, choice: &Choice) {
    let Some(tok) = t.tokenizer_for_module(&choice.module) else {
        return;
    };
    carried(em, "tokenizer._component_", json!(tok.component), &[], "");
    let tok_place = if spec.model.tokenizer == spec.model.base || spec.model.tokenizer.is_empty() {
        Place {
            dir: base.dir.clone(),
            download: base.download.clone(),
        }
    } else {
        place(&spec.model.tokenizer)
    };
    for (arg, rel) in &tok.files {
        let file = format!("{}/{rel}", tok_place.dir);
        if Path::new(&tok_place.dir).is_dir() && !Path::new(&file).exists() {
            em.warnings.push(
                Diagnostic::warning("missing-file", format!("{file} does not exist: `{}` needs it", tok.component))
                    .with_help("TorchTune reads the original tokenizer files; download them with `tune download`"),
            );
        }
        carried(
            em,
            &format!("tokenizer.{arg}"),
            json!(file),
            &["model.tokenizer"],
            "",
        );
    }
    if tok_place.download.is_some() {
        em.cover("model.tokenizer", Status::Approximated, "tokenizer.path", "TorchTune reads tokenizer files from a local folder (see the download command in the header)");
    }
    // Sequence length: null keeps a TorchTune source's "no truncation".
    let from_null = matches!(
        em.resolved.provenance.get("data.sequence_len"),
        Some(Origin::Derived { rule, .. }) if rule.starts_with("tokenizer.max_seq_len is")
    );
    let builder_max = choice.max_seq_len.or_else(|| {
        em.out
            .iter()
            .find(|o| o.key == "model.max_seq_len")
            .map(|o| o.value.clone())
            .or_else(|| spec.passthrough.get("torchtune.model.max_seq_len").cloned())
            .and_then(|v| v.as_u64())
    });
    let unbounded =
        from_null && !spec.data.packing && builder_max == Some(spec.data.sequence_len as u64);
    let len = if unbounded {
        Value::Null
    } else {
        json!(spec.data.sequence_len)
    };
    carried(em, "tokenizer.max_seq_len", len, &["data.sequence_len"], "");
    // Chat framing: the tokenizer's own, or a prompt template, or reported.
    let natural = if tok.prompt_template.is_empty() {
        tok.framing.clone()
    } else {
        t.c.prompt_template
            .iter()
            .find(|p| p.component == tok.prompt_template)
            .map_or(tok.framing.clone(), |p| p.chat_template.clone())
    };
    let ct = spec.model.chat_template.as_str();
    let has_template_passthrough = spec
        .passthrough
        .contains_key("torchtune.tokenizer.prompt_template");
    if ct == natural || has_template_passthrough {
        em.cover(
            "model.chat_template",
            Status::Carried,
            "tokenizer._component_",
            "",
        );
    } else if ct == tok.framing {
        carried(
            em,
            "tokenizer.prompt_template",
            Value::Null,
            &["model.chat_template"],
            "",
        );
    } else if let Some(p) =
        t.c.prompt_template
            .iter()
            .find(|p| p.chat_template == ct && tok.framing == "none")
    {
        carried(
            em,
            "tokenizer.prompt_template",
            json!(p.component),
            &["model.chat_template"],
            "",
        );
    } else {
        let note = if ct == "tokenizer_default" {
            format!("TorchTune frames chats with its own {natural} tokenizer code, not the Hugging Face tokenizer's Jinja template (no default system prompt)")
        } else {
            format!(
                "TorchTune's {} frames chats as {natural}; `{ct}` has no TorchTune spelling",
                tok.component.rsplit('.').next().unwrap_or("")
            )
        };
        em.cover(
            "model.chat_template",
            Status::Approximated,
            "tokenizer._component_",
            &note,
        );
    }
    if !spec.model.special_tokens.is_empty() {
        em.cover(
            "model.special_tokens",
            Status::NotExpressible,
            "",
            "TorchTune tokenizers take special tokens from their own tables (pad id included)",
        );
    }
    if spec.model.attention != "sdpa" {
        em.cover("model.attention", Status::Approximated, "", "TorchTune always calls scaled_dot_product_attention, which picks the flash kernel on GPUs that have it");
    }
}

fn write_checkpointer(em: &mut Emitter, t: &Tables, spec: &RunSpec, base: &Place, choice: &Choice) {
    let ck =
        t.c.checkpointer
            .iter()
            .find(|c| c.write)
            .map_or("torchtune.training.FullModelHFCheckpointer", |c| {
                c.component.as_str()
            });
    carried(em, "checkpointer._component_", json!(ck), &[], "");
    carried(
        em,
        "checkpointer.checkpoint_dir",
        json!(base.dir),
        &["model.base"],
        "",
    );
    if base.download.is_some() {
        em.cover(
            "model.base",
            Status::Approximated,
            "checkpointer.checkpoint_dir",
            "TorchTune reads weights from a local folder (see the download command in the header)",
        );
    }
    let lower = spec.model.base.to_ascii_lowercase();
    if lower.contains("bnb-4bit")
        || lower.contains("-4bit")
        || lower.ends_with("-awq")
        || lower.contains("gptq")
    {
        em.cover(
            "model.base",
            Status::Approximated,
            "checkpointer.checkpoint_dir",
            "a pre-quantized checkpoint: TorchTune loads bf16/fp32 weights and quantizes them itself (QLoRA builders)",
        );
        em.warnings.push(
            Diagnostic::warning(
                "base-weights",
                format!(
                    "`{}` is a pre-quantized checkpoint TorchTune cannot load",
                    spec.model.base
                ),
            )
            .with_help("point checkpoint_dir at the original 16-bit weights of the same model"),
        );
    }
    let files = checkpoint_files(t, spec, &base.dir, choice).unwrap_or_else(|| {
        em.warnings.push(
            Diagnostic::warning(
                "checkpoint-files",
                "the checkpoint file names are not known; `model.safetensors` is assumed",
            )
            .with_help(
                "list the weight files of the model folder in checkpointer.checkpoint_files",
            ),
        );
        json!(["model.safetensors"])
    });
    carried(em, "checkpointer.checkpoint_files", files, &[], "");
    carried(em, "checkpointer.recipe_checkpoint", Value::Null, &[], "");
    carried(
        em,
        "checkpointer.output_dir",
        json!("${output_dir}"),
        &[],
        "",
    );
    carried(
        em,
        "checkpointer.model_type",
        json!(choice.model_type),
        &[],
        "",
    );
    let resume = !spec.checkpoint.resume_from.is_empty();
    carried(
        em,
        "resume_from_checkpoint",
        json!(resume),
        &["checkpoint.resume_from"],
        "",
    );
    if resume
        && spec.checkpoint.resume_from.trim_end_matches('/')
            != spec.checkpoint.output_dir.trim_end_matches('/')
    {
        em.cover(
            "checkpoint.resume_from",
            Status::Approximated,
            "resume_from_checkpoint",
            "TorchTune resumes from the newest epoch in output_dir, not from a given folder",
        );
    }
}

/// The weight files: the local folder's, else the shipped configs' for this builder.
fn checkpoint_files(t: &Tables, spec: &RunSpec, dir: &str, choice: &Choice) -> Option<Value> {
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let st: Vec<&String> = names
            .iter()
            .filter(|n| n.ends_with(".safetensors") && !n.starts_with("adapter"))
            .collect();
        let bin: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("pytorch_model") && n.ends_with(".bin"))
            .collect();
        if !st.is_empty() {
            return Some(json!(st));
        }
        if !bin.is_empty() {
            return Some(json!(bin));
        }
    }
    let method = if spec.adapter.method == "qlora" {
        "lora"
    } else {
        spec.adapter.method.as_str()
    };
    let instruct = spec.model.base.to_ascii_lowercase().contains("instruct");
    t.sized(&choice.module, method, &spec.model.size, instruct)
        .or_else(|| t.sized(&choice.module, "full", &spec.model.size, instruct))
        .and_then(|b| b.checkpoint_files.clone())
}

// ------------------------------------------------------------------- data

fn write_datasets(em: &mut Emitter, t: &Tables, spec: &RunSpec, native: bool) {
    let mut nodes = Vec::new();
    for (i, d) in spec.data.datasets.iter().enumerate() {
        let p = format!("data.datasets.{i}");
        let mut m = Map::new();
        // A preset builder when it names exactly this data, else the generic one of the format.
        let preset = t.c.dataset.iter().find(|b| {
            b.preset
                && b.format == d.format
                && b.source == d.path
                && d.loader.is_empty()
                && b.name == d.name
                && (b.column.is_empty() || d.columns.get("text") == Some(&b.column))
                && b.conversation_style.is_empty()
        });
        let generic =
            t.c.dataset
                .iter()
                .find(|b| !b.preset && b.format == d.format);
        let instruct =
            t.c.dataset
                .iter()
                .find(|b| !b.preset && b.format == "instruct");
        let Some(builder) = preset.or(generic).or(instruct) else {
            continue;
        };
        let component = builder.component.as_str();
        let builder = Some(builder);
        m.insert("_component_".into(), json!(component));
        // Source: a Hub id, or a loader with data files.
        let ext_loader = Path::new(&d.path)
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| match e {
                "json" | "jsonl" => Some("json"),
                "csv" => Some("csv"),
                "parquet" => Some("parquet"),
                "txt" => Some("text"),
                "arrow" => Some("arrow"),
                _ => None,
            });
        let loader = if d.loader.is_empty() {
            ext_loader.unwrap_or("")
        } else {
            d.loader.as_str()
        };
        let default_source = builder.map_or("", |b| b.source.as_str());
        if !loader.is_empty() {
            m.insert("source".into(), json!(loader));
            let files = if d.data_files.is_empty() {
                json!(d.path)
            } else {
                json!(d.data_files)
            };
            m.insert("data_files".into(), files);
        } else if d.path != default_source {
            m.insert("source".into(), json!(d.path));
            if !d.data_files.is_empty() {
                m.insert("data_files".into(), json!(d.data_files));
            }
        }
        if !d.name.is_empty() {
            m.insert("name".into(), json!(d.name));
        }
        if d.split != "train" {
            m.insert("split".into(), json!(d.split));
        }
        let mut column_map = Map::new();
        match d.format.as_str() {
            "alpaca" => {
                let accepted = builder.map(|b| b.columns.clone()).unwrap_or_default();
                for (k, v) in &d.columns {
                    if accepted.contains(k) {
                        column_map.insert(k.clone(), json!(v));
                    } else {
                        em.cover(
                            &format!("{p}.columns.{k}"),
                            Status::NotExpressible,
                            "",
                            &format!("{component} reads only the columns {}", accepted.join(", ")),
                        );
                    }
                }
                m.insert("train_on_input".into(), json!(spec.data.train_on_inputs));
                if d.prompt_style != "alpaca_chat_template" {
                    em.cover(&format!("{p}.prompt_style"), Status::Approximated, "dataset._component_", "TorchTune's alpaca_dataset wraps the Alpaca prompt in a user turn of the model's chat format; the source frames it as plain text");
                    em.warnings.push(
                        Diagnostic::warning(
                            "prompt-framing",
                            format!("dataset {i} ({}): Alpaca prompts become chat turns under TorchTune", d.path),
                        )
                        .with_help("TorchTune adds the tokenizer's chat markers (e.g. <|start_header_id|>user…) around the same Alpaca text; token counts and loss values shift"),
                    );
                }
            }
            "chat_template" => {
                let col = d
                    .columns
                    .get("messages")
                    .cloned()
                    .unwrap_or_else(|| "messages".into());
                m.insert("conversation_column".into(), json!(col));
                let sharegpt = d.columns.get("role").is_some_and(|r| r == "from");
                m.insert(
                    "conversation_style".into(),
                    json!(if sharegpt { "sharegpt" } else { "openai" }),
                );
                let all = ["system", "user", "assistant"]
                    .iter()
                    .all(|r| d.roles_to_train.iter().any(|x| x == r));
                let only_assistant =
                    d.roles_to_train.is_empty() || d.roles_to_train == ["assistant"];
                m.insert("train_on_input".into(), json!(all));
                if all != spec.data.train_on_inputs {
                    em.cover(
                        "data.train_on_inputs",
                        Status::Approximated,
                        "train_on_input",
                        "chat_dataset masks by role: train_on_input follows the dataset's roles_to_train",
                    );
                }
                if !all && !only_assistant {
                    em.cover(&format!("{p}.roles_to_train"), Status::Approximated, "train_on_input", "TorchTune trains the assistant turns, or every turn (train_on_input); not a chosen set of roles");
                }
                let extra: Vec<&String> = d
                    .columns
                    .keys()
                    .filter(|k| !["messages", "role", "content"].contains(&k.as_str()))
                    .collect();
                if !extra.is_empty() {
                    em.cover(&format!("{p}.columns"), Status::NotExpressible, "", "chat_dataset maps the conversation column and the sharegpt/openai field names only");
                }
            }
            "completion" => {
                if let Some(col) = d.columns.get("text").filter(|c| *c != "text") {
                    m.insert("column".into(), json!(col));
                }
                if !spec.data.add_eos {
                    m.insert("add_eos".into(), json!(false));
                    em.cover("data.add_eos", Status::Carried, "dataset.add_eos", "");
                }
                if !spec.data.train_on_inputs {
                    em.cover(
                        "data.train_on_inputs",
                        Status::Approximated,
                        "",
                        "text_completion_dataset trains every token; there is no prompt to mask",
                    );
                }
            }
            "instruct" => {
                let accepted = builder.map(|b| b.columns.clone()).unwrap_or_default();
                for (k, v) in &d.columns {
                    if accepted.contains(k) {
                        column_map.insert(k.clone(), json!(v));
                    } else {
                        em.cover(
                            &format!("{p}.columns.{k}"),
                            Status::NotExpressible,
                            "",
                            &format!("{component} reads only the columns {}", accepted.join(", ")),
                        );
                    }
                }
                m.insert("train_on_input".into(), json!(spec.data.train_on_inputs));
                if !d.templates.is_empty() {
                    em.cover(&format!("{p}.templates"), Status::NotExpressible, "", "instruct_dataset sends the input column verbatim as the user turn; prompt format strings have no equivalent");
                }
                if d.prompt_style != "chat_template" {
                    em.cover(&format!("{p}.prompt_style"), Status::Approximated, "dataset._component_", "instruct_dataset frames input/output as one chat turn of the model's chat format");
                }
            }
            other => {
                m.insert("train_on_input".into(), json!(spec.data.train_on_inputs));
                for field in ["prompt_style", "columns", "templates"] {
                    em.cover(
                        &format!("{p}.{field}"),
                        Status::NotExpressible,
                        "dataset._component_",
                        "the source format has no TorchTune builder; see the format",
                    );
                }
                em.cover(
                    &format!("{p}.format"),
                    Status::NotExpressible,
                    "dataset._component_",
                    &format!(
                        "TorchTune has no `{other}` dataset format; written as instruct_dataset"
                    ),
                );
                em.warnings.push(
                    Diagnostic::warning(
                        "not-expressible",
                        format!(
                            "dataset {i} ({}): format `{other}` has no TorchTune builder",
                            d.path
                        ),
                    )
                    .with_help("convert the data to input/output columns or to chat messages"),
                );
            }
        }
        if !column_map.is_empty() {
            m.insert("column_map".into(), Value::Object(column_map));
        }
        if !d.response_markers.is_empty() {
            em.cover(
                &format!("{p}.response_markers"),
                Status::NotExpressible,
                "",
                "TorchTune masks by message role, not by marker strings",
            );
        }
        m.insert("packed".into(), json!(spec.data.packing));
        nodes.push((Value::Object(m), builder.map(|b| b.train_on_input)));
    }
    if nodes.len() == 1 {
        // One dataset: key by key, so parity comments sit beside the values they explain.
        let (node, builder_toi) = nodes.remove(0);
        let Value::Object(m) = node else {
            return;
        };
        for (k, v) in m {
            let comment = match k.as_str() {
                "train_on_input" => parity_against(
                    em,
                    "data.train_on_inputs",
                    &v,
                    builder_toi.map(Value::Bool).as_ref(),
                    "the builder",
                ),
                "packed" => {
                    parity_against(em, "data.packing", &v, Some(&json!(false)), "TorchTune")
                }
                _ => String::new(),
            };
            carried(em, &format!("dataset.{k}"), v, &["data.datasets"], &comment);
        }
    } else {
        let value = Value::Array(nodes.into_iter().map(|(n, _)| n).collect());
        carried(em, "dataset", value, &["data.datasets"], "");
    }
    em.cover(
        "data.train_on_inputs",
        Status::Carried,
        "dataset.train_on_input",
        "",
    );
    if !spec.data.drop_last {
        em.cover(
            "data.drop_last",
            Status::NotExpressible,
            "",
            "TorchTune's recipes always drop each epoch's last incomplete batch",
        );
    }
    if spec.data.packing && !native {
        em.cover("data.packing", Status::Approximated, "dataset.packed", "TorchTune packs greedily in dataset order with a block-causal mask; 0.6.1 also shifts labels across packed samples (a sample's last token learns the next sample's first)");
    } else {
        em.cover("data.packing", Status::Carried, "dataset.packed", "");
    }
}

// ------------------------------------------------------------------- steps, optimizer, schedule

fn write_steps(em: &mut Emitter, spec: &RunSpec, from: &str) {
    let tr = &spec.training;
    let epochs = tr.epochs.max(1.0).ceil() as u64;
    if tr.max_steps > 0 {
        carried(
            em,
            "epochs",
            json!(1),
            &[],
            "max_steps: one epoch capped at max_steps_per_epoch",
        );
        carried(em, "max_steps_per_epoch", json!(tr.max_steps), &[], "");
        let note = "TorchTune caps steps per epoch only: epochs 1 with max_steps_per_epoch = max_steps (exact unless one epoch is shorter than max_steps)";
        em.cover(
            "training.max_steps",
            Status::Approximated,
            "max_steps_per_epoch",
            note,
        );
        if tr.epochs != 1.0 {
            em.cover("training.epochs", Status::Approximated, "epochs", note);
        }
        if tr.max_steps_per_epoch != tr.max_steps {
            em.cover(
                "training.max_steps_per_epoch",
                Status::Approximated,
                "max_steps_per_epoch",
                note,
            );
        }
    } else {
        carried(em, "epochs", json!(epochs), &["training.epochs"], "");
        if tr.epochs.fract() != 0.0 {
            em.cover(
                "training.epochs",
                Status::Approximated,
                "epochs",
                "TorchTune runs whole epochs; rounded up",
            );
        }
        let cap = if tr.max_steps_per_epoch > 0 {
            json!(tr.max_steps_per_epoch)
        } else {
            Value::Null
        };
        carried(
            em,
            "max_steps_per_epoch",
            cap,
            &["training.max_steps_per_epoch"],
            "",
        );
    }
    // Seed: TorchTune's null draws a random seed, so a fixed one is always written.
    let random = matches!(em.resolved.provenance.get("training.seed"), Some(Origin::Derived { rule, .. }) if rule == RANDOM_SEED_RULE);
    if random {
        carried(em, "seed", Value::Null, &["training.seed"], "");
    } else {
        let comment = match em.resolved.provenance.get("training.seed") {
            Some(Origin::Default { framework, .. }) => format!(
                "parity: {framework} default; TorchTune's seed: null would draw a random seed"
            ),
            _ => String::new(),
        };
        carried(em, "seed", json!(tr.seed), &["training.seed"], &comment);
    }
    let _ = from;
    em.cover(
        "batch.devices",
        Status::Carried,
        "tune run --nproc_per_node",
        "",
    );
    em.cover("batch.global_batch", Status::Carried, "", "");
}

fn write_optimizer(em: &mut Emitter, t: &Tables, spec: &RunSpec, from: &str) {
    let o = &spec.optimizer;
    let entry =
        t.c.optimizer
            .iter()
            .find(|x| x.write && (x.name == o.name || x.fused_name == o.name));
    let entry = match entry {
        Some(e) => {
            em.cover(
                "optimizer.name",
                Status::Carried,
                "optimizer._component_",
                "",
            );
            if o.name.contains("8bit") && spec.adapter.method == "full" && from != FW.name() {
                em.cover("optimizer.name", Status::Approximated, "optimizer._component_", "Hugging Face keeps 32-bit optimizer state for embedding layers under 8-bit optimizers; bitsandbytes used directly does not");
            }
            e
        }
        None => {
            em.cover(
                "optimizer.name",
                Status::NotExpressible,
                "optimizer._component_",
                &format!(
                    "no TorchTune optimizer component for `{}`; torch.optim.AdamW is written",
                    o.name
                ),
            );
            &t.c.optimizer[0]
        }
    };
    carried(em, "optimizer._component_", json!(entry.component), &[], "");
    if o.name == "adamw_fused" {
        carried(em, "optimizer.fused", json!(true), &["optimizer.name"], "");
    }
    let d = |k: &str| entry.defaults.get(k).cloned();
    let lr = json!(o.lr);
    carried(em, "optimizer.lr", lr, &["optimizer.lr"], "");
    if entry.args.iter().any(|a| a == "weight_decay") {
        let v = json!(o.weight_decay);
        let c = parity_against(
            em,
            "optimizer.weight_decay",
            &v,
            d("weight_decay").as_ref(),
            entry.component.rsplit('.').next().unwrap_or(""),
        );
        carried(
            em,
            "optimizer.weight_decay",
            v,
            &["optimizer.weight_decay"],
            &c,
        );
    } else if o.weight_decay != 0.0 {
        em.cover(
            "optimizer.weight_decay",
            Status::NotExpressible,
            "",
            "this optimizer has no weight decay",
        );
    }
    if entry.args.iter().any(|a| a == "betas") {
        let same = d("beta1").is_some_and(|b| values_equal(&b, &json!(o.beta1)))
            && d("beta2").is_some_and(|b| values_equal(&b, &json!(o.beta2)));
        if same {
            em.cover("optimizer.beta1", Status::Defaulted, "", "");
            em.cover("optimizer.beta2", Status::Defaulted, "", "");
        } else {
            carried(
                em,
                "optimizer.betas",
                json!([o.beta1, o.beta2]),
                &["optimizer.beta1", "optimizer.beta2"],
                "",
            );
        }
    }
    if entry.args.iter().any(|a| a == "eps") {
        if d("eps").is_some_and(|e| values_equal(&e, &json!(o.eps))) {
            em.cover("optimizer.eps", Status::Defaulted, "", "");
        } else {
            carried(em, "optimizer.eps", json!(o.eps), &["optimizer.eps"], "");
        }
    }
    // Clipping: null = off.
    let clip = if o.max_grad_norm > 0.0 {
        json!(o.max_grad_norm)
    } else {
        Value::Null
    };
    let c = if o.max_grad_norm > 0.0 {
        em.parity_comment("optimizer.max_grad_norm", &json!(o.max_grad_norm))
    } else {
        String::new()
    };
    carried(em, "clip_grad_norm", clip, &["optimizer.max_grad_norm"], &c);
}

fn write_schedule(em: &mut Emitter, t: &Tables, spec: &RunSpec, recipe: &Recipe) {
    let s = &spec.schedule;
    let cosine = &t.c.lr_scheduler[0];
    let mut warmup = s.warmup_steps;
    if s.warmup_ratio > 0.0 {
        if s.warmup_steps > 0 {
            em.cover(
                "schedule.warmup_ratio",
                Status::Approximated,
                "lr_scheduler.num_warmup_steps",
                "TorchTune takes warmup in steps; the ratio's steps are fixed here",
            );
        } else {
            warmup = 0;
            em.cover("schedule.warmup_ratio", Status::NotExpressible, "", "TorchTune takes warmup in steps and the total step count is unknown here; set max_steps or warmup_steps");
            em.cover(
                "schedule.warmup_steps",
                Status::NotExpressible,
                "",
                "see schedule.warmup_ratio",
            );
        }
    } else {
        em.cover(
            "schedule.warmup_ratio",
            Status::Carried,
            "lr_scheduler.num_warmup_steps",
            "",
        );
    }
    let (component, cycles, status, note): (Option<&str>, Option<f64>, Status, String) =
        match s.kind.as_str() {
            "cosine" => (
                Some(cosine.component.as_str()),
                (s.num_cycles != 0.5).then_some(s.num_cycles),
                Status::Carried,
                String::new(),
            ),
            "constant" if !recipe.lr_scheduler_required && warmup == 0 => {
                (None, None, Status::Carried, String::new())
            }
            "constant" | "constant_with_warmup" => (
                Some(cosine.component.as_str()),
                Some(0.0),
                Status::Carried,
                String::new(),
            ),
            "linear" => {
                let lin =
                    t.c.lr_scheduler
                        .iter()
                        .find(|x| x.kind == "linear")
                        .unwrap_or(cosine);
                if !lin.requires.is_empty() {
                    em.warnings.push(
                        Diagnostic::info(
                            "needs-package",
                            format!(
                                "lr_scheduler `{}` needs `{}` installed next to TorchTune",
                                lin.component, lin.requires
                            ),
                        )
                        .with_help(format!(
                            "pip install {} in the TorchTune environment ({})",
                            lin.requires, lin.note
                        )),
                    );
                }
                (
                    Some(lin.component.as_str()),
                    None,
                    Status::Carried,
                    String::new(),
                )
            }
            other => (
                Some(cosine.component.as_str()),
                None,
                Status::Approximated,
                format!("TorchTune ships a cosine schedule only; `{other}` is written as cosine"),
            ),
        };
    match component {
        Some(c) => {
            carried(
                em,
                "lr_scheduler._component_",
                json!(c),
                &["schedule.kind"],
                "",
            );
            let w = json!(warmup);
            let comment = em.parity_comment("schedule.warmup_steps", &w);
            carried(
                em,
                "lr_scheduler.num_warmup_steps",
                w,
                &["schedule.warmup_steps"],
                &comment,
            );
            if let Some(n) = cycles {
                let comment = if n == 0.0 && s.kind != "cosine" {
                    "0 cycles: the LR stays at its peak after warmup"
                } else {
                    ""
                };
                carried(
                    em,
                    "lr_scheduler.num_cycles",
                    json!(n),
                    &["schedule.num_cycles"],
                    comment,
                );
            }
            if cycles == Some(0.0) || s.kind == "linear" {
                em.cover(
                    "schedule.num_cycles",
                    Status::Carried,
                    "lr_scheduler.num_cycles",
                    "",
                );
            }
        }
        None => {
            em.cover(
                "schedule.kind",
                Status::Carried,
                "",
                "no lr_scheduler: constant LR",
            );
            em.cover("schedule.warmup_steps", Status::Carried, "", "");
            em.cover("schedule.num_cycles", Status::Carried, "", "");
        }
    }
    if status != Status::Carried {
        em.cover("schedule.kind", status, "lr_scheduler._component_", &note);
    }
    if s.min_lr_ratio > 0.0 {
        em.cover(
            "schedule.min_lr_ratio",
            Status::NotExpressible,
            "",
            "TorchTune's cosine schedule decays to 0",
        );
    }
}

fn written_dtype(spec: &RunSpec) -> &'static str {
    match spec.precision.compute_dtype.as_str() {
        "fp32" => "fp32",
        _ => "bf16",
    }
}

fn write_loss_and_precision(em: &mut Emitter, t: &Tables, spec: &RunSpec) {
    let loss =
        t.c.loss
            .iter()
            .find(|l| l.kind == spec.loss.kind)
            .unwrap_or(&t.c.loss[0]);
    carried(
        em,
        "loss._component_",
        json!(loss.component),
        &["loss.kind"],
        "",
    );
    if loss.kind != spec.loss.kind {
        em.cover(
            "loss.kind",
            Status::Approximated,
            "loss._component_",
            &format!(
                "`{}` has no TorchTune loss; written as {}",
                spec.loss.kind, loss.note
            ),
        );
    }
    match spec.loss.normalization.as_str() {
        "token_weighted_unshifted" => em.cover("loss.normalization", Status::Carried, "", ""),
        "token_mean_over_step" => em.cover("loss.normalization", Status::Approximated, "", "TorchTune 0.6.1 weights each micro-batch by its label count taken before the label shift: one extra token per row whose first label is unmasked"),
        _ => em.cover("loss.normalization", Status::NotExpressible, "", "TorchTune weights micro-batches by their token counts; a mean of micro-batch means cannot be set"),
    }
    match spec.loss.across_ranks.as_str() {
        "global_tokens" => em.cover("loss.across_ranks", Status::Carried, "", ""),
        _ if spec.batch.devices <= 1 => em.cover("loss.across_ranks", Status::Approximated, "", "identical on one device; TorchTune normalises by the global token count once the run spans several GPUs"),
        _ => em.cover("loss.across_ranks", Status::NotExpressible, "", "TorchTune normalises by the token count of all ranks, not the mean of per-rank means"),
    }
    // Precision: dtype is the whole model's dtype.
    let dtype = written_dtype(spec);
    carried(em, "dtype", json!(dtype), &["precision.compute_dtype"], "");
    if spec.precision.compute_dtype == "fp16" {
        em.cover(
            "precision.compute_dtype",
            Status::Approximated,
            "dtype",
            "TorchTune refuses fp16; bf16 is written",
        );
    }
    match (spec.precision.mode.as_str(), dtype) {
        ("pure", _) | (_, "fp32") => em.cover("precision.mode", Status::Carried, "dtype", ""),
        _ => {
            em.cover(
                "precision.mode",
                Status::Approximated,
                "dtype",
                "TorchTune trains the whole model in bf16 (no fp32 master weights, no autocast)",
            );
            em.warnings.push(
                Diagnostic::warning("precision", "the source trains with fp32 master weights (autocast); TorchTune trains pure bf16")
                    .with_help("expect the loss curves to drift apart slowly; pass dtype: fp32 for fp32 weights at twice the memory"),
            );
        }
    }
    // Memory: offloading checkpointing is checkpointing plus activation offloading.
    if spec.memory.gradient_checkpointing == "offload" {
        carried(
            em,
            "enable_activation_checkpointing",
            json!(true),
            &["memory.gradient_checkpointing"],
            "",
        );
        carried(
            em,
            "enable_activation_offloading",
            json!(true),
            &["memory.activation_offloading"],
            "",
        );
        let note = "recomputation with CPU offload: TorchTune offloads the checkpointed activations (same math, different memory)";
        em.cover(
            "memory.gradient_checkpointing",
            Status::Approximated,
            "enable_activation_offloading",
            note,
        );
        if !spec.memory.activation_offloading {
            em.cover(
                "memory.activation_offloading",
                Status::Approximated,
                "enable_activation_offloading",
                note,
            );
        }
    } else if spec.memory.activation_offloading && spec.memory.gradient_checkpointing == "off" {
        em.warnings.push(
            Diagnostic::warning(
                "conflict",
                "TorchTune offloads activations only together with activation checkpointing",
            )
            .with_help("turn on gradient checkpointing"),
        );
    }
}

fn write_parallel(em: &mut Emitter, spec: &RunSpec, recipe: &Recipe) {
    let p = &spec.parallel;
    if !recipe.distributed {
        em.cover("parallel.strategy", Status::Carried, "", "");
        em.cover("parallel.zero_stage", Status::Defaulted, "", "");
        em.cover("parallel.reshard_after_forward", Status::Defaulted, "", "");
        if p.cpu_offload {
            em.cover(
                "parallel.cpu_offload",
                Status::NotExpressible,
                "",
                "the single-device recipes do not offload parameters",
            );
        }
        return;
    }
    match p.strategy.as_str() {
        "fsdp2" => em.cover("parallel.strategy", Status::Carried, "", ""),
        "single" | "ddp" => em.cover(
            "parallel.strategy",
            Status::Approximated,
            "",
            "TorchTune's distributed recipes shard with FSDP2; same math as DDP",
        ),
        other => em.cover(
            "parallel.strategy",
            Status::Approximated,
            "",
            &format!("`{other}` → FSDP2 (reshard after forward ≈ ZeRO-3 / FULL_SHARD)"),
        ),
    }
    if p.zero_stage == 0 {
        em.cover("parallel.zero_stage", Status::Carried, "", "");
    } else {
        em.cover(
            "parallel.zero_stage",
            Status::Approximated,
            "fsdp_reshard_after_forward",
            "FSDP2 resharding after forward ≈ ZeRO-3; keeping parameters gathered ≈ ZeRO-2",
        );
    }
    if !p.deepspeed_config.is_empty() {
        em.cover(
            "parallel.deepspeed_config",
            Status::Approximated,
            "",
            "TorchTune uses FSDP2, not DeepSpeed",
        );
    }
    let reshard = p.reshard_after_forward && !(p.strategy == "deepspeed" && p.zero_stage < 3);
    if p.cpu_offload {
        carried(
            em,
            "fsdp_cpu_offload",
            json!(true),
            &["parallel.cpu_offload"],
            "",
        );
    }
    if !reshard {
        carried(
            em,
            "fsdp_reshard_after_forward",
            json!(false),
            &["parallel.reshard_after_forward"],
            "",
        );
    }
    if reshard != p.reshard_after_forward {
        em.cover(
            "parallel.reshard_after_forward",
            Status::Approximated,
            "fsdp_reshard_after_forward",
            "ZeRO-2 keeps parameters unsharded between forward and backward: FSDP2 without resharding",
        );
    }
}

fn write_logging(em: &mut Emitter, t: &Tables, spec: &RunSpec) {
    let l = &spec.logging;
    let logger =
        t.c.metric_logger
            .iter()
            .find(|m| m.write && m.tracker == l.tracker);
    match logger {
        Some(m) => {
            carried(
                em,
                "metric_logger._component_",
                json!(m.component),
                &["logging.tracker"],
                "",
            );
            match m.tracker.as_str() {
                "none" | "tensorboard" => carried(
                    em,
                    "metric_logger.log_dir",
                    json!("${output_dir}/logs"),
                    &[],
                    "",
                ),
                _ => {}
            }
            if !m.project.is_empty() && !l.project.is_empty() {
                carried(
                    em,
                    &format!("metric_logger.{}", m.project),
                    json!(l.project),
                    &["logging.project"],
                    "",
                );
            }
        }
        None => {
            carried(
                em,
                "metric_logger._component_",
                json!(t.c.metric_logger[0].component),
                &[],
                "",
            );
            carried(
                em,
                "metric_logger.log_dir",
                json!("${output_dir}/logs"),
                &[],
                "",
            );
            em.cover(
                "logging.tracker",
                Status::NotExpressible,
                "",
                &format!(
                    "no TorchTune metric logger for `{}`; DiskLogger is written",
                    l.tracker
                ),
            );
        }
    }
    if !l.project.is_empty() && logger.is_none_or(|m| m.project.is_empty()) {
        em.cover(
            "logging.project",
            Status::NotExpressible,
            "",
            "this metric logger has no project",
        );
    }
}

// ------------------------------------------------------------------- rendering

/// Lay the keys out as the shipped configs do: sections in order, `_component_` first in
/// every node.
fn render(
    t: &Tables,
    outs: &[Out],
    from: &str,
    source: &str,
    recipe: &Recipe,
    command: &str,
    download: Option<&str>,
) -> String {
    let top = |o: &Out| o.key.split('.').next().unwrap_or("").to_string();
    let section_of = |k: &str| {
        t.c.section
            .iter()
            .position(|s| s.keys.iter().any(|x| x == k))
            .unwrap_or(t.c.section.len())
    };
    let key_rank = |k: &str| {
        t.c.section
            .iter()
            .find_map(|s| s.keys.iter().position(|x| x == k))
            .unwrap_or(usize::MAX)
    };
    let mut order: Vec<(usize, &Out)> = outs.iter().enumerate().collect();
    order.sort_by_key(|(i, o)| {
        let k = top(o);
        let first_of_key = outs.iter().position(|x| top(x) == k).unwrap_or(*i);
        (
            section_of(&k),
            key_rank(&k),
            first_of_key,
            !o.key.ends_with("._component_"),
            *i,
        )
    });
    let mut sections: Vec<yaml_out::Section> = Vec::new();
    let mut current: Option<(usize, Vec<Out>)> = None;
    for (_, o) in order {
        let s = section_of(&top(o));
        match &mut current {
            Some((cs, items)) if *cs == s => items.push(o.clone()),
            _ => {
                if let Some((cs, items)) = current.take() {
                    sections.push(section(t, cs, &items));
                }
                current = Some((s, vec![o.clone()]));
            }
        }
    }
    if let Some((cs, items)) = current {
        sections.push(section(t, cs, &items));
    }
    let env = minijinja::Environment::new();
    env.render_str(
        data::template(FW),
        minijinja::context! { sections => sections, from => from, source => source, recipe => recipe.name, command => command, download => download },
    )
    .expect("the built-in TorchTune template renders")
}

fn section(t: &Tables, index: usize, outs: &[Out]) -> yaml_out::Section {
    yaml_out::Section {
        title: t
            .c
            .section
            .get(index)
            .map_or("Other".to_string(), |s| s.title.clone()),
        body: yaml_out::render(outs),
    }
}
