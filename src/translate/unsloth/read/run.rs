//! Reading steps and schedule, precision, and the run's checkpoints, tracker and
//! parallelism.

use super::common::{arg, derived, ir_u64};
use crate::diag::{Diagnostic, Span};
use crate::translate::reader::Reader;
use crate::translate::unsloth::python::Py;
use crate::translate::unsloth::script::Script;
use serde_json::{json, Value};

/// The step cap, warmup, scheduler keyword arguments and the data seed.
pub(super) fn read_steps(r: &mut Reader, s: &Script) {
    read_max_steps(r);
    read_warmup(r);
    read_scheduler_kwargs(r, s);
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

/// `max_steps`: a positive cap, or none.
fn read_max_steps(r: &mut Reader) {
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
}

/// Warmup: HF uses warmup_steps when > 0, else ceil(warmup_ratio × total steps).
fn read_warmup(r: &mut Reader) {
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
}

/// Scheduler kwargs: cosine cycles and the learning-rate floor (as a ratio of the peak).
fn read_scheduler_kwargs(r: &mut Reader, s: &Script) {
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
}

pub(super) fn read_precision(r: &mut Reader) {
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

pub(super) fn read_run(r: &mut Reader, s: &Script) {
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
