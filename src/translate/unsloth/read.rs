//! Script → IR: Unsloth's defaults first (`translators/unsloth/defaults.toml`), HF's where the
//! script configures `TrainingArguments`, then the field table, then what the table cannot
//! say: the method (QLoRA by default), target modules, truncation length (unsloth_zoo
//! `rl.py`, `dataset_utils.py`), warmup, precision, the datasets behind `train_dataset` with
//! their formatting function, and the masking `train_on_responses_only` adds.

use super::common::FW;
use super::python::{self, Py};
use super::script::{self, Script};
use super::script_data::script_data;
use crate::diag::{Diagnostic, Source, Span};
use crate::ir::{tree, BaseWeights, Method, Origin};
use crate::translate::reader::{Parsed, ReadError, Reader};
use crate::translate::{data, families};
use serde_json::{json, Value};

mod common;
mod datasets;
mod run;

use common::{arg, derived, ir_str, ir_u64};
use datasets::read_data;
use run::{read_precision, read_run, read_steps};

pub fn read(source: &Source) -> Result<Parsed, ReadError> {
    let module = python::parse(source).map_err(ReadError::Syntax)?;
    let table = data::table(FW);
    let script = script::build(&module, table);
    let mut r = Reader::new(source, &script.tree, table, data::defaults(FW));
    r.check_unsupported()?;
    r.consume("uses");
    let sd = script_data();
    for key in script.chosen.keys() {
        if r.get(key)
            .and_then(|e| e.node.as_map())
            .is_some_and(|m| m.is_empty())
        {
            r.consume(key); // `trainer.train()`: nothing to read
        }
        if let Some(spec) = sd.call(key) {
            for name in spec.structural.iter().chain(&spec.code) {
                r.consume(&format!("{key}.{name}"));
            }
        }
    }
    if script
        .call("SFTConfig")
        .is_some_and(|c| c.name == "TrainingArguments")
    {
        training_arguments_defaults(&mut r);
    }
    r.apply_table();
    for n in script.notes.clone() {
        r.warn(n);
    }
    if !read_model(&mut r, &script) {
        return r.finish(FW.name());
    }
    read_method(&mut r, &script);
    read_adapter(&mut r, &script);
    read_sequence(&mut r);
    read_memory(&mut r);
    read_data(&mut r, &script);
    read_steps(&mut r, &script);
    read_precision(&mut r);
    read_run(&mut r, &script);
    r.finish(FW.name())
}

/// HF `TrainingArguments` defaults replace Unsloth's for a script configured through it.
fn training_arguments_defaults(r: &mut Reader) {
    let ta = &script_data().training_arguments;
    let values = serde_json::to_value(&ta.values).unwrap_or(Value::Null);
    for (path, v) in tree::flatten(&values) {
        let origin = Origin::Default {
            framework: ta.framework.clone(),
            version: ta.version.clone(),
            note: ta.notes.get(&path).cloned().unwrap_or_default(),
        };
        r.set(&path, v, origin);
    }
}

// ---------------------------------------------------------------- model

/// Model, tokenizer, family, chat template. False when the script loads no model.
fn read_model(r: &mut Reader, s: &Script) -> bool {
    let Some(fp) = s.call("from_pretrained") else {
        r.warn(
            Diagnostic::error(
                "missing-key",
                "no `FastLanguageModel.from_pretrained(…)` call: the script loads no model tunebridge can read",
            )
            .with_help("load the model with `FastLanguageModel.from_pretrained(model_name = …)` or `FastModel.from_pretrained`"),
        );
        return false;
    };
    let base = ir_str(r, "model.base");
    if base.is_empty() {
        if r.get("from_pretrained.model_name").is_none() {
            r.warn(
                Diagnostic::error("missing-key", "`from_pretrained` has no `model_name`")
                    .at(Some(fp.callee_span))
                    .with_help("pass `model_name = \"org/model\"`"),
            );
        }
        return true;
    }
    r.set(
        "model.tokenizer",
        json!(base),
        derived(
            &["model.base"],
            "from_pretrained returns the model's own tokenizer",
        ),
    );
    match families::detect(&base) {
        Some(f) => r.set(
            "model.family",
            json!(f.name),
            derived(
                &["model.base"],
                format!("recognised as family {} (name, or the local folder's config.json and tokenizer)", f.name),
            ),
        ),
        None => {
            let span = r.get("from_pretrained.model_name").map(|e| e.node.span());
            r.warn(
                Diagnostic::warning("unknown-family", format!("cannot tell the model family of `{base}`"))
                    .at(span)
                    .with_help("TorchTune needs a family-specific builder; name the model by its hub id or point at a folder with config.json"),
            );
        }
    }
    let size = families::size_tag(&base);
    if !size.is_empty() {
        r.set(
            "model.size",
            json!(size),
            derived(&["model.base"], "parameter count in the model name"),
        );
    }
    if base.to_ascii_lowercase().ends_with("-unsloth-bnb-4bit") {
        let span = r.get("from_pretrained.model_name").map(|e| e.node.span());
        r.warn(
            Diagnostic::warning(
                "dynamic-quant",
                format!("`{base}` is an Unsloth dynamic 4-bit checkpoint: some modules stay in 16 bits, so quantising the 16-bit model elsewhere gives other weights"),
            )
            .at(span)
            .with_help("for parity runs, point the other framework at the same checkpoint or use the plain 16-bit model on both sides"),
        );
    }
    // Chat template.
    if let Some(e) = r.get("get_chat_template.chat_template") {
        let span = e.node.span();
        match e.node.to_value() {
            Value::String(name) => match script_data().template_by_unsloth(&name) {
                Some(t) => r.set_from(
                    "model.chat_template",
                    json!(t.ir),
                    "get_chat_template.chat_template",
                    Some(e.key_span),
                ),
                None => r.warn(
                    Diagnostic::warning("unknown-chat-template", format!("chat template `{name}` is not one tunebridge knows; the tokenizer's own template is assumed"))
                        .at(Some(span))
                        .with_help("see translators/unsloth/script.toml for the templates tunebridge maps"),
                ),
            },
            _ => r.warn(
                Diagnostic::warning(
                    "not-expressible",
                    "a custom chat template (a Jinja string) has no IR field; the tokenizer's own template is assumed",
                )
                .at(Some(span))
                .with_help("use one of Unsloth's named templates (`llama-3.1`, `chatml`, …)"),
            ),
        }
    }
    // `tokenizer.pad_token = "…"` and friends.
    for (target, value, span) in &s.module.attr_assigns {
        let Some(tok) = target.strip_prefix("tokenizer.") else {
            continue;
        };
        if let (true, Py::Str(v)) = (tok.ends_with("_token"), value) {
            r.set_from(
                &format!("model.special_tokens.{tok}"),
                json!(v),
                target,
                Some(*span),
            );
        }
    }
    true
}

/// Method and quantisation: QLoRA unless the script says otherwise (unsloth `models/loader.py` `FastLanguageModel.from_pretrained`).
fn read_method(r: &mut Reader, s: &Script) {
    let flag = |r: &Reader, k: &str| arg(r, &format!("from_pretrained.{k}"));
    let full = flag(r, "full_finetuning");
    let q4 = flag(r, "load_in_4bit");
    let q8 = flag(r, "load_in_8bit");
    let b16 = flag(r, "load_in_16bit");
    let is_true = |v: &Option<(Value, Span)>| v.as_ref().is_some_and(|(v, _)| *v == json!(true));
    // `weights` is a JSON value: bitsandbytes' `bnb_4bit_quant_type` goes in as written and
    // is checked against the IR's spellings when the spec is built.
    let set = |r: &mut Reader, method: Method, weights: Value, key: &str, span: Option<Span>| {
        r.set_from("adapter.method", json!(method), key, span);
        r.set_from("quantization.base_weights", weights, key, span);
    };
    if is_true(&full) {
        let span = full.as_ref().map(|f| f.1);
        set(
            r,
            Method::Full,
            json!(BaseWeights::None),
            "from_pretrained.full_finetuning",
            span,
        );
        if is_true(&q4) || is_true(&q8) {
            r.warn(
                Diagnostic::warning(
                    "conflict",
                    "full_finetuning trains every weight in 16 bits; the 4/8-bit loading flag is ignored",
                )
                .at(q4.as_ref().or(q8.as_ref()).map(|f| f.1))
                .with_help("drop load_in_4bit/load_in_8bit for a full fine-tune"),
            );
        }
        if let Some(c) = s.call("get_peft_model") {
            r.warn(
                Diagnostic::info(
                    "no-op",
                    "get_peft_model does nothing after full_finetuning = True; its LoRA settings are not read",
                )
                .at(Some(c.callee_span)),
            );
        }
        return;
    }
    if is_true(&q8) {
        set(
            r,
            Method::Lora,
            json!(BaseWeights::Int8),
            "from_pretrained.load_in_8bit",
            q8.map(|f| f.1),
        );
    } else if is_true(&b16) {
        set(
            r,
            Method::Lora,
            json!(BaseWeights::None),
            "from_pretrained.load_in_16bit",
            b16.map(|f| f.1),
        );
    } else {
        match &q4 {
            Some((Value::Bool(false), span)) => set(
                r,
                Method::Lora,
                json!(BaseWeights::None),
                "from_pretrained.load_in_4bit",
                Some(*span),
            ),
            Some((Value::Bool(true), span)) => set(
                r,
                Method::Qlora,
                json!(BaseWeights::Nf4),
                "from_pretrained.load_in_4bit",
                Some(*span),
            ),
            Some((other, span)) => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`load_in_4bit` must be True or False, found `{other}`"),
                )
                .at(Some(*span)),
            ),
            None => {}
        }
    }
    // A BitsAndBytesConfig passed as quantization_config overrides the flags.
    if let Some(cfg) = s
        .arg("from_pretrained", "quantization_config")
        .and_then(|a| s.call_of(&a.value))
    {
        let key = "from_pretrained.quantization_config";
        let span = Some(cfg.callee_span);
        let b = |k: &str| cfg.kwarg(k).map(|a| a.value.clone());
        if b("load_in_4bit") == Some(Py::Bool(true)) {
            let qt = b("bnb_4bit_quant_type")
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| "fp4".into());
            set(r, Method::Qlora, json!(qt), key, span);
            let dq = b("bnb_4bit_use_double_quant") == Some(Py::Bool(true));
            r.set_from("quantization.double_quant", json!(dq), key, span);
        } else if b("load_in_8bit") == Some(Py::Bool(true)) {
            set(r, Method::Lora, json!(BaseWeights::Int8), key, span);
        }
    }
    if s.call("get_peft_model").is_none() {
        r.warn(
            Diagnostic::error(
                "missing-key",
                "no `get_peft_model(…)` call and no `full_finetuning = True`: nothing would be trained",
            )
            .with_help("add `model = FastLanguageModel.get_peft_model(model, r = 16, …)` or pass `full_finetuning = True`"),
        );
    }
}

const TO_SAVE: [&str; 2] = ["embed_tokens", "lm_head"];

fn family_linear(r: &Reader) -> Vec<String> {
    let family = ir_str(r, "model.family");
    families::by_name(&family)
        .or_else(|| families::by_name("llama"))
        .map(|f| f.linear.clone())
        .unwrap_or_default()
}

fn read_adapter(r: &mut Reader, s: &Script) {
    let method = ir_str(r, "adapter.method");
    let loader = s
        .call("from_pretrained")
        .map(|c| c.receiver_text.clone())
        .unwrap_or_default();
    let fast_model = !loader.starts_with("FastLanguageModel")
        && matches!(
            loader.as_str(),
            "FastModel" | "FastTextModel" | "FastVisionModel"
        );
    if method != "full" {
        let mut to_save: Vec<String> = Vec::new();
        match arg(r, "get_peft_model.target_modules") {
            Some((Value::Array(items), span)) => {
                let names: Vec<String> = items.iter().filter_map(|v| v.as_str().map(String::from)).collect();
                let (save, targets): (Vec<String>, Vec<String>) =
                    names.into_iter().partition(|n| TO_SAVE.contains(&n.as_str()));
                to_save.extend(save);
                r.set_from("adapter.target_modules", json!(targets), "get_peft_model.target_modules", Some(span));
            }
            Some((Value::String(s), span)) if s == "all-linear" => {
                let linear = family_linear(r);
                r.set_from("adapter.target_modules", json!(linear), "get_peft_model.target_modules", Some(span));
                r.set_from("adapter.target_all_linear", json!(true), "get_peft_model.target_modules", Some(span));
            }
            Some((other, span)) => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`target_modules` must be a list of module names or \"all-linear\", found `{}`", crate::translate::report::compact(&other)),
                )
                .at(Some(span)),
            ),
            None if fast_model => {
                // FastModel.get_peft_model: target_modules=None → every linear layer, filtered by
                // finetune_attention_modules / finetune_mlp_modules (unsloth `models/llama.py` `get_peft_model`).
                let on = |r: &Reader, k: &str| {
                    arg(r, &format!("get_peft_model.{k}")).is_none_or(|(v, _)| v != json!(false))
                };
                let (attn, mlp) = (on(r, "finetune_attention_modules"), on(r, "finetune_mlp_modules"));
                let linear: Vec<String> = family_linear(r)
                    .into_iter()
                    .filter(|m| {
                        let is_attn = m.contains("proj") && ["q_", "k_", "v_", "o_", "qkv"].iter().any(|p| m.starts_with(p));
                        if is_attn { attn } else { mlp }
                    })
                    .collect();
                let all = attn && mlp;
                r.set("adapter.target_modules", json!(linear), derived(&["model.family"], format!("{loader}.get_peft_model without target_modules adapts every linear layer{}", if all { "" } else { " of the selected kinds" })));
                if all {
                    r.set("adapter.target_all_linear", json!(true), derived(&["model.family"], "FastModel default: all linear layers"));
                }
            }
            None => {}
        }
        if let Some((Value::Array(items), _)) = arg(r, "get_peft_model.modules_to_save") {
            to_save.extend(items.iter().filter_map(|v| v.as_str().map(String::from)));
        }
        if !to_save.is_empty() {
            to_save.dedup();
            let span = r
                .get("get_peft_model.target_modules")
                .or(r.get("get_peft_model.modules_to_save"))
                .map(|e| e.key_span);
            r.set_from(
                "adapter.modules_to_save",
                json!(to_save),
                "get_peft_model.target_modules",
                span,
            );
        }
        if arg(r, "get_peft_model.finetune_vision_layers").is_some_and(|(v, _)| v == json!(true)) {
            r.warn(
                Diagnostic::info("not-expressible", "finetune_vision_layers = True also adapts a vision tower, which text training never runs")
                    .at(r.get("get_peft_model.finetune_vision_layers").map(|e| e.key_span)),
            );
        }
        if let Some(a) = s.arg("get_peft_model", "loftq_config") {
            if !matches!(&a.value, Py::None | Py::Dict(_))
                || matches!(&a.value, Py::Dict(d) if !d.is_empty())
            {
                r.warn(
                    Diagnostic::warning("not-expressible", "a LoftQ config initialises LoRA from the quantisation error; the IR keeps only `adapter.init`")
                        .at(Some(a.span)),
                );
            }
        }
    }
    // Unsloth's fused LoRA kernels: FastLanguageModel fast path, dropout 0, no bias, no DoRA.
    let model_type = families::by_name(&ir_str(r, "model.family")).map(|f| f.hf_model_type.clone());
    let fast_path = !fast_model
        && model_type
            .as_ref()
            .is_none_or(|t| script_data().fast_path_model_types.contains(t));
    let dropout = r
        .ir_value("adapter.dropout")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let plain = dropout == 0.0
        && ir_str(r, "adapter.bias") == "none"
        && r.ir_value("adapter.use_dora") != Some(&json!(true));
    if method == "full" || !fast_path || !plain {
        let why = if method == "full" {
            "a full fine-tune has no LoRA kernels"
        } else if !fast_path {
            "models outside the FastLanguageModel fast path run PEFT's LoRA through compiled modeling code"
        } else {
            "the fast LoRA path needs dropout 0, bias \"none\" and no DoRA (unsloth `kernels/`, the fast LoRA path)"
        };
        r.set(
            "adapter.fused_kernels",
            json!(false),
            derived(&["adapter.method", "adapter.dropout", "model.family"], why),
        );
    }
    if !fast_path {
        r.set(
            "memory.compile",
            json!(true),
            derived(&["model.family"], "FastModel runs torch.compile'd patched modeling code (unsloth `models/loader.py` FastModel, `unsloth/kernels/`)"),
        );
    }
}

// ---------------------------------------------------------------- sequence and memory

/// Truncation length: the SFT config's max_seq_length/max_length capped by the model's
/// (unsloth_zoo `rl.py`, `dataset_utils.py`).
fn read_sequence(r: &mut Reader) {
    if let Some((v, span)) = arg(r, "from_pretrained.max_seq_length") {
        match v.as_u64() {
            Some(n) => r.set_from(
                "data.sequence_len",
                json!(n),
                "from_pretrained.max_seq_length",
                Some(span),
            ),
            None => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`max_seq_length` must be an integer, found `{v}`"),
                )
                .at(Some(span)),
            ),
        }
    }
    let model_len = ir_u64(r, "data.sequence_len");
    for key in [
        "SFTTrainer.max_seq_length",
        "SFTConfig.max_seq_length",
        "SFTConfig.max_length",
    ] {
        if let Some((v, span)) = arg(r, key) {
            if let Some(n) = v.as_u64() {
                if n < model_len {
                    r.set_from("data.sequence_len", json!(n), key, Some(span));
                }
                break;
            }
        }
    }
}

fn read_memory(r: &mut Reader) {
    let gc = arg(r, "get_peft_model.use_gradient_checkpointing")
        .map(|(v, s)| (v, s, "get_peft_model.use_gradient_checkpointing"))
        .or_else(|| {
            arg(r, "from_pretrained.use_gradient_checkpointing")
                .map(|(v, s)| (v, s, "from_pretrained.use_gradient_checkpointing"))
        });
    if let Some((v, span, key)) = gc {
        let mode = match &v {
            Value::String(s) if s == "unsloth" => "offload",
            Value::Bool(true) => "on",
            Value::Bool(false) => "off",
            _ => {
                r.warn(
                    Diagnostic::warning("type-mismatch", format!("use_gradient_checkpointing `{v}` is not \"unsloth\", True or False; \"unsloth\" is assumed"))
                        .at(Some(span)),
                );
                "offload"
            }
        };
        r.set_from(
            "memory.gradient_checkpointing",
            json!(mode),
            key,
            Some(span),
        );
    }
    if ir_str(r, "memory.gradient_checkpointing") == "offload"
        && ir_u64(r, "data.sequence_len") < 512
    {
        r.set(
            "memory.gradient_checkpointing",
            json!("on"),
            derived(
                &["data.sequence_len"],
                "Unsloth falls back to plain recomputation below 512 tokens (_utils.py L360)",
            ),
        );
    }
    if let Some((v, span)) = arg(r, "SFTConfig.gradient_checkpointing") {
        if v == json!(false) && ir_str(r, "memory.gradient_checkpointing") != "off" {
            r.warn(
                Diagnostic::info("no-op", "SFTConfig(gradient_checkpointing = False) does not undo Unsloth's checkpointing; get_peft_model's use_gradient_checkpointing decides")
                    .at(Some(span)),
            );
        }
    }
}
