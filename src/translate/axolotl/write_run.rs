//! IR → Axolotl YAML, the run: the schedule, precision and memory, the loss plugins, the run
//! (devices, data order, checkpoints, trackers) and the passthrough keys merged back.

use super::keys::{keys, FW};
use crate::ir::{
    BaseWeights, Dtype, LossKind, Origin, PrecisionMode, Recompute, Resolved, RunSpec,
    ScheduleKind, Strategy, Tracker,
};
use crate::translate::emitter::Emitter;
use crate::translate::report::Status;
use serde_json::{json, Map, Value};

/// Warmup as a ratio when the source gave one; scheduler kwargs; the min-LR floor.
pub(super) fn write_schedule(em: &mut Emitter, resolved: &Resolved) {
    let s = &resolved.spec.schedule;
    let prov = &resolved.provenance;
    let axolotl_default = matches!(prov.get("schedule.warmup_ratio"), Some(Origin::Default { framework, .. }) if framework == FW.name());
    if s.warmup_ratio > 0.0 && !prov.is_explicit("schedule.warmup_steps") {
        if axolotl_default {
            // Axolotl's own default (3 %, capped at 100 steps) applies when neither key is set.
            em.cover("schedule.warmup_ratio", Status::Defaulted, "", "");
            em.cover("schedule.warmup_steps", Status::Defaulted, "", "");
        } else {
            em.put(
                "warmup_ratio",
                json!(s.warmup_ratio),
                &["schedule.warmup_ratio", "schedule.warmup_steps"],
                Status::Carried,
                "",
            );
        }
    } else {
        em.cover("schedule.warmup_ratio", Status::Carried, "warmup_steps", "");
    }
    let mut kwargs = Map::new();
    match s.kind {
        ScheduleKind::CosineWithMinLr | ScheduleKind::CosineWarmupWithMinLr => {
            kwargs.insert("min_lr_rate".into(), json!(s.min_lr_ratio));
            em.cover(
                "schedule.min_lr_ratio",
                Status::Carried,
                "lr_scheduler_kwargs.min_lr_rate",
                "",
            );
        }
        ScheduleKind::Cosine => {} // cosine_min_lr_ratio through the table
        _ if s.min_lr_ratio != 0.0 => em.cover(
            "schedule.min_lr_ratio",
            Status::NotExpressible,
            "",
            &format!("Axolotl's `{}` schedule has no LR floor", s.kind),
        ),
        _ => em.cover("schedule.min_lr_ratio", Status::Defaulted, "", ""),
    }
    let default_cycles = if s.kind == ScheduleKind::CosineWithRestarts {
        1.0
    } else {
        0.5
    };
    let cyclic = matches!(
        s.kind,
        ScheduleKind::Cosine | ScheduleKind::CosineWithRestarts | ScheduleKind::CosineWithMinLr
    );
    if cyclic && s.num_cycles != default_cycles {
        kwargs.insert("num_cycles".into(), json!(s.num_cycles));
        em.cover(
            "schedule.num_cycles",
            Status::Carried,
            "lr_scheduler_kwargs.num_cycles",
            "",
        );
    } else if s.num_cycles != 0.5 && !cyclic {
        em.cover(
            "schedule.num_cycles",
            Status::Defaulted,
            "",
            "not used by this schedule",
        );
    }
    if !kwargs.is_empty() {
        em.put(
            "lr_scheduler_kwargs",
            Value::Object(kwargs),
            &[],
            Status::Carried,
            "",
        );
    }
}

pub(super) fn write_precision(em: &mut Emitter, spec: &RunSpec) {
    let p = &spec.precision;
    let (bf16, fp16) = match p.compute_dtype {
        Dtype::Bf16 => (true, false),
        // `load_in_8bit` alone loads the base in fp16; `fp16: true` would add AMP on top
        Dtype::Fp16 if spec.quantization.base_weights == BaseWeights::Int8 => (false, false),
        Dtype::Fp16 => (false, true),
        Dtype::Fp32 => (false, false),
    };
    em.put(
        "bf16",
        json!(bf16),
        &["precision.compute_dtype"],
        Status::Carried,
        "",
    );
    em.put(
        "fp16",
        json!(fp16),
        &["precision.compute_dtype"],
        Status::Carried,
        "",
    );
    if p.mode != PrecisionMode::Pure && p.compute_dtype != Dtype::Fp32 {
        em.cover(
            "precision.mode",
            Status::Approximated,
            "bf16",
            "Axolotl loads the model in the training dtype; fp32 master weights are not available (LoRA weights stay fp32)",
        );
    } else {
        em.cover("precision.mode", Status::Carried, "bf16", "");
    }
    let m = &spec.memory;
    // Under FSDP2, activation checkpointing belongs to fsdp_config (parallel::write).
    let fsdp =
        spec.parallel.strategy == Strategy::Fsdp2 && m.gradient_checkpointing == Recompute::On;
    if !fsdp || m.gradient_checkpointing == Recompute::Off {
        let gc = json!(m.gradient_checkpointing.is_on());
        em.put(
            "gradient_checkpointing",
            gc,
            &["memory.gradient_checkpointing"],
            Status::Carried,
            "",
        );
    }
    if m.gradient_checkpointing == Recompute::Offload {
        em.put(
            "activation_offloading",
            json!("legacy"),
            &[
                "memory.gradient_checkpointing",
                "memory.activation_offloading",
            ],
            Status::Carried,
            "offloaded checkpoints (was gradient_checkpointing: offload)",
        );
    } else if m.activation_offloading {
        let status = if m.gradient_checkpointing == Recompute::Off {
            Status::Approximated
        } else {
            Status::Carried
        };
        em.put(
            "activation_offloading",
            json!(true),
            &["memory.activation_offloading"],
            status,
            "Axolotl offloads activations only with gradient checkpointing",
        );
    } else {
        em.cover("memory.activation_offloading", Status::Defaulted, "", "");
    }
}

pub(super) fn write_loss(em: &mut Emitter, spec: &RunSpec) {
    let k = keys();
    match spec.loss.kind {
        LossKind::CrossEntropy => em.cover("loss.kind", Status::Defaulted, "", ""),
        LossKind::ChunkedCrossEntropy => em.put(
            "chunked_cross_entropy",
            json!(true),
            &["loss.kind"],
            Status::Carried,
            "",
        ),
        LossKind::CutCrossEntropy => {
            em.put(
                "plugins",
                json!([k.plugins.cut_cross_entropy]),
                &["loss.kind"],
                Status::Carried,
                "",
            );
            em.put(
                "cut_cross_entropy",
                json!(true),
                &["loss.kind"],
                Status::Carried,
                "",
            );
        }
        LossKind::FusedLinearCrossEntropy => {
            em.put(
                "plugins",
                json!([k.plugins.liger]),
                &["loss.kind"],
                Status::Carried,
                "",
            );
            em.put(
                "liger_fused_linear_cross_entropy",
                json!(true),
                &["loss.kind"],
                Status::Carried,
                "",
            );
        }
    }
}

/// Devices, data order, checkpoints, trackers.
pub(super) fn write_run(em: &mut Emitter, spec: &RunSpec) {
    if spec.batch.devices > 1 {
        // An Axolotl config does not record the GPU count: the launcher decides it.
        let note = format!(
            "Axolotl configs do not record the GPU count; launch on {} GPUs with the written command",
            spec.batch.devices
        );
        em.cover("batch.devices", Status::Approximated, "", &note);
        em.cover("batch.global_batch", Status::Approximated, "", &note);
        if spec.parallel.strategy == Strategy::Ddp {
            em.cover("parallel.strategy", Status::Approximated, "", &note);
        }
    }
    em.cover("batch.global_batch", Status::Carried, "", "");
    if spec.data.shuffle_seed != spec.training.seed {
        let note = if spec.data.shuffle {
            "Axolotl shuffles with `seed`; a separate data-order seed cannot be set"
        } else {
            "Axolotl's data-order seed is `seed` (unused here: no shuffling)"
        };
        em.cover("data.shuffle_seed", Status::NotExpressible, "", note);
    } else {
        em.cover("data.shuffle_seed", Status::Carried, "seed", "");
    }
    if let Some(seed) = spec.adapter.init_seed {
        if seed != spec.training.seed {
            em.cover(
                "adapter.init_seed",
                Status::NotExpressible,
                "",
                "Axolotl does not seed LoRA init; pin it with lora_model_dir",
            );
        }
    }
    if spec.checkpoint.save_steps > 0 {
        em.put(
            "save_strategy",
            json!("steps"),
            &["checkpoint.save_steps"],
            Status::Carried,
            "",
        );
        em.put(
            "save_steps",
            json!(spec.checkpoint.save_steps),
            &["checkpoint.save_steps"],
            Status::Carried,
            "",
        );
    } else {
        em.cover(
            "checkpoint.save_steps",
            Status::Carried,
            "",
            "no save_steps: Axolotl saves once per epoch",
        );
    }
    let l = &spec.logging;
    match l.tracker {
        Tracker::Wandb if !l.project.is_empty() => em.put(
            "wandb_project",
            json!(l.project),
            &["logging.tracker", "logging.project"],
            Status::Carried,
            "",
        ),
        Tracker::Wandb => em.put(
            "use_wandb",
            json!(true),
            &["logging.tracker"],
            Status::Carried,
            "",
        ),
        Tracker::Tensorboard => em.put(
            "use_tensorboard",
            json!(true),
            &["logging.tracker"],
            Status::Carried,
            "",
        ),
        Tracker::Mlflow => {
            em.put(
                "use_mlflow",
                json!(true),
                &["logging.tracker"],
                Status::Carried,
                "",
            );
            if !l.project.is_empty() {
                em.put(
                    "mlflow_experiment_name",
                    json!(l.project),
                    &["logging.project"],
                    Status::Carried,
                    "",
                );
            }
        }
        Tracker::None => em.cover("logging.tracker", Status::Defaulted, "", ""),
        other @ Tracker::Comet => em.cover(
            "logging.tracker",
            Status::NotExpressible,
            "",
            &format!("Axolotl has no `{other}` tracker"),
        ),
    }
    if !l.project.is_empty() && !matches!(l.tracker, Tracker::Wandb | Tracker::Mlflow) {
        em.cover(
            "logging.project",
            Status::NotExpressible,
            "",
            "no project setting for this tracker in Axolotl",
        );
    }
}

/// Passthrough keys of our own framework come back verbatim, merged into what was written
/// (`fsdp_config.sync_module_states` joins `fsdp_config`; `datasets.N.*` was merged by the
/// dataset writer; a kept `plugins` list is joined with the loss plugin).
pub(super) fn write_passthrough(em: &mut Emitter, spec: &RunSpec) {
    let own = format!("{}.", FW.name());
    let mut tree = Map::new();
    for (k, v) in &spec.passthrough {
        let Some(key) = k.strip_prefix(&own) else {
            continue;
        };
        if key.starts_with("datasets.") {
            continue;
        }
        insert_dotted(&mut tree, key, v.clone());
    }
    for (key, value) in tree {
        let existing = em.out.iter_mut().find(|o| o.key == key);
        match existing {
            Some(o) => merge(&mut o.value, value),
            None => em.put(&key, value, &[], Status::Carried, ""),
        }
    }
}

/// Insert `a.b.c = v` into a nested map.
fn insert_dotted(tree: &mut Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            tree.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let child = tree
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Some(m) = child.as_object_mut() {
                insert_dotted(m, rest, value);
            }
        }
    }
}

/// Merge a kept value into a written one: maps key by key (written keys win), lists as a
/// union, anything else replaced by the kept value (the source's own spelling).
fn merge(into: &mut Value, kept: Value) {
    match (into, kept) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for v in b {
                if !a.contains(&v) {
                    a.push(v);
                }
            }
        }
        (slot, v) => *slot = v,
    }
}
