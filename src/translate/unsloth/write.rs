//! IR → an Unsloth script in the notebooks' shape (research/unsloth.md §2.2): module-level
//! knobs, `from_pretrained`, `get_peft_model`, the dataset with its formatting function,
//! `SFTTrainer(args = SFTConfig(…))` in the new TRL style, `train_on_responses_only` where
//! prompts are masked, `trainer.train()`, and saving.
//!
//! Every value that differs from Unsloth's default is written; values the source took from
//! its own defaults carry a `# parity:` comment. What a script cannot say is reported:
//! DeepSpeed/FSDP sharding, a run without Unsloth's fused kernels, TorchTune's sampler, …

use super::format::escape_braces;
use super::{script_data, FW};
use crate::diag::Diagnostic;
use crate::ir::{Dataset, Origin, Resolved};
use crate::translate::emitter::{Emitter, Out};
use crate::translate::report::Status;
use crate::translate::{data, families, WriteOptions, Written};
use serde::Serialize;
use serde_json::{json, Value};

/// Call prefixes of emitted keys, and the order their keyword arguments are written in.
const ORDER: &[(&str, &[&str])] = &[
    (
        "from_pretrained",
        &[
            "model_name",
            "max_seq_length",
            "dtype",
            "load_in_4bit",
            "load_in_8bit",
            "full_finetuning",
        ],
    ),
    (
        "get_peft_model",
        &[
            "r",
            "target_modules",
            "lora_alpha",
            "lora_dropout",
            "bias",
            "use_gradient_checkpointing",
            "random_state",
            "use_rslora",
        ],
    ),
    (
        "SFTConfig",
        &[
            "dataset_text_field",
            "max_seq_length",
            "packing",
            "padding_free",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "warmup_steps",
            "warmup_ratio",
            "num_train_epochs",
            "max_steps",
            "learning_rate",
            "logging_steps",
            "optim",
            "weight_decay",
            "lr_scheduler_type",
            "seed",
            "data_seed",
            "output_dir",
            "report_to",
        ],
    ),
];

/// Calls after training that save or export the model (kept verbatim from an Unsloth source).
const SAVE_CALLS: [&str; 8] = [
    "save_pretrained",
    "save_pretrained_merged",
    "push_to_hub",
    "push_to_hub_merged",
    "save_pretrained_gguf",
    "push_to_hub_gguf",
    "save_pretrained_torchao",
    "save_pretrained_ggml",
];

/// Float keys notebooks write as integers when they are whole (`lora_alpha = 16`).
const INT_LIKE: [&str; 3] = [
    "get_peft_model.lora_alpha",
    "get_peft_model.lora_dropout",
    "SFTConfig.num_train_epochs",
];

/// Keys whose value is a Python expression, not a literal.
const MODULE_CONSTANTS: [(&str, &str); 3] = [
    ("from_pretrained.max_seq_length", "max_seq_length"),
    ("from_pretrained.dtype", "dtype"),
    ("from_pretrained.load_in_4bit", "load_in_4bit"),
];

#[derive(Serialize)]
struct Func {
    name: String,
    /// `prompt` (one template), `prompt2` (with/without input), `chat`, `chat_prompt` (Alpaca
    /// text as the user turn of a chat template), `text`.
    kind: &'static str,
    prompt_var: String,
    prompt: String,
    prompt_no_input: String,
    /// (role, column) of the row fields the function reads, in zip order.
    roles: Vec<(String, String)>,
    /// Variables passed to the template's `format`, in slot order.
    format_args: Vec<String>,
    /// Variables passed to the no-input template's `format`.
    format_args_no_input: Vec<String>,
    eos: bool,
    column: String,
}

#[derive(Serialize)]
struct Ds {
    var: String,
    load: String,
    /// `standardize_sharegpt` (ShareGPT `from`/`value` keys) or `standardize_data_formats`.
    standardize: String,
    func: Option<Func>,
    remove_columns: bool,
}

#[derive(Serialize, Default)]
struct Ctx {
    from: String,
    source: String,
    file_name: String,
    launch: String,
    notes: Vec<String>,
    loader: String,
    constants: Vec<String>,
    from_pretrained: Vec<String>,
    tokenizer_lines: Vec<String>,
    chat_template: String,
    chat_template_args: Vec<String>,
    /// Names imported from unsloth.chat_templates.
    chat_imports: Vec<String>,
    peft: Vec<String>,
    has_peft: bool,
    datasets: Vec<Ds>,
    concat: bool,
    needs_eos: bool,
    split: String,
    trainer_class: String,
    config_class: String,
    trainer_args: Vec<String>,
    config: Vec<String>,
    responses_only: bool,
    responses_only_args: Vec<String>,
    train_args: String,
    saves: Vec<String>,
}

pub fn write(resolved: &Resolved, from: &str, opts: &WriteOptions) -> Written {
    let spec = &resolved.spec;
    let mut em = Emitter::new(resolved, FW.name(), data::table(FW), data::defaults(FW));
    let mut ctx = Ctx {
        from: from.to_string(),
        source: opts.source_name.clone(),
        file_name: FW.default_file_name().to_string(),
        loader: "FastLanguageModel".into(),
        trainer_class: "SFTTrainer".into(),
        config_class: "SFTConfig".into(),
        ..Ctx::default()
    };
    let foreign = from != FW.name();
    let full = spec.adapter.method == "full";

    // ---- model and method
    let seq = spec.data.sequence_len;
    let c = em.parity_comment("data.sequence_len", &json!(seq));
    em.put(
        "from_pretrained.max_seq_length",
        json!(seq),
        &["data.sequence_len"],
        Status::Carried,
        &c,
    );
    let (dtype, flag) = match spec.precision.compute_dtype.as_str() {
        "fp16" => ("torch.float16", Some("fp16")),
        "fp32" => ("torch.float32", None),
        _ => ("None", None),
    };
    em.put(
        "from_pretrained.dtype",
        json!(dtype),
        &["precision.compute_dtype"],
        Status::Carried,
        if dtype == "None" {
            "None: bf16 where the GPU supports it"
        } else {
            ""
        },
    );
    if let Some(f) = flag {
        em.put(
            &format!("SFTConfig.{f}"),
            json!(true),
            &["precision.compute_dtype"],
            Status::Carried,
            "",
        );
    } else if spec.precision.compute_dtype == "fp32" {
        em.put(
            "SFTConfig.bf16",
            json!(false),
            &["precision.compute_dtype"],
            Status::Carried,
            "",
        );
        em.put(
            "SFTConfig.fp16",
            json!(false),
            &["precision.compute_dtype"],
            Status::Carried,
            "",
        );
    }
    if spec.precision.mode == "pure" {
        em.cover("precision.mode", Status::Approximated, "dtype", "Unsloth trains under autocast with fp32 LoRA weights, not the whole model in the compute dtype");
    }
    let base = spec.quantization.base_weights.as_str();
    let q4 = base == "nf4";
    let c = em.parity_comment("quantization.base_weights", &json!(base));
    em.put(
        "from_pretrained.load_in_4bit",
        json!(q4),
        &["quantization.base_weights", "adapter.method"],
        Status::Carried,
        &c,
    );
    match base {
        "nf4" | "none" => {}
        "int8" => em.put(
            "from_pretrained.load_in_8bit",
            json!(true),
            &["quantization.base_weights"],
            Status::Carried,
            "",
        ),
        other => em.cover(
            "quantization.base_weights",
            Status::NotExpressible,
            "",
            &format!("Unsloth loads 4-bit bases as NF4; `{other}` has no switch"),
        ),
    }
    if q4 {
        if !spec.quantization.double_quant {
            em.cover(
                "quantization.double_quant",
                Status::NotExpressible,
                "",
                "Unsloth always quantises with double quantisation",
            );
        }
        if spec.quantization.block_size != 64 {
            em.cover(
                "quantization.block_size",
                Status::NotExpressible,
                "",
                "bitsandbytes' block size 64 is fixed",
            );
        }
    } else {
        em.cover("quantization.double_quant", Status::Defaulted, "", "");
        em.cover("quantization.block_size", Status::Defaulted, "", "");
    }
    if !spec.quantization.skip_modules.is_empty() {
        em.cover(
            "quantization.skip_modules",
            Status::Approximated,
            "",
            "Unsloth keeps its own list of 16-bit modules (lm_head, routers, …)",
        );
    }
    if full {
        em.put(
            "from_pretrained.full_finetuning",
            json!(true),
            &["adapter.method"],
            Status::Carried,
            "",
        );
        em.cover(
            "adapter",
            Status::Defaulted,
            "",
            "not used by a full fine-tune",
        );
        em.cover("adapter.method", Status::Carried, "full_finetuning", "");
        // LoRA settings mean nothing here; the script reads back Unsloth's own.
        let defaults = data::defaults(FW);
        let unused: Vec<String> = em
            .flat
            .iter()
            .filter(|(k, v)| {
                k.starts_with("adapter.")
                    && *k != "adapter.method"
                    && defaults
                        .get(k)
                        .is_some_and(|d| !crate::translate::emitter::values_equal(d, v))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in unused {
            em.cover(
                &k,
                Status::Approximated,
                "",
                "unused by a full fine-tune; not written",
            );
        }
        if spec.adapter.init_seed.is_none() {
            em.cover(
                "adapter.init_seed",
                Status::Approximated,
                "",
                "unused by a full fine-tune; not written",
            );
        }
    }
    if spec.model.attention != "sdpa" {
        em.put(
            "from_pretrained.attn_implementation",
            json!(spec.model.attention),
            &["model.attention"],
            Status::Carried,
            "",
        );
        if foreign {
            em.cover("model.attention", Status::Approximated, "attn_implementation", "Unsloth's fast path picks its own attention kernel (FA2 if installed, else xformers/SDPA)");
        }
    }
    if spec.model.tokenizer != spec.model.base {
        em.cover(
            "model.tokenizer",
            Status::NotExpressible,
            "",
            "from_pretrained returns the model's own tokenizer",
        );
    } else {
        em.cover("model.tokenizer", Status::Carried, "model_name", "");
    }
    em.cover("model.family", Status::Carried, "model_name", "");
    em.cover("model.size", Status::Carried, "model_name", "");
    for (k, v) in &spec.model.special_tokens {
        ctx.tokenizer_lines
            .push(format!("tokenizer.{k} = {}", py_str(v)));
    }
    em.cover(
        "model.special_tokens",
        Status::Carried,
        "tokenizer.*_token",
        "",
    );
    // Chat template.
    let ct = spec.model.chat_template.as_str();
    if !matches!(ct, "tokenizer_default" | "none" | "") {
        match script_data().template_by_ir(ct) {
            Some(t) => {
                ctx.chat_template = t.unsloth[0].clone();
                em.cover(
                    "model.chat_template",
                    Status::Carried,
                    "get_chat_template",
                    "",
                );
            }
            None => em.cover(
                "model.chat_template",
                Status::NotExpressible,
                "",
                &format!("Unsloth's get_chat_template has no `{ct}` template"),
            ),
        }
    }

    // ---- adapter
    let family = families::by_name(&spec.model.family);
    let model_type = family.map(|f| f.hf_model_type.clone());
    let fast_path = model_type
        .as_ref()
        .is_none_or(|t| script_data().fast_path_model_types.contains(t));
    if !full {
        ctx.has_peft = true;
        let (to_save_targets, mut targets): (Vec<String>, Vec<String>) = spec
            .adapter
            .target_modules
            .iter()
            .cloned()
            .partition(|m| ["embed_tokens", "lm_head"].contains(&m.as_str()));
        if !to_save_targets.is_empty() {
            em.cover(
                "adapter.target_modules",
                Status::NotExpressible,
                "target_modules",
                &format!(
                    "Unsloth trains {} in full, not with LoRA; left out",
                    to_save_targets.join(" and ")
                ),
            );
        }
        let mut bad_save = Vec::new();
        for m in &spec.adapter.modules_to_save {
            if ["embed_tokens", "lm_head"].contains(&m.as_str()) {
                targets.push(m.clone());
            } else {
                bad_save.push(m.clone());
            }
        }
        em.put(
            "get_peft_model.target_modules",
            json!(targets),
            &["adapter.target_modules", "adapter.modules_to_save"],
            Status::Carried,
            "",
        );
        if !bad_save.is_empty() {
            em.cover(
                "adapter.modules_to_save",
                Status::NotExpressible,
                "",
                "Unsloth trains only embed_tokens and lm_head in full next to LoRA",
            );
        }
        if spec.adapter.target_all_linear {
            em.cover(
                "adapter.target_all_linear",
                Status::Approximated,
                "target_modules",
                "written as the family's list of linear layers",
            );
        } else {
            em.cover(
                "adapter.target_all_linear",
                Status::Carried,
                "target_modules",
                "",
            );
        }
        let (gc, gc_comment) = gc_value(&em);
        em.put(
            "get_peft_model.use_gradient_checkpointing",
            gc,
            &["memory.gradient_checkpointing"],
            Status::Carried,
            &gc_comment,
        );
        if spec.memory.activation_offloading {
            em.cover(
                "memory.activation_offloading",
                Status::Approximated,
                "use_gradient_checkpointing",
                "Unsloth offloads the checkpointed activations (\"unsloth\" checkpointing)",
            );
            if spec.memory.gradient_checkpointing == "on" {
                em.cover(
                    "memory.gradient_checkpointing",
                    Status::Approximated,
                    "use_gradient_checkpointing",
                    "written as \"unsloth\" (recompute + CPU offload)",
                );
            }
        }
        if spec.adapter.init_seed.is_none() {
            em.put(
                "get_peft_model.random_state",
                json!(spec.training.seed),
                &[],
                Status::Carried,
                "parity: the run seed",
            );
            em.cover("adapter.init_seed", Status::Approximated, "random_state", "Unsloth re-seeds right before LoRA init (random_state); the source drew the init from the run seed's stream");
        }
        if spec.adapter.weight_dtype != "fp32" {
            em.cover(
                "adapter.weight_dtype",
                Status::Approximated,
                "",
                "Unsloth keeps LoRA weights and their optimizer state in fp32",
            );
        }
        if !spec.adapter.init_from.is_empty() {
            em.cover(
                "adapter.init_from",
                Status::NotExpressible,
                "",
                "a notebook-shaped script starts from a fresh adapter",
            );
        }
    } else {
        let (gc, gc_comment) = gc_value(&em);
        em.put(
            "from_pretrained.use_gradient_checkpointing",
            gc,
            &["memory.gradient_checkpointing"],
            Status::Carried,
            &gc_comment,
        );
        if spec.memory.activation_offloading {
            em.cover(
                "memory.activation_offloading",
                Status::Approximated,
                "use_gradient_checkpointing",
                "Unsloth offloads the checkpointed activations (\"unsloth\" checkpointing)",
            );
        }
    }
    // Fused kernels and compile: Unsloth decides; report where the source differs.
    let fused_unsloth = !full
        && fast_path
        && spec.adapter.dropout == 0.0
        && spec.adapter.bias == "none"
        && !spec.adapter.use_dora;
    if spec.adapter.fused_kernels != fused_unsloth && !full {
        em.cover("adapter.fused_kernels", Status::NotExpressible, "", if fused_unsloth { "Unsloth always runs its fused LoRA kernels here (dropout 0, bias none); they cannot be turned off" } else { "Unsloth's fused LoRA kernels only run on the fast path with dropout 0 and bias none" });
    } else if fused_unsloth && opts.strict {
        em.cover("adapter.fused_kernels", Status::Approximated, "", "--strict asks for reference numerics, but Unsloth's fused kernels cannot be turned off");
    } else {
        em.cover("adapter.fused_kernels", Status::Carried, "", "");
    }
    if spec.memory.compile == fast_path {
        em.cover(
            "memory.compile",
            Status::NotExpressible,
            "",
            if fast_path {
                "Unsloth's fast path runs hand-written kernels, not torch.compile"
            } else {
                "Unsloth compiles the patched modeling code of this family"
            },
        );
    } else {
        em.cover("memory.compile", Status::Carried, "", "");
    }

    // ---- data
    let datasets = &spec.data.datasets;
    let n = datasets.len();
    let masked = !spec.data.train_on_inputs;
    let mut markers: Option<(String, String)> = None;
    let mut any_chat = false;
    for (i, d) in datasets.iter().enumerate() {
        let var = if n == 1 {
            "dataset".to_string()
        } else {
            format!("dataset_{i}")
        };
        let fname = if n == 1 {
            "formatting_prompts_func".to_string()
        } else {
            format!("formatting_prompts_func_{i}")
        };
        let (func, chat, m) = dataset_func(&mut em, i, d, &fname, spec.data.add_eos, masked);
        any_chat |= chat;
        if markers.is_none() {
            markers = m;
        }
        ctx.needs_eos |= func.as_ref().is_some_and(|f| f.eos);
        let sharegpt = d.columns.get("role").is_some_and(|r| r == "from")
            && d.columns.get("content").is_none_or(|c| c == "value");
        let standardize = match (
            chat && func.as_ref().is_some_and(|f| f.kind == "chat"),
            sharegpt,
        ) {
            (true, true) => "standardize_sharegpt",
            (true, false) => "standardize_data_formats",
            _ => "",
        };
        ctx.datasets.push(Ds {
            load: load_expr(d),
            standardize: standardize.into(),
            var,
            remove_columns: n > 1 && func.is_some(),
            func,
        });
    }
    ctx.concat = n > 1;
    em.cover("data.datasets", Status::Carried, "load_dataset", "");
    if spec.data.val_size > 0.0 {
        ctx.split = format!(
            "dataset = dataset.train_test_split(test_size = {}, seed = {})",
            py_num(spec.data.val_size),
            spec.training.seed
        );
        em.cover(
            "data.val_size",
            if foreign {
                Status::Approximated
            } else {
                Status::Carried
            },
            "train_test_split",
            if foreign {
                "datasets' train_test_split picks other held-out rows than the source"
            } else {
                ""
            },
        );
    }
    // Text field: every formatting function returns "text"; plain text datasets name their column.
    let text_field = match datasets.first() {
        Some(d) if n == 1 && d.format == "completion" && !spec.data.add_eos => d
            .columns
            .get("text")
            .cloned()
            .unwrap_or_else(|| "text".into()),
        _ => "text".into(),
    };
    em.put(
        "SFTConfig.dataset_text_field",
        json!(text_field),
        &[],
        Status::Carried,
        "",
    );
    em.put(
        "SFTConfig.max_seq_length",
        json!(seq),
        &[],
        Status::Carried,
        "",
    );
    // Masking.
    if masked {
        let all_completion = datasets.iter().all(|d| d.format == "completion");
        if all_completion {
            em.cover(
                "data.train_on_inputs",
                Status::NotExpressible,
                "",
                "a plain-text dataset has no prompt to mask; every token is trained",
            );
        } else {
            ctx.responses_only = true;
            em.cover(
                "data.train_on_inputs",
                Status::Carried,
                "train_on_responses_only",
                "",
            );
            if let Some((i, r)) = &markers {
                ctx.responses_only_args = vec![
                    format!("instruction_part = {},", py_str(i)),
                    format!("response_part = {},", py_str(r)),
                ];
            } else {
                em.cover(
                    "data.datasets",
                    Status::Approximated,
                    "train_on_responses_only",
                    "markers are detected from the chat template at run time",
                );
            }
            if !spec.data.drop_fully_masked {
                em.cover(
                    "data.drop_fully_masked",
                    Status::Approximated,
                    "train_on_responses_only",
                    "train_on_responses_only drops rows whose labels are all masked",
                );
            } else {
                em.cover(
                    "data.drop_fully_masked",
                    Status::Carried,
                    "train_on_responses_only",
                    "",
                );
            }
            for (i, d) in datasets.iter().enumerate() {
                let written = markers.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
                let given = (
                    d.response_markers.get("instruction").map(String::as_str),
                    d.response_markers.get("response").map(String::as_str),
                );
                let same = written.is_some_and(|(a, b)| given == (Some(a), Some(b)));
                if !same {
                    em.cover(
                        &format!("data.datasets.{i}.response_markers"),
                        Status::Approximated,
                        "train_on_responses_only",
                        "Unsloth masks by marker strings; the source masked by turn or by prompt",
                    );
                }
                if d.roles_to_train.iter().any(|r| r != "assistant") {
                    em.cover(
                        &format!("data.datasets.{i}.roles_to_train"),
                        Status::NotExpressible,
                        "",
                        "train_on_responses_only trains the assistant turns only",
                    );
                }
            }
        }
    } else {
        em.cover("data.train_on_inputs", Status::Carried, "", "");
        if spec.data.drop_fully_masked {
            em.cover(
                "data.drop_fully_masked",
                Status::NotExpressible,
                "",
                "only train_on_responses_only drops fully-masked rows",
            );
        }
        for (i, d) in datasets.iter().enumerate() {
            if !d.response_markers.is_empty() {
                em.cover(
                    &format!("data.datasets.{i}.response_markers"),
                    Status::NotExpressible,
                    "",
                    "markers only matter when prompts are masked",
                );
            }
        }
    }
    if spec.data.add_eos
        && !ctx.needs_eos
        && !any_chat
        && datasets.iter().all(|d| d.format != "completion")
    {
        em.cover(
            "data.add_eos",
            Status::NotExpressible,
            "",
            "no formatting function to append EOS to",
        );
    } else if !spec.data.add_eos && any_chat {
        em.cover(
            "data.add_eos",
            Status::NotExpressible,
            "",
            "the chat template closes every turn with its end-of-turn token",
        );
    } else {
        em.cover("data.add_eos", Status::Carried, "EOS_TOKEN", "");
    }
    // Batching.
    if spec.data.packing && foreign {
        em.put(
            "SFTConfig.packing",
            json!(true),
            &["data.packing"],
            Status::Carried,
            "",
        );
        em.cover(
            "data.packing",
            Status::Approximated,
            "packing",
            "TRL's best-fit-decreasing packing groups other samples than the source's packer",
        );
    }
    let padding_free_unsloth = !spec.data.packing && spec.model.family != "gemma2";
    if spec.data.padding_free != padding_free_unsloth {
        if spec.data.padding_free && spec.model.family == "gemma2" {
            em.cover(
                "data.padding_free",
                Status::NotExpressible,
                "",
                "Unsloth does not run Gemma-2 padding-free",
            );
        } else if !spec.data.packing {
            let c = em.parity_comment("data.padding_free", &json!(spec.data.padding_free));
            em.put(
                "SFTConfig.padding_free",
                json!(spec.data.padding_free),
                &["data.padding_free"],
                Status::Carried,
                &c,
            );
        } else {
            em.cover("data.padding_free", Status::Carried, "packing", "");
        }
    } else {
        em.cover(
            "data.padding_free",
            Status::Carried,
            "padding_free (auto)",
            "",
        );
    }
    if spec.data.shuffle_seed != spec.training.seed {
        let c = em.parity_comment("data.shuffle_seed", &json!(spec.data.shuffle_seed));
        em.put(
            "SFTConfig.data_seed",
            json!(spec.data.shuffle_seed),
            &["data.shuffle_seed"],
            Status::Carried,
            &c,
        );
    } else {
        em.cover("data.shuffle_seed", Status::Carried, "seed", "");
    }
    if from == "torchtune" && spec.data.shuffle {
        em.cover("data.shuffle_seed", Status::Approximated, "data_seed", "HF's RandomSampler draws another permutation than TorchTune's DistributedSampler from the same seed");
    }

    // ---- steps and schedule
    if spec.training.max_steps > 0 {
        em.put(
            "SFTConfig.max_steps",
            json!(spec.training.max_steps),
            &["training.max_steps"],
            Status::Carried,
            "",
        );
    } else {
        em.cover("training.max_steps", Status::Carried, "", "");
    }
    if spec.training.max_steps_per_epoch > 0 {
        em.cover(
            "training.max_steps_per_epoch",
            Status::NotExpressible,
            "",
            "HF Trainer has no per-epoch step cap",
        );
    }
    let ratio_given = spec.schedule.warmup_ratio > 0.0
        && !resolved.provenance.is_explicit("schedule.warmup_steps")
        && !matches!(resolved.provenance.get("schedule.warmup_steps"), Some(Origin::Default { .. }) if spec.schedule.warmup_steps > 0);
    if ratio_given {
        let c = em.parity_comment("schedule.warmup_ratio", &json!(spec.schedule.warmup_ratio));
        em.put(
            "SFTConfig.warmup_ratio",
            json!(spec.schedule.warmup_ratio),
            &["schedule.warmup_ratio", "schedule.warmup_steps"],
            Status::Carried,
            &c,
        );
    } else if spec.schedule.warmup_steps > 0 {
        let c = em.parity_comment("schedule.warmup_steps", &json!(spec.schedule.warmup_steps));
        em.put(
            "SFTConfig.warmup_steps",
            json!(spec.schedule.warmup_steps),
            &["schedule.warmup_steps", "schedule.warmup_ratio"],
            Status::Carried,
            &c,
        );
    } else {
        em.put(
            "SFTConfig.warmup_ratio",
            json!(0.0),
            &["schedule.warmup_steps", "schedule.warmup_ratio"],
            Status::Carried,
            "parity: no warmup; Unsloth would warm up over 10% of the steps",
        );
    }
    let mut sched_kwargs = serde_json::Map::new();
    if spec.schedule.num_cycles != 0.5 && spec.schedule.kind.starts_with("cosine") {
        sched_kwargs.insert("num_cycles".into(), json!(spec.schedule.num_cycles));
    }
    em.cover(
        "schedule.num_cycles",
        Status::Carried,
        "lr_scheduler_kwargs",
        "",
    );
    if spec.schedule.min_lr_ratio > 0.0 {
        sched_kwargs.insert("min_lr_rate".into(), json!(spec.schedule.min_lr_ratio));
        if spec.schedule.kind == "cosine" {
            em.put(
                "SFTConfig.lr_scheduler_type",
                json!("cosine_with_min_lr"),
                &["schedule.kind"],
                Status::Approximated,
                "",
            );
            em.cover(
                "schedule.kind",
                Status::Approximated,
                "lr_scheduler_type",
                "a cosine with a floor is HF's cosine_with_min_lr",
            );
        } else if spec.schedule.kind != "cosine_with_min_lr" {
            em.cover(
                "schedule.min_lr_ratio",
                Status::NotExpressible,
                "",
                "only HF's cosine_with_min_lr schedule has a floor",
            );
        }
    }
    if !sched_kwargs.is_empty() {
        em.put(
            "SFTConfig.lr_scheduler_kwargs",
            Value::Object(sched_kwargs),
            &["schedule.min_lr_ratio"],
            Status::Carried,
            "",
        );
    } else {
        em.cover("schedule.min_lr_ratio", Status::Carried, "", "");
    }
    // Loss.
    if spec.loss.kind == "cross_entropy" {
        em.cover(
            "loss.kind",
            Status::Approximated,
            "",
            "Unsloth always uses its fused chunked cross-entropy: same value, less memory",
        );
    }
    // Tracker.
    if spec.logging.tracker != "none" || foreign {
        em.put(
            "SFTConfig.report_to",
            json!(spec.logging.tracker),
            &["logging.tracker"],
            Status::Carried,
            "",
        );
    } else {
        em.put(
            "SFTConfig.report_to",
            json!("none"),
            &["logging.tracker"],
            Status::Carried,
            "",
        );
    }
    if !spec.logging.project.is_empty() {
        em.cover(
            "logging.project",
            Status::NotExpressible,
            "",
            "set WANDB_PROJECT in the environment",
        );
    }
    // Checkpoints.
    if spec.checkpoint.save_steps == 0 {
        em.put(
            "SFTConfig.save_strategy",
            json!("epoch"),
            &["checkpoint.save_steps"],
            Status::Carried,
            "",
        );
    }
    if !spec.checkpoint.resume_from.is_empty() {
        ctx.train_args = format!(
            "resume_from_checkpoint = {}",
            py_str(&spec.checkpoint.resume_from)
        );
        em.cover(
            "checkpoint.resume_from",
            Status::Carried,
            "trainer.train",
            "",
        );
    }
    // Parallelism: DDP under torchrun is the only multi-GPU path (research/unsloth.md §6).
    let devices = spec.batch.devices;
    if devices > 1 {
        ctx.launch = format!(
            "torchrun --nproc_per_node {devices} {}",
            FW.default_file_name()
        );
        let note = format!(
            "the GPU count belongs to the launcher (`{}`), not the script",
            ctx.launch
        );
        em.cover(
            "batch.devices",
            Status::Approximated,
            "torchrun --nproc_per_node",
            &note,
        );
        em.cover(
            "batch.global_batch",
            Status::Approximated,
            "torchrun --nproc_per_node",
            &note,
        );
    }
    em.cover("batch.global_batch", Status::Carried, "", "");
    match spec.parallel.strategy.as_str() {
        "single" | "ddp" => em.cover("parallel.strategy", Status::Carried, "", ""),
        other => {
            em.cover("parallel.strategy", Status::Approximated, "torchrun", &format!("Unsloth has no supported {other} path; the script runs DDP under torchrun, each GPU holding the whole model"));
            for (f, lossy) in [
                ("parallel.zero_stage", spec.parallel.zero_stage != 0),
                (
                    "parallel.deepspeed_config",
                    !spec.parallel.deepspeed_config.is_empty(),
                ),
                ("parallel.cpu_offload", spec.parallel.cpu_offload),
                (
                    "parallel.reshard_after_forward",
                    !spec.parallel.reshard_after_forward,
                ),
            ] {
                if lossy {
                    em.cover(
                        f,
                        Status::NotExpressible,
                        "",
                        "sharding settings have no meaning under DDP",
                    );
                }
            }
            ctx.notes.push(format!("The source shards the model ({other}); Unsloth runs data-parallel only: each GPU needs memory for the whole model."));
        }
    }
    if spec.data.shuffle {
        em.cover("data.shuffle", Status::Carried, "", "");
    } else {
        em.cover(
            "data.shuffle",
            Status::NotExpressible,
            "",
            "the HF Trainer always shuffles the training set",
        );
    }

    // ---- the simple keys, then what came back verbatim from an Unsloth source
    em.apply_table();
    let own = format!("{}.", FW.name());
    let mut saves: Vec<(String, Vec<(String, Value)>)> = Vec::new();
    for (k, v) in &spec.passthrough {
        let Some(key) = k.strip_prefix(&own) else {
            continue;
        };
        // Old-style trainer keywords go into the config, where Unsloth moves them anyway.
        let moved = key
            .strip_prefix("SFTTrainer.")
            .map(|rest| format!("SFTConfig.{rest}"));
        let key = moved.as_deref().unwrap_or(key);
        let call = key.split('.').next().unwrap_or("");
        match call {
            "from_pretrained"
            | "get_peft_model"
            | "SFTConfig"
            | "get_chat_template"
            | "train_on_responses_only" => {
                let kw = key.split('.').nth(1).unwrap_or("");
                if key.matches('.').count() == 1 {
                    em.put(key, v.clone(), &[], Status::Carried, "");
                } else {
                    // A nested value (dataset_kwargs.skip_prepare_dataset): rebuild the dict.
                    let leaf = key.rsplit('.').next().unwrap_or("");
                    let dict_key = format!("{call}.{kw}");
                    let mut cur = em
                        .out
                        .iter()
                        .find(|o| o.key == dict_key)
                        .map(|o| o.value.clone())
                        .unwrap_or(json!({}));
                    cur[leaf] = v.clone();
                    em.put(&dict_key, cur, &[], Status::Carried, "");
                }
                if call == "SFTConfig" && kw == "embedding_learning_rate" {
                    ctx.trainer_class = "UnslothTrainer".into();
                    ctx.config_class = "UnslothTrainingArguments".into();
                }
            }
            c if !SAVE_CALLS.contains(&c) => {
                em.warnings.push(Diagnostic::info(
                    "not-expressible",
                    format!("`{key}` from the source script is not written back"),
                ));
            }
            _ => {
                // Save and export calls, rebuilt below.
                let arg = key.split_once('.').map_or("", |(_, a)| a).to_string();
                match saves.iter_mut().find(|(c, _)| c == call) {
                    Some((_, args)) => args.push((arg, v.clone())),
                    None => saves.push((call.to_string(), vec![(arg, v.clone())])),
                }
            }
        }
    }
    for (call, args) in &saves {
        let mut parts: Vec<String> = args
            .iter()
            .filter(|(a, _)| ["save_directory", "repo_id"].contains(&a.as_str()))
            .map(|(_, v)| py(v))
            .collect();
        if [
            "save_pretrained_merged",
            "push_to_hub_merged",
            "save_pretrained_gguf",
            "push_to_hub_gguf",
            "save_pretrained_torchao",
        ]
        .contains(&call.as_str())
        {
            parts.push("tokenizer".into());
        }
        parts.extend(
            args.iter()
                .filter(|(a, _)| !["save_directory", "repo_id"].contains(&a.as_str()))
                .map(|(a, v)| format!("{a} = {}", py(v))),
        );
        ctx.saves
            .push(format!("model.{call}({})", parts.join(", ")));
    }
    if ctx.saves.is_empty() {
        let dir = if full { "model" } else { "lora_model" };
        ctx.saves
            .push(format!("model.save_pretrained({})", py_str(dir)));
    }
    let mut saves = Vec::new();
    for s in &ctx.saves {
        saves.push(s.clone());
        if let Some(dir) = s
            .strip_prefix("model.save_pretrained(")
            .and_then(|r| r.strip_suffix(')'))
        {
            saves.push(format!("tokenizer.save_pretrained({dir})"));
        }
    }
    ctx.saves = saves;
    if from == "torchtune" {
        em.warnings.push(Diagnostic::info(
            "data-order",
            "TorchTune shuffles with a fixed sampler seed (0) independent of the run seed; the script seeds HF's sampler instead",
        ));
    }

    let (outs, report) = em.finish(from, &opts.source_name);
    fill_calls(&mut ctx, &outs);
    if !ctx.chat_template.is_empty() {
        ctx.chat_imports.push("get_chat_template".into());
    }
    for d in &ctx.datasets {
        if !d.standardize.is_empty() && !ctx.chat_imports.contains(&d.standardize) {
            ctx.chat_imports.push(d.standardize.clone());
        }
    }
    if ctx.responses_only {
        ctx.chat_imports.push("train_on_responses_only".into());
    }
    ctx.trainer_args = trainer_args(&ctx);
    let text = render(&ctx);
    let command = if devices > 1 {
        ctx.launch.clone()
    } else {
        format!("python {}", FW.default_file_name())
    };
    Written {
        text,
        command,
        report,
    }
}

/// `use_gradient_checkpointing` for the IR's recomputation mode, with its comment.
fn gc_value(em: &Emitter) -> (Value, String) {
    let m = &em.resolved.spec.memory;
    match m.gradient_checkpointing.as_str() {
        "offload" => (
            json!("unsloth"),
            "\"unsloth\": recompute with CPU-offloaded activations".into(),
        ),
        "on" if m.activation_offloading => (
            json!("unsloth"),
            "\"unsloth\": recompute with CPU-offloaded activations".into(),
        ),
        "on" => (
            json!(true),
            em.parity_comment("memory.gradient_checkpointing", &json!("on")),
        ),
        _ => (
            json!(false),
            em.parity_comment("memory.gradient_checkpointing", &json!("off")),
        ),
    }
}

/// The trainer's own keyword arguments (objects), in notebook order.
fn trainer_args(ctx: &Ctx) -> Vec<String> {
    let mut a = vec![
        "model = model,".to_string(),
        "processing_class = tokenizer,".to_string(),
        "train_dataset = dataset,".to_string(),
    ];
    if !ctx.split.is_empty() {
        a.push("eval_dataset = eval_dataset,".into());
    }
    a
}

/// One dataset's formatting function; also whether it is a chat dataset and the response
/// markers for masking its prompts.
fn dataset_func(
    em: &mut Emitter,
    i: usize,
    d: &Dataset,
    fname: &str,
    add_eos: bool,
    masked: bool,
) -> (Option<Func>, bool, Option<(String, String)>) {
    let col = |role: &str| {
        d.columns
            .get(role)
            .cloned()
            .unwrap_or_else(|| role.to_string())
    };
    let mut func = Func {
        name: fname.to_string(),
        kind: "text",
        prompt_var: if i == 0 {
            "alpaca_prompt".into()
        } else {
            format!("alpaca_prompt_{i}")
        },
        prompt: String::new(),
        prompt_no_input: String::new(),
        roles: Vec::new(),
        format_args: Vec::new(),
        format_args_no_input: Vec::new(),
        eos: add_eos,
        column: String::new(),
    };
    let path = format!("data.datasets.{i}");
    let plain = matches!(em.resolved.spec.model.chat_template.as_str(), "none" | "");
    match d.format.as_str() {
        "alpaca" => {
            let style = script_data().alpaca_style(&d.prompt_style);
            let chat_wrapped = style.is_none() && !plain;
            if style.is_none() && plain {
                em.cover(
                    &format!("{path}.prompt_style"),
                    Status::Approximated,
                    "formatting_prompts_func",
                    "with no chat template the Alpaca text is trained as plain text",
                );
            }
            let st = style.or_else(|| script_data().alpaca_style("alpaca"));
            let Some(st) = st else {
                return (None, false, None);
            };
            let (with, rw) = to_format(&st.with_input(), !chat_wrapped);
            let (without, rn) = to_format(&st.no_input(), !chat_wrapped);
            func.prompt = with;
            func.prompt_no_input = without;
            func.format_args = rw.clone();
            func.format_args_no_input = rn;
            let mut zipped = rw;
            if chat_wrapped {
                zipped.push("output".into());
            }
            func.roles = zipped.iter().map(|r| (r.clone(), col(r))).collect();
            if chat_wrapped {
                func.kind = "chat_prompt";
                func.eos = false;
                em.cover(&format!("{path}.prompt_style"), Status::Approximated, "apply_chat_template", "the Alpaca text is the user turn of the tokenizer's chat template, as TorchTune frames it");
                let m = chat_markers(em);
                return (Some(func), true, m);
            }
            func.kind = "prompt2";
            let markers = text_markers(&st.turn_format);
            (Some(func), false, masked.then_some(markers).flatten())
        }
        "instruct"
            if d.prompt_style == "chat_template"
                || d.templates.get("format").is_none_or(|f| f.is_empty()) =>
        {
            // One user turn and one assistant turn from two columns, framed by the chat
            // template (TorchTune's instruct_dataset).
            func.kind = "chat_columns";
            func.eos = false;
            func.roles = ["input", "output"]
                .iter()
                .map(|r| (r.to_string(), col(r)))
                .collect();
            for k in d
                .columns
                .keys()
                .filter(|k| !["input", "output"].contains(&k.as_str()))
            {
                em.cover(
                    &format!("{path}.columns.{k}"),
                    Status::NotExpressible,
                    "",
                    "the turn is built from the input and output columns only",
                );
            }
            for k in d.templates.keys() {
                em.cover(
                    &format!("{path}.templates.{k}"),
                    Status::NotExpressible,
                    "",
                    "the chat template frames the turn; prompt strings are not used",
                );
            }
            if plain {
                em.cover(
                    &format!("{path}.prompt_style"),
                    Status::Approximated,
                    "apply_chat_template",
                    "the model has no chat template; the tokenizer's own is used",
                );
            }
            let m = if masked { chat_markers(em) } else { None };
            (Some(func), true, m)
        }
        "instruct" => {
            let format = d.templates.get("format").cloned().unwrap_or_default();
            let no_input = d
                .templates
                .get("no_input_format")
                .cloned()
                .unwrap_or_else(|| format.replace("{input}", ""));
            // The system fields are no-ops when empty (Axolotl's user-defined defaults).
            let noop = |k: &str, v: &str| {
                (k == "system_format" && v == "{system}") || (k == "system_prompt" && v.is_empty())
            };
            for (k, v) in d
                .templates
                .iter()
                .filter(|(k, _)| !["format", "no_input_format"].contains(&k.as_str()))
            {
                if !noop(k, v) {
                    em.cover(
                        &format!("{path}.templates.{k}"),
                        Status::NotExpressible,
                        "",
                        "the formatting function writes only the prompt templates",
                    );
                }
            }
            let (with, rw) = to_format(&format, true);
            func.prompt = with;
            func.roles = rw.iter().map(|r| (r.clone(), col(r))).collect();
            func.format_args = rw;
            if no_input == format.replace("{input}", "") || !format.contains("{input}") {
                func.kind = "prompt";
                if no_input != format.replace("{input}", "") {
                    em.cover(
                        &format!("{path}.templates.no_input_format"),
                        Status::NotExpressible,
                        "",
                        "the prompt has no input field to switch on",
                    );
                }
            } else {
                let (without, rn) = to_format(&no_input, true);
                func.kind = "prompt2";
                func.prompt_no_input = without;
                func.format_args_no_input = rn;
            }
            let markers = text_markers(&format);
            (Some(func), false, masked.then_some(markers).flatten())
        }
        "chat_template" => {
            func.kind = "chat";
            func.eos = false;
            func.column = col("messages");
            let sharegpt = d.columns.get("role").is_some_and(|r| r == "from")
                && d.columns.get("content").is_none_or(|c| c == "value");
            for k in d.columns.keys().filter(|k| k.as_str() != "messages") {
                if sharegpt && (k == "role" || k == "content") {
                    continue; // standardize_sharegpt maps from/value onto role/content
                }
                em.cover(
                    &format!("{path}.columns.{k}"),
                    Status::NotExpressible,
                    "standardize_data_formats",
                    "standardize_data_formats only knows the ShareGPT and OpenAI message keys",
                );
            }
            let m = if masked {
                chat_markers_for(em, d)
            } else {
                None
            };
            (Some(func), true, m)
        }
        "completion" => {
            func.column = col("text");
            if !add_eos {
                return (None, false, None);
            }
            (Some(func), false, None)
        }
        other => {
            em.cover(
                &format!("{path}.format"),
                Status::NotExpressible,
                "",
                &format!(
                    "Unsloth notebooks have no `{other}` format; the rows are read as plain text"
                ),
            );
            em.cover(
                &format!("{path}.columns.text"),
                Status::NotExpressible,
                "",
                "the rows are read as plain text from `text`",
            );
            func.column = "text".into();
            (if add_eos { Some(func) } else { None }, false, None)
        }
    }
}

/// Markers of a chat dataset: its own, else the chat template's (or the family's default).
fn chat_markers_for(em: &Emitter, d: &Dataset) -> Option<(String, String)> {
    match (
        d.response_markers.get("instruction"),
        d.response_markers.get("response"),
    ) {
        (Some(i), Some(r)) => Some((i.clone(), r.clone())),
        _ => chat_markers(em),
    }
}

fn chat_markers(em: &Emitter) -> Option<(String, String)> {
    let spec = &em.resolved.spec;
    let mut t = spec.model.chat_template.clone();
    if t == "tokenizer_default" {
        t = families::by_name(&spec.model.family)
            .map(|f| f.chat_template.clone())
            .unwrap_or_default();
    }
    script_data()
        .template_by_ir(&t)
        .filter(|t| !t.instruction_part.is_empty())
        .map(|t| (t.instruction_part.clone(), t.response_part.clone()))
}

/// Markers of a text prompt: the line that opens the instruction, and the text after the
/// last field (the response header).
fn text_markers(turn: &str) -> Option<(String, String)> {
    let at = turn.find("{instruction}")?;
    let before = &turn[..at];
    let start = before.rfind("\n\n").map_or(0, |i| i + 2);
    let instruction = before[start..].to_string();
    let last = turn.rfind('}')?;
    let response = turn[last + 1..].trim_start_matches('\n').to_string();
    (!instruction.is_empty() && !response.is_empty()).then_some((instruction, response))
}

/// An IR prompt (`{instruction}`, `{input}` placeholders) as a `str.format` template with
/// positional slots, and the role of each slot; the response slot is appended when asked.
fn to_format(prompt: &str, with_output: bool) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut roles = Vec::new();
    let mut rest = prompt;
    while let Some(at) = rest.find('{') {
        out.push_str(&escape_braces(&rest[..at]));
        let tail = &rest[at..];
        let field = ["{instruction}", "{input}", "{output}", "{system}"]
            .iter()
            .find(|f| tail.starts_with(**f));
        match field {
            Some(f) => {
                out.push_str("{}");
                roles.push(f.trim_matches(['{', '}']).to_string());
                rest = &tail[f.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &tail[1..];
            }
        }
    }
    out.push_str(&escape_braces(rest));
    if with_output {
        out.push_str("{}");
        roles.push("output".into());
    }
    (out, roles)
}

fn load_expr(d: &Dataset) -> String {
    let mut args = Vec::new();
    if d.loader.is_empty() {
        args.push(py_str(&d.path));
        if !d.name.is_empty() {
            args.push(py_str(&d.name));
        }
        if !d.data_files.is_empty() {
            args.push(format!("data_files = {}", py(&json!(d.data_files))));
        }
    } else {
        args.push(py_str(&d.loader));
        if !d.name.is_empty() {
            args.push(py_str(&d.name));
        }
        let files = if d.data_files.is_empty() {
            py_str(&d.path)
        } else {
            py(&json!(d.data_files))
        };
        args.push(format!("data_files = {files}"));
    }
    args.push(format!("split = {}", py_str(&d.split)));
    format!("load_dataset({})", args.join(", "))
}

/// Distribute emitted keys into the calls of the script, in notebook order.
fn fill_calls(ctx: &mut Ctx, outs: &[Out]) {
    for (call, order) in ORDER {
        let prefix = format!("{call}.");
        let mut mine: Vec<&Out> = outs.iter().filter(|o| o.key.starts_with(&prefix)).collect();
        mine.sort_by_key(|o| {
            let k = &o.key[prefix.len()..];
            order.iter().position(|x| *x == k).unwrap_or(order.len())
        });
        let mut lines = Vec::new();
        for o in mine {
            let kw = &o.key[prefix.len()..];
            let value = match MODULE_CONSTANTS.iter().find(|(k, _)| *k == o.key) {
                Some((_, name)) => {
                    let lit = if o.key == "from_pretrained.dtype" {
                        o.value.as_str().unwrap_or("None").to_string()
                    } else {
                        py(&o.value)
                    };
                    ctx.constants
                        .push(line(&format!("{name} = {lit}"), &o.comment));
                    name.to_string()
                }
                None if o.key == "SFTConfig.max_seq_length" => "max_seq_length".to_string(),
                None if INT_LIKE.contains(&o.key.as_str())
                    && o.value
                        .as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e9) =>
                {
                    format!("{}", o.value.as_f64().unwrap_or(0.0) as i64)
                }
                None => py(&o.value),
            };
            let comment = if MODULE_CONSTANTS.iter().any(|(k, _)| *k == o.key) {
                ""
            } else {
                o.comment.as_str()
            };
            lines.push(line(&format!("{kw} = {value},"), comment));
        }
        match *call {
            "from_pretrained" => ctx.from_pretrained = lines,
            "get_peft_model" => ctx.peft = lines,
            _ => ctx.config = lines,
        }
    }
    for o in outs
        .iter()
        .filter(|o| o.key.starts_with("get_chat_template."))
    {
        ctx.chat_template_args.push(line(
            &format!(
                "{} = {},",
                &o.key["get_chat_template.".len()..],
                py(&o.value)
            ),
            &o.comment,
        ));
    }
    for o in outs
        .iter()
        .filter(|o| o.key.starts_with("train_on_responses_only."))
    {
        ctx.responses_only_args.push(line(
            &format!(
                "{} = {},",
                &o.key["train_on_responses_only.".len()..],
                py(&o.value)
            ),
            &o.comment,
        ));
    }
}

fn line(code: &str, comment: &str) -> String {
    if comment.is_empty() {
        code.to_string()
    } else {
        format!("{code} # {comment}")
    }
}

fn render(ctx: &Ctx) -> String {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.add_filter("pystr", |s: String| py_str(&s));
    env.add_filter("pytriple", |s: String| py_triple(&s));
    env.render_str(data::template(FW), ctx)
        .expect("the built-in Unsloth template renders")
}

// ---------------------------------------------------------------- Python literals

/// A JSON value as a Python literal.
pub(crate) fn py(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => py_num(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => py_str(s),
        Value::Array(items) => format!("[{}]", items.iter().map(py).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A float the way notebooks write it: `2e-4`, `0.001`, `1.0`.
pub(crate) fn py_num(f: f64) -> String {
    if f != 0.0 && f.abs() < 1e-3 {
        format!("{f:e}")
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A double-quoted Python string.
pub(crate) fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A triple-quoted Python string keeping its newlines (for prompts).
pub(crate) fn py_triple(s: &str) -> String {
    let mut out = String::from("\"\"\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 && c != '\n' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("\"\"\"");
    out
}
