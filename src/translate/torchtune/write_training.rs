//! Writing the training keys of a TorchTune config: steps, optimizer, LR schedule, loss and
//! precision, the distributed keys, and logging.

use super::common::{FW, RANDOM_SEED_RULE};
use super::tables::{Recipe, Tables};
use super::write_common::{carried, parity_against, written_dtype};
use crate::diag::Diagnostic;
use crate::ir::{
    AcrossRanks, Dtype, LossNormalization, Method, Origin, PrecisionMode, Recompute, RunSpec,
    ScheduleKind, Strategy, Tracker,
};
use crate::translate::emitter::{values_equal, Emitter};
use crate::translate::report::Status;
use serde_json::{json, Value};

pub(super) fn write_steps(em: &mut Emitter, spec: &RunSpec, from: &str) {
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

pub(super) fn write_optimizer(em: &mut Emitter, t: &Tables, spec: &RunSpec, from: &str) {
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
            if o.name.contains("8bit") && spec.adapter.method == Method::Full && from != FW.name() {
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

pub(super) fn write_schedule(em: &mut Emitter, t: &Tables, spec: &RunSpec, recipe: &Recipe) {
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
        match s.kind {
            ScheduleKind::Cosine => (
                Some(cosine.component.as_str()),
                (s.num_cycles != 0.5).then_some(s.num_cycles),
                Status::Carried,
                String::new(),
            ),
            ScheduleKind::Constant if !recipe.lr_scheduler_required && warmup == 0 => {
                (None, None, Status::Carried, String::new())
            }
            ScheduleKind::Constant | ScheduleKind::ConstantWithWarmup => (
                Some(cosine.component.as_str()),
                Some(0.0),
                Status::Carried,
                String::new(),
            ),
            ScheduleKind::Linear => {
                let lin =
                    t.c.lr_scheduler
                        .iter()
                        .find(|x| x.kind == ScheduleKind::Linear)
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
                let comment = if n == 0.0 && s.kind != ScheduleKind::Cosine {
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
            if cycles == Some(0.0) || s.kind == ScheduleKind::Linear {
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

pub(super) fn write_loss_and_precision(em: &mut Emitter, t: &Tables, spec: &RunSpec) {
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
    match spec.loss.normalization {
        LossNormalization::TokenWeightedUnshifted => em.cover("loss.normalization", Status::Carried, "", ""),
        LossNormalization::TokenMeanOverStep => em.cover("loss.normalization", Status::Approximated, "", "TorchTune 0.6.1 weights each micro-batch by its label count taken before the label shift: one extra token per row whose first label is unmasked"),
        LossNormalization::MeanOfMicrobatchMeans => em.cover("loss.normalization", Status::NotExpressible, "", "TorchTune weights micro-batches by their token counts; a mean of micro-batch means cannot be set"),
    }
    match spec.loss.across_ranks {
        AcrossRanks::GlobalTokens => em.cover("loss.across_ranks", Status::Carried, "", ""),
        _ if spec.batch.devices <= 1 => em.cover("loss.across_ranks", Status::Approximated, "", "identical on one device; TorchTune normalises by the global token count once the run spans several GPUs"),
        _ => em.cover("loss.across_ranks", Status::NotExpressible, "", "TorchTune normalises by the token count of all ranks, not the mean of per-rank means"),
    }
    // Precision: dtype is the whole model's dtype.
    let dtype = written_dtype(spec);
    carried(em, "dtype", json!(dtype), &["precision.compute_dtype"], "");
    if spec.precision.compute_dtype == Dtype::Fp16 {
        em.cover(
            "precision.compute_dtype",
            Status::Approximated,
            "dtype",
            "TorchTune refuses fp16; bf16 is written",
        );
    }
    match (spec.precision.mode, dtype) {
        (PrecisionMode::Pure, _) | (_, Dtype::Fp32) => {
            em.cover("precision.mode", Status::Carried, "dtype", "")
        }
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
    if spec.memory.gradient_checkpointing == Recompute::Offload {
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
    } else if spec.memory.activation_offloading
        && spec.memory.gradient_checkpointing == Recompute::Off
    {
        em.warnings.push(
            Diagnostic::warning(
                "conflict",
                "TorchTune offloads activations only together with activation checkpointing",
            )
            .with_help("turn on gradient checkpointing"),
        );
    }
}

pub(super) fn write_parallel(em: &mut Emitter, spec: &RunSpec, recipe: &Recipe) {
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
    match p.strategy {
        Strategy::Fsdp2 => em.cover("parallel.strategy", Status::Carried, "", ""),
        Strategy::Single | Strategy::Ddp => em.cover(
            "parallel.strategy",
            Status::Approximated,
            "",
            "TorchTune's distributed recipes shard with FSDP2; same math as DDP",
        ),
        other @ (Strategy::Fsdp1 | Strategy::Deepspeed) => em.cover(
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
    let reshard =
        p.reshard_after_forward && !(p.strategy == Strategy::Deepspeed && p.zero_stage < 3);
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

pub(super) fn write_logging(em: &mut Emitter, t: &Tables, spec: &RunSpec) {
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
            match m.tracker {
                Tracker::None | Tracker::Tensorboard => carried(
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
