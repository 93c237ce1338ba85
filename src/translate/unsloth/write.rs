//! IR → an Unsloth script in the notebooks' shape (`python_scripts/Llama3.1_(8B)-Alpaca.py`): module-level
//! knobs, `from_pretrained`, `get_peft_model`, the dataset with its formatting function,
//! `SFTTrainer(args = SFTConfig(…))` in the new TRL style, `train_on_responses_only` where
//! prompts are masked, `trainer.train()`, and saving.
//!
//! Every value that differs from Unsloth's default is written; values the source took from
//! its own defaults carry a `# parity:` comment. What a script cannot say is reported:
//! DeepSpeed/FSDP sharding, a run without Unsloth's fused kernels, TorchTune's sampler, …

use super::common::FW;
use crate::ir::Method;
use crate::ir::Resolved;
use crate::translate::data;
use crate::translate::emitter::{Emitter, Out};
use crate::translate::framework::WriteOptions;
use crate::translate::framework::Written;

mod context;
mod datasets;
pub(super) mod literals;
mod model;
mod run;

use context::{Ctx, Src};
use literals::{py, py_str, py_triple};

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
    let full = spec.adapter.method == Method::Full;

    let s = Src {
        spec,
        resolved,
        opts,
        from,
        foreign,
        full,
    };
    model::model_and_method(&mut em, &mut ctx, &s);
    model::adapter(&mut em, &mut ctx, &s);
    datasets::data(&mut em, &mut ctx, &s);
    run::steps_and_run(&mut em, &mut ctx, &s);
    run::kept_and_saves(&mut em, &mut ctx, &s);
    let devices = spec.batch.devices;

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
