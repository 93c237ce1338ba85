//! Reading the training keys of a TorchTune config: seed, gradient clipping, optimizer, LR
//! scheduler, loss, metric logger, resume and the distributed keys.

use super::common::RANDOM_SEED_RULE;
use super::launch;
use super::read_component::{
    add_passthrough, component, default_origin, derived, num_arg, unknown_arg, unknown_component,
};
use super::read_model::ModelInfo;
use super::tables;
use crate::diag::{Diagnostic, Span};
use crate::ir::{Method, Origin, ScheduleKind};
use crate::translate::reader::Reader;
use serde_json::{json, Value};

/// Keys only the distributed recipes read.
const DISTRIBUTED_KEYS: [&str; 4] = [
    "fsdp_cpu_offload",
    "fsdp_reshard_after_forward",
    "custom_sharded_layers",
    "tensor_parallel_dim",
];

pub(super) fn read_seed(r: &mut Reader) {
    let Some(e) = r.get("seed") else {
        return;
    };
    if e.node.is_null() {
        let span = e.key_span;
        r.set(
            "training.seed",
            json!(0),
            Origin::Derived {
                from: vec!["seed".into()],
                rule: RANDOM_SEED_RULE.into(),
            },
        );
        r.warn(
            Diagnostic::warning("random-seed", "`seed: null`: TorchTune draws a new random seed every run")
                .at(Some(span))
                .with_help("the run is not reproducible (LoRA init, dropout); tunebridge records seed 0 and ports it as a fixed seed"),
        );
    }
}

pub(super) fn read_clip(r: &mut Reader) {
    let Some(e) = r.get("clip_grad_norm") else {
        return;
    };
    let span = Some(e.key_span);
    match e.node.to_value() {
        Value::Null => {}
        Value::Number(n) => r.set_from(
            "optimizer.max_grad_norm",
            json!(n.as_f64().unwrap_or(0.0)),
            "clip_grad_norm",
            span,
        ),
        Value::String(s) if s.trim() == "inf" => {
            r.set_from(
                "optimizer.max_grad_norm",
                json!(0.0),
                "clip_grad_norm",
                span,
            );
            r.warn(
                Diagnostic::info(
                    "clip-grad-norm",
                    "`clip_grad_norm: inf` logs the gradient norm without clipping",
                )
                .at(span),
            );
        }
        Value::String(s) if s.trim().parse::<f64>().is_ok() => r.set_from(
            "optimizer.max_grad_norm",
            json!(s.trim().parse::<f64>().unwrap_or(0.0)),
            "clip_grad_norm",
            span,
        ),
        other => {
            r.set(
                "optimizer.max_grad_norm",
                json!(0.0),
                r.origin_of("clip_grad_norm", span),
            );
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`clip_grad_norm` must be a number, null or 'inf', found `{other}`"),
                )
                .at(Some(e.node.span())),
            );
        }
    }
}

pub(super) fn read_optimizer(r: &mut Reader) {
    let t = tables::get();
    let Some((map, path)) = component(r, "optimizer") else {
        return;
    };
    let Some(opt) = t.c.optimizer.iter().find(|o| o.component == path) else {
        let known: Vec<&str> = t.c.optimizer.iter().map(|o| o.component.as_str()).collect();
        unknown_component(r, "optimizer", &path, &known);
        return;
    };
    let fused = map.get("fused").map(|e| e.node.to_value()) == Some(json!(true));
    let name = if fused && !opt.fused_name.is_empty() {
        &opt.fused_name
    } else {
        &opt.name
    };
    let span = map.get("_component_").map(|e| e.key_span);
    r.set_from("optimizer.name", json!(name), "optimizer._component_", span);
    if map.contains_key("fused") {
        r.consume("optimizer.fused");
    }
    for (ir, arg, default) in [
        ("optimizer.lr", "lr", opt.defaults.get("lr")),
        (
            "optimizer.weight_decay",
            "weight_decay",
            opt.defaults.get("weight_decay"),
        ),
        ("optimizer.eps", "eps", opt.defaults.get("eps")),
    ] {
        if !opt.args.iter().any(|a| a == arg) {
            continue;
        }
        let key = format!("optimizer.{arg}");
        match map.get(arg) {
            Some(e) if !e.node.is_null() => {
                r.consume(&key);
                if let Some(v) = num_arg(r, &key, e) {
                    r.set_from(ir, json!(v), &key, Some(e.key_span));
                }
            }
            _ => {
                if let Some(d) = default {
                    r.set(
                        ir,
                        d.clone(),
                        default_origin(format!(
                            "{path} default {arg}={}",
                            crate::translate::report::compact(d)
                        )),
                    );
                }
            }
        }
    }
    if opt.args.iter().any(|a| a == "betas") {
        match map.get("betas").map(|e| (e.node.to_value(), e)) {
            Some((Value::Array(b), e)) if b.len() == 2 => {
                r.consume("optimizer.betas");
                for (i, ir) in ["optimizer.beta1", "optimizer.beta2"].iter().enumerate() {
                    let v = b[i]
                        .as_f64()
                        .or_else(|| b[i].as_str().and_then(|s| s.trim().parse().ok()));
                    match v {
                        Some(v) => r.set_from(ir, json!(v), "optimizer.betas", Some(e.key_span)),
                        None => r.warn(
                            Diagnostic::error(
                                "type-mismatch",
                                "`optimizer.betas` must be two numbers",
                            )
                            .at(Some(e.node.span())),
                        ),
                    }
                }
            }
            Some((_, e)) => {
                r.consume("optimizer.betas");
                r.warn(
                    Diagnostic::error(
                        "type-mismatch",
                        "`optimizer.betas` must be a pair [beta1, beta2]",
                    )
                    .at(Some(e.node.span())),
                );
            }
            None => {
                for (ir, k) in [("optimizer.beta1", "beta1"), ("optimizer.beta2", "beta2")] {
                    if let Some(d) = opt.defaults.get(k) {
                        r.set(
                            ir,
                            d.clone(),
                            default_origin(format!("{path} default betas")),
                        );
                    }
                }
            }
        }
    } else if opt.name == "sgd" {
        // No betas: keep the IR's Adam-shaped fields at their documented values.
        r.consume("optimizer.betas");
    }
    for (k, e) in map {
        let key = format!("optimizer.{k}");
        if k == "_component_" || k == "fused" || opt.args.contains(k) {
            continue;
        }
        r.consume(&key);
        add_passthrough(
            r,
            &key,
            e.node.to_value(),
            "an optimizer option with no IR field",
            e.key_span,
        );
    }
}

pub(super) fn read_scheduler(r: &mut Reader, model: &ModelInfo) {
    let t = tables::get();
    if r.get("lr_scheduler").is_none_or(|e| e.node.is_null()) {
        r.consume("lr_scheduler");
        if model.method != Method::Full {
            r.warn(
                Diagnostic::error("missing-key", "`lr_scheduler` is missing: the LoRA recipes read `cfg.lr_scheduler`")
                    .with_help("add torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup with num_warmup_steps"),
            );
        }
        return;
    }
    let Some((map, path)) = component(r, "lr_scheduler") else {
        return;
    };
    let Some(sch) = t.c.lr_scheduler.iter().find(|s| s.component == path) else {
        let known: Vec<&str> =
            t.c.lr_scheduler
                .iter()
                .map(|s| s.component.as_str())
                .collect();
        unknown_component(r, "lr_scheduler", &path, &known);
        return;
    };
    let span = map.get("_component_").map(|e| e.key_span);
    let kind = sch.kind;
    // Cosine with `num_cycles: 0` is read as a constant schedule below.
    let mut zero_cycles = false;
    let mut warmup = 0u64;
    for (k, e) in map {
        let key = format!("lr_scheduler.{k}");
        match k.as_str() {
            "_component_" => {}
            "num_warmup_steps" => {
                r.consume(&key);
                match e.node.to_value().as_u64() {
                    Some(n) => {
                        warmup = n;
                        r.set_from("schedule.warmup_steps", json!(n), &key, Some(e.key_span));
                    }
                    None => r.warn(
                        Diagnostic::error(
                            "type-mismatch",
                            "`lr_scheduler.num_warmup_steps` must be an integer",
                        )
                        .at(Some(e.node.span())),
                    ),
                }
            }
            "num_cycles" if sch.defaults.contains_key("num_cycles") => {
                r.consume(&key);
                if let Some(v) = num_arg(r, &key, e) {
                    if v == 0.0 && kind == ScheduleKind::Cosine {
                        zero_cycles = true;
                    } else {
                        r.set_from("schedule.num_cycles", json!(v), &key, Some(e.key_span));
                    }
                }
            }
            _ => unknown_arg(
                r,
                "lr_scheduler",
                k,
                e,
                &["num_warmup_steps", "num_cycles"],
                true,
            ),
        }
    }
    if !map.contains_key("num_warmup_steps") {
        r.warn(
            Diagnostic::error("missing-key", "`lr_scheduler.num_warmup_steps` is missing")
                .at(r.get("lr_scheduler").map(|e| e.key_span))
                .with_help("the scheduler takes warmup in optimizer steps; add num_warmup_steps: 0 for none"),
        );
    }
    if zero_cycles {
        // Cosine with no cycle holds the peak LR after warmup.
        let k = if warmup > 0 {
            ScheduleKind::ConstantWithWarmup
        } else {
            ScheduleKind::Constant
        };
        r.set(
            "schedule.kind",
            json!(k),
            derived(
                "lr_scheduler.num_cycles",
                "cosine with num_cycles 0 keeps the peak LR after warmup",
            ),
        );
    } else {
        r.set_from(
            "schedule.kind",
            json!(kind),
            "lr_scheduler._component_",
            span,
        );
    }
}

pub(super) fn read_loss(r: &mut Reader) {
    let t = tables::get();
    let Some((map, path)) = component(r, "loss") else {
        return;
    };
    let Some(loss) = t.c.loss.iter().find(|l| l.component == path) else {
        let known: Vec<&str> = t.c.loss.iter().map(|l| l.component.as_str()).collect();
        unknown_component(r, "loss", &path, &known);
        return;
    };
    let span = map.get("_component_").map(|e| e.key_span);
    r.set_from("loss.kind", json!(loss.kind), "loss._component_", span);
    for (k, e) in map {
        let key = format!("loss.{k}");
        match k.as_str() {
            "_component_" => {}
            "num_output_chunks" => r.consume(&key),
            "ignore_index" => {
                r.consume(&key);
                if e.node.to_value() != json!(-100) {
                    r.warn(
                        Diagnostic::warning(
                            "not-expressible",
                            "`loss.ignore_index` is not -100; the IR masks labels with -100",
                        )
                        .at(Some(e.key_span)),
                    );
                }
            }
            _ => unknown_arg(
                r,
                "loss",
                k,
                e,
                &["num_output_chunks", "ignore_index"],
                false,
            ),
        }
    }
}

pub(super) fn read_logger(r: &mut Reader) {
    let t = tables::get();
    let Some((map, path)) = component(r, "metric_logger") else {
        return;
    };
    let Some(logger) = t.c.metric_logger.iter().find(|l| l.component == path) else {
        let span = map.get("_component_").map(|e| e.node.span());
        r.warn(
            Diagnostic::warning("unknown-component", format!("metric logger `{path}` is not one tunebridge knows; logging.tracker stays none"))
                .at(span),
        );
        return;
    };
    let span = map.get("_component_").map(|e| e.key_span);
    r.set_from(
        "logging.tracker",
        json!(logger.tracker),
        "metric_logger._component_",
        span,
    );
    if !logger.project.is_empty() {
        if let Some(e) = map.get(&logger.project) {
            let key = format!("metric_logger.{}", logger.project);
            r.consume(&key);
            if let Some(p) = e.node.as_str() {
                r.set_from("logging.project", json!(p), &key, Some(e.key_span));
            }
        }
    }
}

pub(super) fn read_resume(r: &mut Reader) {
    let Some(e) = r.get("resume_from_checkpoint") else {
        return;
    };
    r.consume("resume_from_checkpoint");
    match e.node.to_value() {
        Value::Bool(true) => {
            let out = r
                .value("output_dir")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            r.set(
                "checkpoint.resume_from",
                json!(out),
                derived(
                    "resume_from_checkpoint",
                    "TorchTune resumes from the newest epoch_N (and recipe_state) in output_dir",
                ),
            );
        }
        Value::Bool(false) | Value::Null => {}
        other => r.warn(
            Diagnostic::error(
                "type-mismatch",
                format!("`resume_from_checkpoint` must be True or False, found `{other}`"),
            )
            .at(Some(e.node.span())),
        ),
    }
}

pub(super) fn read_parallel(r: &mut Reader, launch: &Option<launch::Launch>, model: &ModelInfo) {
    let t = tables::get();
    let dist_key = DISTRIBUTED_KEYS
        .iter()
        .find(|k| r.get(k).is_some_and(|e| !e.node.is_null()))
        .copied();
    let mut distributed = false;
    if let Some(l) = launch {
        let span = Some(Span::new(l.start, l.end));
        if let Some(n) = l.devices() {
            r.set_from("batch.devices", json!(n), "tune run --nproc_per_node", span);
        }
        if let Some(recipe) = t.c.recipe.iter().find(|x| x.name == l.recipe) {
            distributed = recipe.distributed;
            if !recipe.methods.contains(&model.method) {
                r.warn(
                    Diagnostic::warning(
                        "conflict",
                        format!(
                            "the header runs `{}`, but the model builder is a {} fine-tune",
                            l.recipe, model.method
                        ),
                    )
                    .at(span)
                    .with_help(format!(
                        "run it with `{}`",
                        t.recipe(model.method, recipe.distributed).name
                    )),
                );
            }
        }
    }
    let devices = r
        .ir_value("batch.devices")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if distributed || dist_key.is_some() || devices > 1 {
        let from = match (launch, dist_key) {
            (Some(l), _) if distributed || devices > 1 => format!("tune run {}", l.recipe),
            (_, Some(k)) => k.to_string(),
            _ => "batch.devices".to_string(),
        };
        r.set(
            "parallel.strategy",
            json!("fsdp2"),
            derived(&from, "TorchTune's distributed recipes shard with FSDP2"),
        );
    }
}
