//! Reading warmup (steps or ratio) and the scheduler's kwargs, precision flags, gradient
//! checkpointing and activation offloading, the loss plugins, the save cadence and the
//! experiment trackers; then the keys whose value is Axolotl's own default (`[noop]`) and the
//! deprecated spellings (`[[renamed]]`).

use super::common::{ir_str, keep, key_span, str_value};
use super::keys::{keys, table};
use crate::diag::Diagnostic;
use crate::ir::Origin;
use crate::translate::emitter::values_equal;
use crate::translate::reader::Reader;
use crate::translate::table::Kind;
use serde_json::{json, Value};

/// Warmup (steps or ratio, never both), the scheduler's kwargs and its floor.
pub(super) fn read_schedule(r: &mut Reader) {
    let steps = r.get("warmup_steps").filter(|e| !e.node.is_null());
    let ratio = r.get("warmup_ratio").filter(|e| !e.node.is_null());
    r.consume("warmup_ratio");
    let max_steps = r
        .ir_value("training.max_steps")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // Axolotl's builder: int(ratio × total); a computed 1 becomes 2 (core/builders/base.py).
    let from_ratio = |ratio: f64, cap: Option<u64>| {
        let mut s = (ratio * max_steps as f64).floor() as u64;
        if let Some(c) = cap {
            s = s.min(c);
        }
        if s == 1 {
            2
        } else {
            s
        }
    };
    match (steps, ratio) {
        (Some(s), Some(q)) => {
            let truthy = |v: Value| v.as_f64().is_some_and(|f| f != 0.0);
            if truthy(s.node.to_value()) && truthy(q.node.to_value()) {
                r.warn(
                    Diagnostic::error("conflict", "`warmup_steps` and `warmup_ratio` are both set")
                        .at(Some(q.key_span))
                        .with_help(format!(
                            "Axolotl rejects this: keep one (warmup_steps is at line {})",
                            r.source.line_col(s.key_span.start).0
                        )),
                );
            }
        }
        (Some(_), None) => r.set(
            "schedule.warmup_ratio",
            json!(0.0),
            Origin::Derived {
                from: vec!["schedule.warmup_steps".into()],
                rule: "warmup given in steps".into(),
            },
        ),
        (None, Some(q)) => match crate::translate::table::coerce(Kind::Float, &q.node.to_value()) {
            Ok(v) => {
                let ratio = v.as_f64().unwrap_or(0.0);
                r.set_from(
                    "schedule.warmup_ratio",
                    json!(ratio),
                    "warmup_ratio",
                    Some(q.key_span),
                );
                if max_steps > 0 {
                    let s = from_ratio(ratio, None);
                    r.set(
                        "schedule.warmup_steps",
                        json!(s),
                        Origin::Derived {
                            from: vec!["schedule.warmup_ratio".into(), "training.max_steps".into()],
                            rule: format!("int({ratio} × max_steps {max_steps}) = {s}, as Axolotl's builder when max_steps ends the run"),
                        },
                    );
                }
            }
            Err(expected) => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`warmup_ratio` must be {expected}"),
                )
                .at(Some(q.node.span())),
            ),
        },
        (None, None) if max_steps > 0 => {
            let s = from_ratio(0.03, Some(100));
            r.set(
                "schedule.warmup_steps",
                json!(s),
                Origin::Derived {
                    from: vec!["training.max_steps".into()],
                    rule: format!(
                        "no warmup key: min(int(0.03 × max_steps {max_steps}), 100) = {s}"
                    ),
                },
            );
        }
        (None, None) => {}
    }
    // lr_scheduler_kwargs: num_cycles and the min-LR floor are IR; the rest is kept.
    if let Some(e) = r.get("lr_scheduler_kwargs") {
        if e.node.is_null() {
            r.consume("lr_scheduler_kwargs");
        }
        let kw = e.node.to_value();
        let lr = r
            .ir_value("optimizer.lr")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if let Some(c) = kw.get("num_cycles").and_then(Value::as_f64) {
            r.consume("lr_scheduler_kwargs.num_cycles");
            r.set_from(
                "schedule.num_cycles",
                json!(c),
                "lr_scheduler_kwargs.num_cycles",
                Some(e.key_span),
            );
        }
        if let Some(m) = kw.get("min_lr_rate").and_then(Value::as_f64) {
            r.consume("lr_scheduler_kwargs.min_lr_rate");
            r.set_from(
                "schedule.min_lr_ratio",
                json!(m),
                "lr_scheduler_kwargs.min_lr_rate",
                Some(e.key_span),
            );
        } else if let Some(m) = kw
            .get("min_lr")
            .and_then(Value::as_f64)
            .filter(|_| lr > 0.0)
        {
            r.consume("lr_scheduler_kwargs.min_lr");
            r.set(
                "schedule.min_lr_ratio",
                json!(m / lr),
                Origin::Derived {
                    from: vec!["lr_scheduler_kwargs.min_lr".into(), "optimizer.lr".into()],
                    rule: format!("min_lr {m} / learning_rate {lr}"),
                },
            );
        }
    }
}

/// bf16 / fp16 / tf32 and the load dtypes (utils/config resolve_dtype): Axolotl loads the
/// model in the training dtype, so every run is "pure" in the IR's terms.
pub(super) fn read_precision(r: &mut Reader) {
    let bf16 = r.value("bf16");
    let fp16 = r.value("fp16") == Some(json!(true));
    let flag = |r: &Reader, k: &str| r.value(k) == Some(json!(true));
    let (bfloat16, float16, float32) =
        (flag(r, "bfloat16"), flag(r, "float16"), flag(r, "float32"));
    for k in ["bf16", "fp16", "bfloat16", "float16", "float32"] {
        r.consume(k);
    }
    let set = |r: &mut Reader, dtype: &str, key: &str| {
        let span = key_span(r, key);
        r.set_from("precision.compute_dtype", json!(dtype), key, span);
    };
    match &bf16 {
        Some(Value::Bool(true)) => set(r, "bf16", "bf16"),
        _ if fp16 => set(r, "fp16", "fp16"),
        Some(Value::String(s)) if s == "auto" => set(r, "bf16", "bf16"),
        Some(Value::Bool(false)) if !bfloat16 && !float16 => set(r, "fp32", "bf16"),
        Some(Value::Bool(false)) | None => {}
        Some(other) => {
            let span = r.get("bf16").map(|e| e.node.span());
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`bf16` must be true, false or auto, found `{other}`"),
                )
                .at(span),
            );
        }
    }
    let bf16_on =
        bfloat16 || matches!(&bf16, Some(Value::Bool(true))) || bf16 == Some(json!("auto"));
    if bfloat16 {
        set(r, "bf16", "bfloat16");
    } else if float16 {
        set(r, "fp16", "float16");
    } else if !bf16_on && !fp16 && r.value("load_in_8bit") == Some(json!(true)) {
        // utils/config/__init__.py: `elif cfg.load_in_8bit or cfg.fp16 or cfg.float16:
        // cfg.torch_dtype = torch.float16` — an 8-bit base is loaded in fp16 unless bf16
        set(r, "fp16", "load_in_8bit");
    } else if float32 && bf16.is_none() && !fp16 {
        set(r, "fp32", "float32");
    }
}

/// Gradient checkpointing and activation offloading (schemas/validation.py: `offload` is the
/// deprecated spelling of `gradient_checkpointing: true` + `activation_offloading: legacy`).
pub(super) fn read_memory(r: &mut Reader) {
    if let Some(e) = r.get("gradient_checkpointing") {
        r.consume("gradient_checkpointing");
        let gc = match e.node.to_value() {
            Value::Bool(true) => Some("on"),
            Value::String(s) if s == "offload" => Some("offload"),
            Value::String(s) if s == "offload_disk" => Some("on"),
            Value::Bool(false) => Some("off"),
            Value::Null => None,
            other => {
                r.warn(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`gradient_checkpointing` must be true, false, offload or offload_disk, found `{other}`"),
                    )
                    .at(Some(e.node.span())),
                );
                None
            }
        };
        if let Some(gc) = gc {
            r.set_from(
                "memory.gradient_checkpointing",
                json!(gc),
                "gradient_checkpointing",
                Some(e.key_span),
            );
        }
        if e.node.as_str() == Some("offload_disk") {
            r.set_from(
                "memory.activation_offloading",
                json!(true),
                "gradient_checkpointing",
                Some(e.key_span),
            );
        }
    }
    if let Some(e) = r.get("activation_offloading") {
        r.consume("activation_offloading");
        match e.node.to_value() {
            Value::Bool(b) => r.set_from("memory.activation_offloading", json!(b), "activation_offloading", Some(e.key_span)),
            Value::String(s) if s == "legacy" => {
                // The old offloaded checkpointing: the IR's `offload`.
                r.set_from("memory.gradient_checkpointing", json!("offload"), "activation_offloading", Some(e.key_span));
            }
            Value::String(s) if s == "disk" || s == "hidden_states" => {
                r.set_from("memory.activation_offloading", json!(true), "activation_offloading", Some(e.key_span));
                r.warn(
                    Diagnostic::info(
                        "approximated",
                        format!("`activation_offloading: {s}` is read as activation offloading to CPU"),
                    )
                    .at(Some(e.key_span)),
                );
            }
            Value::Null => {}
            other => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`activation_offloading` must be true, false, legacy, disk or hidden_states, found `{other}`"),
                )
                .at(Some(e.node.span())),
            ),
        }
    }
}

/// Loss replacements: the Cut Cross Entropy plugin, Liger's fused linear cross entropy and
/// Axolotl's chunked cross entropy are `loss.kind`; other plugins are kept.
pub(super) fn read_loss(r: &mut Reader) {
    let k = keys();
    let plugins: Vec<String> = r
        .value("plugins")
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let plugins_span = key_span(r, "plugins");
    r.consume("plugins");
    let cce_listed = plugins.contains(&k.plugins.cut_cross_entropy);
    let liger_listed = plugins.contains(&k.plugins.liger);
    let mut kinds: Vec<(&str, &str)> = Vec::new();
    // `cut_cross_entropy` defaults to true once the plugin is listed.
    r.consume("cut_cross_entropy");
    if cce_listed && r.value("cut_cross_entropy") != Some(json!(false)) {
        kinds.push(("cut_cross_entropy", "plugins"));
    }
    r.consume("liger_fused_linear_cross_entropy");
    if liger_listed && r.value("liger_fused_linear_cross_entropy") == Some(json!(true)) {
        kinds.push((
            "fused_linear_cross_entropy",
            "liger_fused_linear_cross_entropy",
        ));
    }
    r.consume("chunked_cross_entropy");
    if r.value("chunked_cross_entropy") == Some(json!(true)) {
        kinds.push(("chunked_cross_entropy", "chunked_cross_entropy"));
    }
    match kinds.as_slice() {
        [] => {}
        [(kind, key)] => {
            let span = key_span(r, key).or(plugins_span);
            r.set_from("loss.kind", json!(kind), key, span);
        }
        many => r.warn(
            Diagnostic::error(
                "conflict",
                format!(
                    "more than one cross-entropy replacement: {}",
                    many.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                ),
            )
            .at(plugins_span)
            .with_help("Axolotl allows at most one (cut_cross_entropy, chunked, Liger CE or FLCE)"),
        ),
    }
    // The Liger plugin stays listed while any of its other switches is on.
    let other_liger = r
        .root
        .as_map()
        .map(|m| {
            m.iter().any(|(key, e)| {
                key.starts_with("liger_")
                    && key != "liger_fused_linear_cross_entropy"
                    && e.node.to_value() == json!(true)
            })
        })
        .unwrap_or(false);
    let kept: Vec<String> = plugins
        .into_iter()
        .filter(|p| {
            !(*p == k.plugins.cut_cross_entropy && ir_str(r, "loss.kind") == "cut_cross_entropy"
                || *p == k.plugins.liger
                    && !other_liger
                    && ir_str(r, "loss.kind") == "fused_linear_cross_entropy")
        })
        .collect();
    if !kept.is_empty() {
        keep(
            r,
            "plugins",
            json!(kept),
            plugins_span,
            "Axolotl plugins other than the loss replacements",
        );
    }
}

/// Save cadence: steps, once per epoch (`saves_per_epoch: 1`, `save_strategy: epoch`), or
/// kept verbatim when the IR cannot say it.
pub(super) fn read_checkpoint(r: &mut Reader) {
    let strategy = str_value(r, "save_strategy");
    let steps = r.get("save_steps").filter(|e| !e.node.is_null());
    for k in ["save_steps", "saves_per_epoch", "save_strategy"] {
        r.consume(k);
    }
    if let (Some(s), Some(e)) = (&strategy, steps) {
        if s != "steps" {
            r.warn(
                Diagnostic::error(
                    "conflict",
                    format!("`save_steps` with `save_strategy: {s}`"),
                )
                .at(Some(e.key_span))
                .with_help("Axolotl rejects this: set save_strategy: steps or remove save_steps"),
            );
        }
    }
    if let Some(e) = steps {
        let v = e.node.to_value();
        match v.as_f64() {
            Some(f) if f >= 1.0 && f.fract() == 0.0 => r.set_from(
                "checkpoint.save_steps",
                json!(f as u64),
                "save_steps",
                Some(e.key_span),
            ),
            Some(f) if f > 0.0 && f < 1.0 => keep(
                r,
                "save_steps",
                v,
                Some(e.key_span),
                "save cadence as a fraction of the total steps",
            ),
            _ => r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`save_steps` must be a step count or a fraction below 1, found `{v}`"),
                )
                .at(Some(e.node.span())),
            ),
        }
        return;
    }
    if let Some(e) = r.get("saves_per_epoch").filter(|e| !e.node.is_null()) {
        match e.node.to_value().as_u64() {
            Some(1) => r.set_from(
                "checkpoint.save_steps",
                json!(0),
                "saves_per_epoch",
                Some(e.key_span),
            ),
            _ => keep(
                r,
                "saves_per_epoch",
                e.node.to_value(),
                Some(e.key_span),
                "checkpoint cadence as a fraction of an epoch",
            ),
        }
    }
    match strategy.as_deref() {
        None | Some("steps") => {}
        Some("epoch") => {
            let span = key_span(r, "save_strategy");
            r.set_from("checkpoint.save_steps", json!(0), "save_strategy", span);
        }
        Some(other) => {
            let span = key_span(r, "save_strategy");
            keep(
                r,
                "save_strategy",
                json!(other),
                span,
                "checkpoint policy the IR cannot say",
            );
        }
    }
}

/// Experiment trackers: W&B (`wandb_project` or `use_wandb`), TensorBoard, MLflow.
pub(super) fn read_logging(r: &mut Reader) {
    for k in [
        "use_wandb",
        "wandb_project",
        "wandb_mode",
        "use_tensorboard",
        "use_mlflow",
        "mlflow_experiment_name",
    ] {
        r.consume(k);
    }
    let mode = str_value(r, "wandb_mode");
    let project = str_value(r, "wandb_project").filter(|p| !p.is_empty());
    let use_wandb = r.value("use_wandb") == Some(json!(true));
    let mut trackers: Vec<(&str, &str)> = Vec::new();
    if (project.is_some() || use_wandb) && mode.as_deref() != Some("disabled") {
        trackers.push((
            "wandb",
            if project.is_some() {
                "wandb_project"
            } else {
                "use_wandb"
            },
        ));
    }
    if r.value("use_tensorboard") == Some(json!(true)) {
        trackers.push(("tensorboard", "use_tensorboard"));
    }
    if r.value("use_mlflow") == Some(json!(true)) {
        trackers.push(("mlflow", "use_mlflow"));
    }
    if let Some((tracker, key)) = trackers.first().copied() {
        let span = key_span(r, key);
        r.set_from("logging.tracker", json!(tracker), key, span);
        let project_key = match tracker {
            "wandb" => "wandb_project",
            "mlflow" => "mlflow_experiment_name",
            _ => "",
        };
        if let Some(p) = str_value(r, project_key).filter(|p| !p.is_empty()) {
            let span = key_span(r, project_key);
            r.set_from("logging.project", json!(p), project_key, span);
        }
    }
    // The IR has one tracker: the others are kept for Axolotl.
    for (_, key) in trackers.iter().skip(1) {
        let span = key_span(r, key);
        keep(r, key, json!(true), span, "a second experiment tracker");
    }
    if let Some(m) = mode.filter(|m| m != "disabled") {
        let span = key_span(r, "wandb_mode");
        keep(r, "wandb_mode", json!(m), span, "Weights & Biases mode");
    }
    if trackers.first().map(|t| t.0) != Some("mlflow") {
        if let Some(p) = str_value(r, "mlflow_experiment_name") {
            let span = key_span(r, "mlflow_experiment_name");
            keep(
                r,
                "mlflow_experiment_name",
                json!(p),
                span,
                "MLflow experiment name",
            );
        }
    }
}

/// Drop keys whose value is what Axolotl does anyway (keys.toml `[noop]`).
pub(super) fn drop_noops(r: &mut Reader) {
    for (key, values) in &keys().noop {
        let Some(e) = r.get(key) else { continue };
        let v = e.node.to_value();
        let hit = values == "*"
            || values
                .as_array()
                .is_some_and(|vs| vs.iter().any(|x| values_equal(x, &v)));
        if hit {
            r.consume(key);
        }
    }
    // Padding and eval packing follow sample_packing by default (validation.py).
    let packing = r.value("sample_packing") == Some(json!(true));
    for key in ["pad_to_sequence_len", "eval_sample_packing"] {
        if r.get(key)
            .is_some_and(|e| e.node.to_value() == json!(packing))
        {
            r.consume(key);
        }
    }
}

/// Deprecated spellings (fields.toml `[[renamed]]`): warn, then read as the new key.
pub(super) fn read_renamed(r: &mut Reader) {
    for rn in &table().renamed {
        let Some(e) = r.root.lookup(&rn.from) else {
            continue;
        };
        r.consume(&rn.from);
        r.warn(
            Diagnostic::warning(
                "deprecated-key",
                format!("`{}` is deprecated; read as `{}`", rn.from, rn.to),
            )
            .at(Some(e.key_span))
            .with_help(format!("rename it to `{}`", rn.to)),
        );
        let reason = table()
            .ignored
            .iter()
            .find(|i| i.key == rn.to)
            .map(|i| i.reason.clone())
            .unwrap_or_else(|| "no IR field".into());
        keep(r, &rn.to, e.node.to_value(), Some(e.key_span), &reason);
    }
}
