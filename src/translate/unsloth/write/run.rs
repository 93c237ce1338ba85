//! Writer sections: steps, schedule, loss, tracker, checkpoints, the multi-GPU launch, and
//! what came back verbatim from an Unsloth source (including the save calls).

use super::context::{Ctx, Src, SAVE_CALLS};
use super::literals::{py, py_str};
use crate::diag::Diagnostic;
use crate::ir::{LossKind, Origin, ScheduleKind, Strategy, Tracker};
use crate::translate::emitter::Emitter;
use crate::translate::report::Status;
use crate::translate::unsloth::common::FW;
use serde_json::{json, Value};

/// Steps and schedule, loss, tracker, checkpoints and the multi-GPU launch.
pub(super) fn steps_and_run(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    steps_and_warmup(em, s);
    schedule_kwargs(em, s);
    loss_logging_checkpoints(em, ctx, s);
    parallelism(em, ctx, s);
    let spec = s.spec;
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
}

/// The step cap and the warmup (a ratio or a step count).
fn steps_and_warmup(em: &mut Emitter, s: &Src) {
    let Src { spec, resolved, .. } = *s;
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
}

/// The scheduler's keyword arguments: cosine cycles and the learning-rate floor.
fn schedule_kwargs(em: &mut Emitter, s: &Src) {
    let spec = s.spec;
    let mut sched_kwargs = serde_json::Map::new();
    let cosine = matches!(
        spec.schedule.kind,
        ScheduleKind::Cosine
            | ScheduleKind::CosineWithMinLr
            | ScheduleKind::CosineWarmupWithMinLr
            | ScheduleKind::CosineWithRestarts
    );
    if spec.schedule.num_cycles != 0.5 && cosine {
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
        if spec.schedule.kind == ScheduleKind::Cosine {
            em.put(
                "SFTConfig.lr_scheduler_type",
                json!(ScheduleKind::CosineWithMinLr),
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
        } else if spec.schedule.kind != ScheduleKind::CosineWithMinLr {
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
}

/// The loss, the tracker and the checkpoints (save strategy, resume).
fn loss_logging_checkpoints(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let Src { spec, foreign, .. } = *s;
    // Loss.
    if spec.loss.kind == LossKind::CrossEntropy {
        em.cover(
            "loss.kind",
            Status::Approximated,
            "",
            "Unsloth always uses its fused chunked cross-entropy: same value, less memory",
        );
    }
    // Tracker.
    if spec.logging.tracker != Tracker::None || foreign {
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
}

/// The launcher and the parallel strategy: DDP under torchrun.
fn parallelism(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let spec = s.spec;
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
    match spec.parallel.strategy {
        Strategy::Single | Strategy::Ddp => em.cover("parallel.strategy", Status::Carried, "", ""),
        other @ (Strategy::Fsdp1 | Strategy::Fsdp2 | Strategy::Deepspeed) => {
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
}

/// The table's simple keys, what came back verbatim from an Unsloth source, and the save calls.
pub(super) fn kept_and_saves(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let Src {
        spec, from, full, ..
    } = *s;
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
}
