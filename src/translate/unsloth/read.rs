//! Script → IR: Unsloth's defaults first (`translators/unsloth/defaults.toml`), HF's where the
//! script configures `TrainingArguments`, then the field table, then what the table cannot
//! say: the method (QLoRA by default), target modules, truncation length (research/unsloth.md
//! §4.8), warmup, precision, the datasets behind `train_dataset` with their formatting
//! function, and the masking `train_on_responses_only` adds.

use super::format::{self, split_slots, Formatting};
use super::python::{self, Py};
use super::script::{self, DataSource, Script};
use super::{script_data, FW};
use crate::diag::{Diagnostic, Source, Span};
use crate::ir::{tree, Origin};
use crate::translate::reader::{Parsed, ReadError, Reader};
use crate::translate::{data, families};
use serde_json::{json, Value};

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

/// Value and key span of a tree key, unless absent or null.
fn arg(r: &Reader, key: &str) -> Option<(Value, Span)> {
    let e = r.get(key)?;
    let v = e.node.to_value();
    (!v.is_null()).then_some((v, e.key_span))
}

fn derived(from: &[&str], rule: impl Into<String>) -> Origin {
    Origin::Derived {
        from: from.iter().map(|s| s.to_string()).collect(),
        rule: rule.into(),
    }
}

fn ir_str(r: &Reader, path: &str) -> String {
    r.ir_value(path)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn ir_u64(r: &Reader, path: &str) -> u64 {
    r.ir_value(path).and_then(Value::as_u64).unwrap_or(0)
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
                format!("model name matches family {}", f.name),
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

/// Method and quantisation: QLoRA unless the script says otherwise (research/unsloth.md §1.1).
fn read_method(r: &mut Reader, s: &Script) {
    let flag = |r: &Reader, k: &str| arg(r, &format!("from_pretrained.{k}"));
    let full = flag(r, "full_finetuning");
    let q4 = flag(r, "load_in_4bit");
    let q8 = flag(r, "load_in_8bit");
    let b16 = flag(r, "load_in_16bit");
    let is_true = |v: &Option<(Value, Span)>| v.as_ref().is_some_and(|(v, _)| *v == json!(true));
    let set = |r: &mut Reader, method: &str, weights: &str, key: &str, span: Option<Span>| {
        r.set_from("adapter.method", json!(method), key, span);
        r.set_from("quantization.base_weights", json!(weights), key, span);
    };
    if is_true(&full) {
        let span = full.as_ref().map(|f| f.1);
        set(r, "full", "none", "from_pretrained.full_finetuning", span);
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
            "lora",
            "int8",
            "from_pretrained.load_in_8bit",
            q8.map(|f| f.1),
        );
    } else if is_true(&b16) {
        set(
            r,
            "lora",
            "none",
            "from_pretrained.load_in_16bit",
            b16.map(|f| f.1),
        );
    } else {
        match &q4 {
            Some((Value::Bool(false), span)) => set(
                r,
                "lora",
                "none",
                "from_pretrained.load_in_4bit",
                Some(*span),
            ),
            Some((Value::Bool(true), span)) => set(
                r,
                "qlora",
                "nf4",
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
            set(r, "qlora", &qt, key, span);
            let dq = b("bnb_4bit_use_double_quant") == Some(Py::Bool(true));
            r.set_from("quantization.double_quant", json!(dq), key, span);
        } else if b("load_in_8bit") == Some(Py::Bool(true)) {
            set(r, "lora", "int8", key, span);
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
                // finetune_attention_modules / finetune_mlp_modules (research/unsloth.md §1.3).
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
            "the fast LoRA path needs dropout 0, bias \"none\" and no DoRA (research/unsloth.md §3.1)"
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
            derived(&["model.family"], "FastModel runs torch.compile'd patched modeling code (research/unsloth.md §1.2, §3.1)"),
        );
    }
}

// ---------------------------------------------------------------- sequence and memory

/// Truncation length: the SFT config's max_seq_length/max_length capped by the model's
/// (research/unsloth.md §4.8).
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

// ---------------------------------------------------------------- data

/// What one dataset's rows become.
struct Shaped {
    ds: Value,
    eos: Option<bool>,
    chat: bool,
}

fn read_data(r: &mut Reader, s: &Script) {
    let Some(trainer) = s.call("SFTTrainer") else {
        r.warn(
            Diagnostic::error("missing-key", "no `SFTTrainer(…)` call: the script does not train")
                .with_help("train with `trainer = SFTTrainer(model = model, train_dataset = dataset, args = SFTConfig(…))`"),
        );
        return;
    };
    let Some(train) = s.arg("SFTTrainer", "train_dataset") else {
        r.warn(
            Diagnostic::error("missing-key", "`SFTTrainer` has no `train_dataset`")
                .at(Some(trainer.callee_span))
                .with_help("pass `train_dataset = dataset`"),
        );
        return;
    };
    // A script that trains several times (continued pretraining, then instruction tuning):
    // the IR holds one run, the first.
    let trainers: Vec<usize> = s
        .module
        .calls
        .iter()
        .filter(|c| c.name == "train")
        .filter_map(|c| match &c.receiver {
            Some(Py::Call(k)) => Some(*k),
            _ => None,
        })
        .collect();
    let mut distinct = trainers.clone();
    distinct.dedup();
    if distinct.len() > 1 {
        r.warn(
            Diagnostic::warning(
                "several-runs",
                format!(
                    "the script calls `train()` on {} trainers; only the first run is read",
                    distinct.len()
                ),
            )
            .at(Some(trainer.callee_span))
            .with_help("split the stages into separate scripts to port each one"),
        );
    }
    let plan = match script::plan_of(s, &train.value, train.span, 0) {
        Ok(p) => p,
        Err(d) => {
            r.warn(d);
            return;
        }
    };
    for w in plan.warnings.clone() {
        r.warn(w);
    }
    let text_field = arg(r, "SFTTrainer.dataset_text_field")
        .or_else(|| arg(r, "SFTConfig.dataset_text_field"))
        .and_then(|(v, _)| v.as_str().map(String::from))
        .filter(|f| !f.is_empty());
    let formatting_func = s
        .arg("SFTTrainer", "formatting_func")
        .and_then(|a| match &a.value {
            Py::Name(n) => s.module.functions.get(n).copied(),
            Py::Lambda(span) => Some(*span),
            _ => None,
        });
    let mut shaped = Vec::new();
    for src in &plan.sources {
        shaped.push(shape(r, s, src, text_field.as_deref(), formatting_func));
    }
    let chat = shaped.iter().any(|d| d.chat);
    // Masking.
    let mut train_on_inputs = true;
    let tor = s.call("train_on_responses_only");
    let markers = tor.map(|c| markers_for(r, c.callee_span));
    if tor.is_some() {
        train_on_inputs = false;
    }
    let assistant_only =
        arg(r, "SFTConfig.assistant_only_loss").is_some_and(|(v, _)| v == json!(true));
    if assistant_only && tor.is_none() {
        train_on_inputs = false;
    }
    let mut datasets = Vec::new();
    for mut d in shaped.iter().map(|d| d.ds.clone()) {
        if let Some(Some(m)) = &markers {
            d["response_markers"] = json!({"instruction": m.0, "response": m.1});
        }
        datasets.push(d);
    }
    let key_span = r.get("SFTTrainer.train_dataset").map(|e| e.key_span);
    r.set_from(
        "data.datasets",
        Value::Array(datasets),
        "SFTTrainer.train_dataset",
        key_span,
    );
    if let Some(c) = tor {
        r.set_from(
            "data.train_on_inputs",
            json!(false),
            "train_on_responses_only",
            Some(c.callee_span),
        );
        r.set("data.drop_fully_masked", json!(true), derived(&["data.train_on_inputs"], "train_on_responses_only drops rows whose labels are all -100 (dataset_utils.py L1095)"));
    } else if !train_on_inputs {
        let span = r.get("SFTConfig.assistant_only_loss").map(|e| e.key_span);
        r.set_from(
            "data.train_on_inputs",
            json!(false),
            "SFTConfig.assistant_only_loss",
            span,
        );
    }
    // EOS: appended by the formatting function for text; part of the template for chat.
    let eos: Vec<bool> = shaped.iter().filter_map(|d| d.eos).collect();
    if chat && eos.is_empty() {
        r.set(
            "data.add_eos",
            json!(true),
            derived(
                &["data.datasets"],
                "the chat template closes every turn with its end-of-turn token",
            ),
        );
    } else if let Some(&first) = eos.first() {
        if eos.iter().any(|&e| e != first) {
            r.warn(
                Diagnostic::warning("conflict", "some datasets append EOS and others do not; the IR has one `data.add_eos`, set to true")
                    .at(Some(train.span)),
            );
        }
        let any = eos.iter().any(|&e| e);
        let span = plan.sources.first().map(|s| s.span);
        r.set(
            "data.add_eos",
            json!(any),
            match span {
                Some(sp) if any => r.origin_of("formatting function `+ EOS_TOKEN`", Some(sp)),
                _ => derived(&["data.datasets"], "the formatting function appends no EOS, and Unsloth adds none to text (research/unsloth.md §4.9)"),
            },
        );
    }
    if let Some((size, span)) = plan.val_size {
        r.set_from(
            "data.val_size",
            json!(size),
            "train_test_split.test_size",
            Some(span),
        );
    }
    // Padding-free batching (research/unsloth.md §4.12).
    if let Some((v, span)) = arg(r, "SFTConfig.padding_free") {
        r.set_from(
            "data.padding_free",
            json!(v == json!(true)),
            "SFTConfig.padding_free",
            Some(span),
        );
    } else if let Some(c) = s.arg("SFTTrainer", "data_collator") {
        r.set(
            "data.padding_free",
            json!(false),
            derived(
                &["data.datasets"],
                format!(
                    "a custom data_collator (`{}`) turns Unsloth's auto padding-free off",
                    s.text(c.span).split('(').next().unwrap_or("")
                ),
            ),
        );
    } else if r.ir_value("data.packing") == Some(&json!(true)) {
        r.set(
            "data.padding_free",
            json!(false),
            derived(&["data.packing"], "packing replaces padding-free batching"),
        );
    } else if matches!(ir_str(r, "model.family").as_str(), "gemma2") {
        r.set(
            "data.padding_free",
            json!(false),
            derived(
                &["model.family"],
                "Unsloth does not auto-enable padding-free for Gemma-2 (trainer.py L97)",
            ),
        );
    }
}

/// Keys of each message when they are not `role`/`content`: ShareGPT's `from`/`value` after
/// `standardize_sharegpt`, or the `mapping` given to `get_chat_template`.
fn message_keys(r: &Reader, s: &Script, src: &DataSource, ds: &mut Value) {
    let mut keys: Vec<(String, String)> = Vec::new();
    if src.standardized.as_deref() == Some("standardize_sharegpt") {
        keys = vec![
            ("role".into(), "from".into()),
            ("content".into(), "value".into()),
        ];
    }
    if let Some(a) = s.arg("get_chat_template", "mapping") {
        if let Py::Dict(kv) = &a.value {
            for (k, v) in kv {
                if let (Some(k @ ("role" | "content")), Some(v)) = (k.as_str(), v.as_str()) {
                    keys.retain(|(kk, _)| kk != k);
                    keys.push((k.to_string(), v.to_string()));
                }
            }
        }
    }
    let _ = r;
    keys.retain(|(k, v)| k != v);
    if keys.is_empty() {
        return;
    }
    if !ds["columns"].is_object() {
        ds["columns"] = json!({});
    }
    for (k, v) in keys {
        ds["columns"][k] = json!(v);
    }
}

/// The messages column, named only when it is not the default `messages`.
fn set_messages(ds: &mut Value, col: &str) {
    if col != "messages" {
        ds["columns"] = json!({ "messages": col });
    }
}

/// Instruction/response markers of `train_on_responses_only`: written, or what Unsloth
/// detects from the chat template.
fn markers_for(r: &mut Reader, span: Span) -> Option<(String, String)> {
    let given = |r: &Reader, k: &str| {
        arg(r, &format!("train_on_responses_only.{k}"))
            .and_then(|(v, _)| v.as_str().map(String::from))
    };
    if let (Some(i), Some(p)) = (given(r, "instruction_part"), given(r, "response_part")) {
        return Some((i, p));
    }
    let mut template = ir_str(r, "model.chat_template");
    if template == "tokenizer_default" {
        template = families::by_name(&ir_str(r, "model.family"))
            .map(|f| f.chat_template.clone())
            .unwrap_or_default();
    }
    let t = script_data()
        .template_by_ir(&template)
        .filter(|t| !t.instruction_part.is_empty());
    match t {
        Some(t) => Some((t.instruction_part.clone(), t.response_part.clone())),
        None => {
            r.warn(
                Diagnostic::info("auto-markers", "train_on_responses_only detects its markers from the chat template at run time; tunebridge cannot tell them")
                    .at(Some(span))
                    .with_help("pass instruction_part = … and response_part = … explicitly"),
            );
            None
        }
    }
}

/// Roles of template slots: by variable name where it says, else by position.
fn slot_roles(vars: &[String], n: usize) -> Vec<String> {
    let named = ["instruction", "input", "output", "response"];
    if n > 0 && vars.len() == n && vars.iter().all(|v| named.contains(&v.as_str())) {
        return vars
            .iter()
            .map(|v| {
                if v == "response" {
                    "output".into()
                } else {
                    v.clone()
                }
            })
            .collect();
    }
    match n {
        3 => vec!["instruction".into(), "input".into(), "output".into()],
        2 => vec!["instruction".into(), "output".into()],
        1 => vec!["output".into()],
        _ => (0..n).map(|i| format!("field{i}")).collect(),
    }
}

/// A prompt text with `{role}` placeholders and, per template slot, its role and the column it
/// reads (`None`: a slot filled by something other than a dataset column).
type Prompt = (String, Vec<(String, Option<String>)>);

/// A template with `{}` slots as the IR's prompt (placeholders by role, response slot
/// dropped). `None` when the text does not end at the response slot.
fn prompt_of(t: &format::TemplateUse, has_output: bool) -> Option<Prompt> {
    let parts = split_slots(&t.template)?;
    let n = parts.len() - 1;
    if n != t.slots.len() || (has_output && !parts[n].is_empty()) {
        return None;
    }
    let vars: Vec<String> = t.slots.iter().map(|s| s.var.clone()).collect();
    let roles = if has_output {
        slot_roles(&vars, n)
    } else {
        let mut r = slot_roles(
            &vars
                .iter()
                .cloned()
                .chain(["output".to_string()])
                .collect::<Vec<_>>(),
            n + 1,
        );
        r.pop();
        r
    };
    let mut prompt = parts[0].clone();
    let mut cols = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        if role != "output" {
            prompt.push_str(&format!("{{{role}}}"));
            prompt.push_str(&parts[i + 1]);
        }
        cols.push((role.clone(), t.slots[i].column.clone()));
    }
    // With the response slot last, `prompt` already ends right before it.
    Some((prompt, cols))
}

fn shape(
    r: &mut Reader,
    s: &Script,
    src: &DataSource,
    text_field: Option<&str>,
    formatting_func: Option<Span>,
) -> Shaped {
    let mut ds = json!({"path": src.path, "split": src.split});
    if !src.loader.is_empty() {
        ds["loader"] = json!(src.loader);
    }
    if !src.data_files.is_empty() {
        ds["data_files"] = json!(src.data_files);
    }
    if !src.name.is_empty() {
        ds["name"] = json!(src.name);
    }
    let original = |col: &str| {
        let mut c = col.to_string();
        for (from, to) in src.renames.iter().rev() {
            if c == *to {
                c = from.clone();
            }
        }
        c
    };
    let mut funcs: Vec<(Span, Span)> = src.maps.clone();
    if let Some(f) = formatting_func {
        funcs.push((f, f));
    }
    if funcs.len() > 1 {
        r.warn(
            Diagnostic::warning("not-expressible", "several functions are mapped over the dataset; only the last one is read as its formatting")
                .at(Some(funcs[0].1)),
        );
    }
    let summary: Option<Formatting> = funcs
        .last()
        .and_then(|(f, _)| format::analyze(s.module, *f));
    let Some(f) = summary else {
        // No formatting function: the text column or the conversations as they are.
        if src.standardized.is_some()
            || (text_field.is_none() && ir_str(r, "model.chat_template") != "tokenizer_default")
        {
            ds["format"] = json!("chat_template");
            set_messages(
                &mut ds,
                &original(if src.standardized.is_some() {
                    "conversations"
                } else {
                    "messages"
                }),
            );
            message_keys(r, s, src, &mut ds);
            ds["roles_to_train"] = json!(["assistant"]);
            return Shaped {
                ds,
                eos: None,
                chat: true,
            };
        }
        ds["format"] = json!("completion");
        ds["columns"] = json!({"text": original(text_field.unwrap_or("text"))});
        return Shaped {
            ds,
            eos: Some(false),
            chat: false,
        };
    };
    if let (Some(out), Some(field)) = (&f.output_column, text_field) {
        if out != field {
            r.warn(
                Diagnostic::warning("conflict", format!("the formatting function returns column `{out}` but the trainer reads `dataset_text_field = \"{field}\"`"))
                    .at(Some(f.span)),
            );
        }
    }
    let unreadable = |r: &mut Reader, ds: &mut Value, why: &str| {
        r.warn(
            Diagnostic::warning("unreadable-format", format!("the formatting function is not one tunebridge can read ({why}); the dataset is read as plain text"))
                .at(Some(f.span))
                .with_help("use the notebook shapes: an Alpaca prompt with `.format(…) + EOS_TOKEN`, `tokenizer.apply_chat_template(…)`, or text + EOS_TOKEN"),
        );
        ds["format"] = json!("completion");
        ds["columns"] = json!({"text": f.output_column.clone().or(text_field.map(String::from)).unwrap_or_else(|| "text".into())});
    };
    if !f.templates.is_empty() {
        let chat_wrapped = f.chat_messages.is_some();
        let prompts: Option<Vec<Prompt>> = f
            .templates
            .iter()
            .map(|t| prompt_of(t, !chat_wrapped))
            .collect();
        let Some(mut prompts) = prompts.filter(|p| p.len() <= 2) else {
            unreadable(r, &mut ds, "its prompt template has named fields, text after the response, or more than two variants");
            return Shaped {
                ds,
                eos: Some(f.eos),
                chat: false,
            };
        };
        // With-input prompt first.
        prompts.sort_by_key(|(p, _)| !p.contains("{input}"));
        let with = prompts[0].0.clone();
        let without = prompts
            .get(1)
            .map(|p| p.0.clone())
            .unwrap_or_else(|| with.replace("{input}", ""));
        let mut columns = serde_json::Map::new();
        for (role, col) in prompts.iter().flat_map(|p| p.1.iter()) {
            if let Some(c) = col {
                columns.entry(role.clone()).or_insert(json!(original(c)));
            }
        }
        if chat_wrapped {
            // The Alpaca text becomes the user turn of a chat template (TorchTune's framing).
            columns
                .entry("output".to_string())
                .or_insert(json!("output"));
        }
        let defaults = columns.iter().all(|(k, v)| v.as_str() == Some(k.as_str()));
        let style = script_data()
            .alpaca_style
            .iter()
            .find(|st| st.with_input() == with && st.no_input() == without && prompts.len() == 2);
        match (style, chat_wrapped) {
            (Some(st), false) => {
                ds["format"] = json!("alpaca");
                ds["prompt_style"] = json!(st.names[0]);
                if !defaults {
                    ds["columns"] = Value::Object(columns);
                }
            }
            (Some(_), true) => {
                ds["format"] = json!("alpaca");
                ds["prompt_style"] = json!("alpaca_chat_template");
                if !defaults {
                    ds["columns"] = Value::Object(columns);
                }
                return Shaped {
                    ds,
                    eos: None,
                    chat: true,
                };
            }
            (None, true) => {
                unreadable(r, &mut ds, "a custom prompt wrapped in a chat template");
                return Shaped {
                    ds,
                    eos: Some(f.eos),
                    chat: false,
                };
            }
            (None, false) => {
                // The IR's `instruct` carries every field of a user-defined prompt; the system
                // ones are empty here (Axolotl's user_defined.py defaults).
                let mut cols = serde_json::Map::new();
                cols.insert("system".into(), json!("system"));
                for role in ["instruction", "input", "output"] {
                    cols.insert(
                        role.into(),
                        columns.get(role).cloned().unwrap_or(json!(role)),
                    );
                }
                ds["format"] = json!("instruct");
                ds["columns"] = Value::Object(cols);
                ds["templates"] = json!({"format": with, "no_input_format": without, "system_format": "{system}", "system_prompt": ""});
            }
        }
        return Shaped {
            ds,
            eos: Some(f.eos),
            chat: false,
        };
    }
    if let Some(col) = &f.chat_messages {
        // A user/assistant turn built from two columns (TorchTune's instruct framing).
        let var_col = |name: &str| {
            f.vars
                .iter()
                .find(|(v, _)| v == name)
                .map(|(_, c)| original(c))
        };
        // Turns built from two columns read in user-then-assistant order (Granite notebook).
        let pair = (f.columns_read.len() == 2)
            .then(|| (original(&f.columns_read[0]), original(&f.columns_read[1])));
        let named = var_col("input").zip(var_col("output"));
        if let (None, Some((input, output))) = (col, named.or(pair)) {
            ds["format"] = json!("instruct");
            ds["prompt_style"] = json!("chat_template");
            ds["columns"] = json!({"input": input, "output": output});
            return Shaped {
                ds,
                eos: None,
                chat: true,
            };
        }
        let col = col
            .clone()
            .or_else(|| f.columns_read.first().cloned())
            .unwrap_or_else(|| "messages".into());
        ds["format"] = json!("chat_template");
        set_messages(&mut ds, &original(&col));
        message_keys(r, s, src, &mut ds);
        ds["roles_to_train"] = json!(["assistant"]);
        return Shaped {
            ds,
            eos: None,
            chat: true,
        };
    }
    if f.columns_read.len() == 1 {
        ds["format"] = json!("completion");
        ds["columns"] = json!({"text": original(&f.columns_read[0])});
        return Shaped {
            ds,
            eos: Some(f.eos),
            chat: false,
        };
    }
    unreadable(
        r,
        &mut ds,
        "no prompt template, chat template or single text column",
    );
    Shaped {
        ds,
        eos: Some(f.eos),
        chat: false,
    }
}

// ---------------------------------------------------------------- steps, precision, run

fn read_steps(r: &mut Reader, s: &Script) {
    if let Some(e) = r.get("SFTConfig.max_steps") {
        let span = e.key_span;
        match e.node.to_value() {
            Value::Number(n) if n.as_i64().is_some_and(|i| i > 0) => r.set_from(
                "training.max_steps",
                json!(n.as_i64()),
                "SFTConfig.max_steps",
                Some(span),
            ),
            Value::Number(_) | Value::Null => r.set_from(
                "training.max_steps",
                json!(0),
                "SFTConfig.max_steps",
                Some(span),
            ),
            other => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`max_steps` must be an integer, found `{other}`"),
                )
                .at(Some(e.node.span())),
            ),
        }
    }
    // Warmup: HF uses warmup_steps when > 0, else ceil(warmup_ratio × total steps). With
    // transformers ≥ 5 a warmup_steps below 1 is a ratio.
    let steps = arg(r, "SFTConfig.warmup_steps");
    let ratio = arg(r, "SFTConfig.warmup_ratio");
    match steps {
        Some((v, span)) if v.as_f64().is_some_and(|f| f > 0.0 && f < 1.0) => {
            r.set_from(
                "schedule.warmup_ratio",
                v,
                "SFTConfig.warmup_steps",
                Some(span),
            );
        }
        Some((v, span)) if v.as_u64().is_some_and(|n| n > 0) => {
            r.set_from(
                "schedule.warmup_steps",
                v,
                "SFTConfig.warmup_steps",
                Some(span),
            );
            if ratio.is_none() {
                r.set(
                    "schedule.warmup_ratio",
                    json!(0.0),
                    derived(
                        &["schedule.warmup_steps"],
                        "warmup_steps > 0 overrides warmup_ratio",
                    ),
                );
            }
        }
        Some((v, span)) if v.as_f64() == Some(0.0) => {
            r.set_from(
                "schedule.warmup_steps",
                json!(0),
                "SFTConfig.warmup_steps",
                Some(span),
            );
        }
        Some((v, span)) => r.warn(
            Diagnostic::error(
                "type-mismatch",
                format!("`warmup_steps` must be a number, found `{v}`"),
            )
            .at(Some(span)),
        ),
        None => {}
    }
    if let Some((v, span)) = ratio {
        match v.as_f64() {
            Some(f) => r.set_from(
                "schedule.warmup_ratio",
                json!(f),
                "SFTConfig.warmup_ratio",
                Some(span),
            ),
            None => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`warmup_ratio` must be a number, found `{v}`"),
                )
                .at(Some(span)),
            ),
        }
    }
    let steps_set = ir_u64(r, "schedule.warmup_steps") > 0;
    let ratio_v = r
        .ir_value("schedule.warmup_ratio")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let max_steps = ir_u64(r, "training.max_steps");
    if !steps_set && ratio_v > 0.0 && max_steps > 0 {
        let n = (ratio_v * max_steps as f64).ceil() as u64;
        r.set(
            "schedule.warmup_steps",
            json!(n),
            derived(
                &["schedule.warmup_ratio", "training.max_steps"],
                format!("ceil({ratio_v} × {max_steps})"),
            ),
        );
    }
    // Scheduler kwargs.
    if let Some(a) = s.arg("SFTConfig", "lr_scheduler_kwargs") {
        let key = "SFTConfig.lr_scheduler_kwargs";
        let span = r.get(key).map(|e| e.key_span);
        match &a.value {
            Py::Dict(kv) => {
                for (k, v) in kv {
                    let num = match v {
                        Py::Int(i) => Some(*i as f64),
                        Py::Float(f) => Some(*f),
                        _ => None,
                    };
                    match (k.as_str(), num) {
                        (Some("num_cycles"), Some(n)) => {
                            r.set_from("schedule.num_cycles", json!(n), key, span)
                        }
                        (Some("min_lr_rate"), Some(n)) => {
                            r.set_from("schedule.min_lr_ratio", json!(n), key, span)
                        }
                        (Some("min_lr"), Some(n)) => {
                            let lr = r
                                .ir_value("optimizer.lr")
                                .and_then(Value::as_f64)
                                .unwrap_or(1.0);
                            r.set_from("schedule.min_lr_ratio", json!(n / lr), key, span);
                        }
                        _ => r.warn(
                            Diagnostic::warning(
                                "unknown-key",
                                format!(
                                    "lr_scheduler_kwargs key `{}` is not read",
                                    k.as_str().unwrap_or("?")
                                ),
                            )
                            .at(Some(a.span)),
                        ),
                    }
                }
            }
            Py::None => {}
            _ => r.warn(
                Diagnostic::warning(
                    "dynamic-value",
                    "lr_scheduler_kwargs is not a literal dict; it is not read",
                )
                .at(Some(a.span)),
            ),
        }
    }
    // Data order: HF seeds the sampler with data_seed, else seed.
    if let Some((v, span)) = arg(r, "SFTConfig.data_seed") {
        r.set_from("data.shuffle_seed", v, "SFTConfig.data_seed", Some(span));
    } else {
        let seed = r.ir_value("training.seed").cloned().unwrap_or(json!(0));
        r.set(
            "data.shuffle_seed",
            seed,
            derived(
                &["training.seed"],
                "the HF sampler is seeded with `seed` (data_seed unset)",
            ),
        );
    }
}

fn read_precision(r: &mut Reader) {
    let flag = |r: &Reader, k: &str| arg(r, &format!("SFTConfig.{k}"));
    let auto = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.contains("is_bfloat16_supported") || s.contains("is_bf16_supported"))
    };
    let (bf16, fp16) = (flag(r, "bf16"), flag(r, "fp16"));
    let dtype = arg(r, "from_pretrained.dtype");
    let dtype_name = dtype.as_ref().and_then(|(v, _)| {
        v.as_str()
            .map(|s| s.trim_start_matches("torch.").to_string())
    });
    let set = |r: &mut Reader, d: &str, key: &str, span: Span| {
        r.set_from("precision.compute_dtype", json!(d), key, Some(span))
    };
    match (&bf16, &fp16) {
        (_, Some((Value::Bool(true), span))) => set(r, "fp16", "SFTConfig.fp16", *span),
        (Some((Value::Bool(true), span)), _) => set(r, "bf16", "SFTConfig.bf16", *span),
        _ => match (dtype_name.as_deref(), &dtype) {
            (Some("float16" | "half"), Some((_, span))) => set(r, "fp16", "from_pretrained.dtype", *span),
            (Some("bfloat16"), Some((_, span))) => set(r, "bf16", "from_pretrained.dtype", *span),
            (Some("float32" | "float"), Some((_, span))) => set(r, "fp32", "from_pretrained.dtype", *span),
            (Some(other), Some((_, span))) => r.warn(
                Diagnostic::warning("type-mismatch", format!("dtype `{other}` is not torch.float16/bfloat16/float32; auto-detection is assumed"))
                    .at(Some(*span)),
            ),
            _ => {}
        },
    }
    for (v, k) in [(&bf16, "bf16"), (&fp16, "fp16")] {
        if let Some((v, span)) = v {
            if !matches!(v, Value::Bool(_)) && !auto(v) {
                r.warn(
                    Diagnostic::warning("dynamic-value", format!("`{k} = {v}` cannot be evaluated; the dtype is auto-detected as Unsloth does"))
                        .at(Some(*span)),
                );
            }
        }
    }
}

fn read_run(r: &mut Reader, s: &Script) {
    // Tracker.
    if let Some((v, span)) = arg(r, "SFTConfig.report_to") {
        let names: Vec<String> = match &v {
            Value::String(x) => vec![x.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec![],
        };
        let known = ["wandb", "tensorboard", "mlflow"];
        let tracker = names
            .iter()
            .find(|n| known.contains(&n.as_str()))
            .cloned()
            .unwrap_or_else(|| "none".into());
        if names.iter().any(|n| n == "all") {
            r.warn(
                Diagnostic::info(
                    "not-expressible",
                    "report_to = \"all\" logs to every installed tracker; the IR records none",
                )
                .at(Some(span)),
            );
        }
        r.set_from(
            "logging.tracker",
            json!(tracker),
            "SFTConfig.report_to",
            Some(span),
        );
    }
    // Checkpoint cadence.
    if let Some((v, span)) = arg(r, "SFTConfig.save_strategy") {
        match v.as_str() {
            Some("epoch") => r.set_from(
                "checkpoint.save_steps",
                json!(0),
                "SFTConfig.save_strategy",
                Some(span),
            ),
            Some("no") => r.warn(
                Diagnostic::info(
                    "not-expressible",
                    "save_strategy = \"no\" writes no checkpoints; the IR has no field for that",
                )
                .at(Some(span)),
            ),
            _ => {}
        }
    }
    // Multi-GPU settings passed to the HF Trainer.
    if let Some(a) = s.arg("SFTConfig", "deepspeed") {
        let key = "SFTConfig.deepspeed";
        let span = r.get(key).map(|e| e.key_span);
        let path = a.value.as_str().map(String::from).unwrap_or_default();
        r.set_from("parallel.strategy", json!("deepspeed"), key, span);
        let stage = ["zero3", "zero2", "zero1"]
            .iter()
            .find(|z| path.contains(*z))
            .map_or(0, |z| z[4..].parse::<u32>().unwrap_or(0));
        r.set_from("parallel.zero_stage", json!(stage), key, span);
        if !path.is_empty() {
            r.set_from("parallel.deepspeed_config", json!(path), key, span);
        }
        r.warn(
            Diagnostic::warning("unsupported-path", "Unsloth has no supported DeepSpeed path (research/unsloth.md §6); the run is read as planned, but expect it to fail or fall back")
                .at(span),
        );
    }
    if let Some((v, span)) = arg(r, "SFTConfig.fsdp") {
        if v.as_str().is_some_and(|x| !x.is_empty()) || v == json!(true) {
            r.set_from(
                "parallel.strategy",
                json!("fsdp1"),
                "SFTConfig.fsdp",
                Some(span),
            );
            if v.as_str().is_some_and(|x| x.contains("offload")) {
                r.set_from(
                    "parallel.cpu_offload",
                    json!(true),
                    "SFTConfig.fsdp",
                    Some(span),
                );
            }
            r.warn(
                Diagnostic::warning(
                    "unsupported-path",
                    "Unsloth has no supported FSDP path (research/unsloth.md §6)",
                )
                .at(Some(span)),
            );
        }
    }
}
