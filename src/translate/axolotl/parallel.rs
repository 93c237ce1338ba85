//! Axolotl DeepSpeed and FSDP ⇄ `parallel` (schemas/fsdp.py, schemas/validation.py,
//! deepspeed_configs/, docs/multi-gpu.qmd).
//!
//! DeepSpeed is a JSON path (Axolotl's shipped configs are known by name, others read for the
//! stage in the name) or an inline dict. FSDP is `fsdp_config` (FSDP1 when no version is
//! given, the FSDP1 `fsdp_`-prefixed keys accepted), `fsdp_version` at the top or inside, and
//! the legacy `fsdp: [full_shard, auto_wrap, offload]` list. Settings with no IR field are
//! kept under their un-prefixed names, as Axolotl itself renames them.

use super::common::{ir_str, keep};
use super::keys::Keys;
use crate::diag::Diagnostic;
use crate::ir::{Recompute, RunSpec, Strategy};
use crate::translate::emitter::Emitter;
use crate::translate::families;
use crate::translate::reader::Reader;
use crate::translate::report::Status;
use serde_json::{json, Map, Value};

pub(super) fn read(r: &mut Reader, keys: &Keys) {
    read_deepspeed(r, keys);
    read_fsdp(r, keys);
}

fn read_deepspeed(r: &mut Reader, keys: &Keys) {
    let Some(e) = r.get("deepspeed") else { return };
    r.consume("deepspeed");
    let (stage, offload_params, offload_optimizer, path) = match e.node.to_value() {
        Value::Null => return,
        Value::String(path) => {
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            match keys.deepspeed.get(&name) {
                Some(f) => (f.stage, f.offload_params, f.offload_optimizer, path),
                None => {
                    let stage = (1..=3)
                        .rev()
                        .find(|s| name.contains(&format!("zero{s}")))
                        .unwrap_or(0);
                    if stage == 0 {
                        r.warn(
                            Diagnostic::warning("not-expressible", format!("cannot tell the ZeRO stage of `{path}` from its name"))
                                .at(Some(e.node.span()))
                                .with_help("name the file zero1/zero2/zero3…, or use one of Axolotl's deepspeed_configs/"),
                        );
                    }
                    (
                        stage,
                        name.contains("offload_param") || name.contains("offload_all"),
                        name.contains("offload"),
                        path,
                    )
                }
            }
        }
        Value::Object(cfg) => {
            let zero = cfg.get("zero_optimization").cloned().unwrap_or(Value::Null);
            let stage = zero.get("stage").and_then(Value::as_u64).unwrap_or(0) as u32;
            let on_cpu = |k: &str| {
                zero.get(k)
                    .and_then(|o| o.get("device"))
                    .and_then(Value::as_str)
                    == Some("cpu")
            };
            let span = Some(e.key_span);
            keep(
                r,
                "deepspeed",
                Value::Object(cfg.clone()),
                span,
                "inline DeepSpeed config (the IR keeps its stage and offload)",
            );
            (
                stage,
                on_cpu("offload_param"),
                on_cpu("offload_optimizer"),
                String::new(),
            )
        }
        other => {
            r.warn(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`deepspeed` must be a JSON path or a mapping, found `{other}`"),
                )
                .at(Some(e.node.span())),
            );
            return;
        }
    };
    let span = Some(e.key_span);
    r.set_from("parallel.strategy", json!("deepspeed"), "deepspeed", span);
    r.set_from("parallel.zero_stage", json!(stage), "deepspeed", span);
    if !path.is_empty() {
        r.set_from("parallel.deepspeed_config", json!(path), "deepspeed", span);
    }
    r.set_from(
        "parallel.cpu_offload",
        json!(offload_params),
        "deepspeed",
        span,
    );
    if offload_optimizer {
        r.warn(
            Diagnostic::info("not-expressible", "the DeepSpeed config offloads optimizer state to CPU; the IR records parameter offload only")
                .at(span),
        );
    }
}

fn read_fsdp(r: &mut Reader, keys: &Keys) {
    let top_version = r
        .get("fsdp_version")
        .and_then(|e| e.node.to_value().as_u64());
    r.consume("fsdp_version");
    let legacy = r.get("fsdp").map(|e| (e.node.to_value(), e.key_span));
    r.consume("fsdp");
    let config = r
        .get("fsdp_config")
        .filter(|e| e.node.as_map().is_some_and(|m| !m.is_empty()));
    if config.is_none() {
        r.consume("fsdp_config");
    }
    let legacy_list: Vec<String> = match &legacy {
        Some((Value::Array(items), _)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some((Value::String(s), _)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    if config.is_none() && legacy_list.is_empty() {
        return;
    }
    let (key, span) = match (config, &legacy) {
        (Some(e), _) => ("fsdp_config", Some(e.key_span)),
        (None, Some((_, s))) => ("fsdp", Some(*s)),
        (None, None) => return,
    };
    let cfg: Map<String, Value> = config
        .and_then(|e| e.node.to_value().as_object().cloned())
        .unwrap_or_default();
    // FSDP1 when no version is given (validation.py check_fsdp_version_in_fsdp_config).
    let inner_version = cfg
        .get("fsdp_version")
        .or_else(|| cfg.get("version"))
        .and_then(Value::as_u64);
    let version = top_version.or(inner_version).unwrap_or(1);
    r.set_from(
        "parallel.strategy",
        json!(if version >= 2 { "fsdp2" } else { "fsdp1" }),
        key,
        span,
    );
    for item in &legacy_list {
        match item.as_str() {
            "full_shard" | "hybrid_shard" => {
                r.set_from("parallel.reshard_after_forward", json!(true), "fsdp", span)
            }
            "shard_grad_op" | "hybrid_shard_zero2" => {
                r.set_from("parallel.reshard_after_forward", json!(false), "fsdp", span)
            }
            "offload" => r.set_from("parallel.cpu_offload", json!(true), "fsdp", span),
            "auto_wrap" => {}
            other => r.warn(
                Diagnostic::warning(
                    "unknown-key",
                    format!("unknown `fsdp` option `{other}` is not read"),
                )
                .at(span)
                .with_help(
                    "the list takes full_shard, shard_grad_op, hybrid_shard, offload, auto_wrap",
                ),
            ),
        }
    }
    let family = ir_str(r, "model.family");
    let layer_class =
        families::by_name(&family).and_then(|f| keys.fsdp_layer_class.get(&f.hf_model_type));
    for (raw, v) in &cfg {
        let name = raw
            .strip_prefix("fsdp_")
            .filter(|n| *n != "version")
            .unwrap_or(raw);
        let source_key = format!("fsdp_config.{raw}");
        r.consume(&source_key);
        let span = r.get(&source_key).map(|e| e.key_span);
        match (name, v) {
            (_, Value::Null) => {}
            ("version" | "fsdp_version", _) => {}
            ("offload_params", Value::Bool(b)) => {
                r.set_from("parallel.cpu_offload", json!(b), &source_key, span)
            }
            ("reshard_after_forward", Value::Bool(b)) => r.set_from(
                "parallel.reshard_after_forward",
                json!(b),
                &source_key,
                span,
            ),
            ("sharding_strategy", _) => {
                // Not in Axolotl's FSDPConfig: pydantic drops it; the `fsdp` list decides.
                keep(r, "fsdp_config.sharding_strategy", v.clone(), span, "dropped by Axolotl's schema; the `fsdp` list (full_shard / shard_grad_op) decides");
            }
            ("activation_checkpointing", Value::Bool(true)) => r.set_from(
                "memory.gradient_checkpointing",
                json!("on"),
                &source_key,
                span,
            ),
            ("activation_checkpointing", Value::Bool(false)) => {}
            ("auto_wrap_policy", Value::String(s)) if s == "TRANSFORMER_BASED_WRAP" => {}
            ("transformer_layer_cls_to_wrap", Value::String(s)) if layer_class == Some(s) => {}
            _ => keep(
                r,
                &format!("fsdp_config.{name}"),
                v.clone(),
                span,
                "FSDP setting with no IR field",
            ),
        }
    }
}

/// Wrap each decoder layer of the family (TRANSFORMER_BASED_WRAP).
fn wrap_policy(cfg: &mut Map<String, Value>, spec: &RunSpec, keys: &Keys) {
    cfg.insert("auto_wrap_policy".into(), json!("TRANSFORMER_BASED_WRAP"));
    let class = families::by_name(&spec.model.family)
        .and_then(|f| keys.fsdp_layer_class.get(&f.hf_model_type));
    if let Some(c) = class {
        cfg.insert("transformer_layer_cls_to_wrap".into(), json!(c));
    }
}

pub(super) fn write(em: &mut Emitter, spec: &RunSpec, keys: &Keys) {
    let p = &spec.parallel;
    match p.strategy {
        Strategy::Deepspeed => {
            em.cover("parallel.reshard_after_forward", Status::Defaulted, "", "");
            let kept_inline = spec
                .passthrough
                .get("axolotl.deepspeed")
                .is_some_and(Value::is_object);
            if kept_inline {
                // The source's inline config comes back through the passthrough.
                em.cover("parallel", Status::Carried, "deepspeed", "");
                return;
            }
            let known = |name: &str| keys.deepspeed.get(name);
            let path = if !p.deepspeed_config.is_empty() {
                p.deepspeed_config.clone()
            } else {
                // Pick the shipped config with this stage and offload.
                let stage = p.zero_stage.clamp(1, 3);
                let pick = keys
                    .deepspeed
                    .iter()
                    .filter(|(n, f)| {
                        f.stage == stage
                            && f.offload_params == p.cpu_offload
                            && !n.contains("compile")
                    })
                    .map(|(n, _)| n.clone())
                    .next()
                    .unwrap_or_else(|| format!("zero{stage}.json"));
                format!("deepspeed_configs/{pick}")
            };
            let name = path.rsplit('/').next().unwrap_or(&path);
            let offload_matches = known(name).is_none_or(|f| f.offload_params == p.cpu_offload);
            em.put(
                "deepspeed",
                json!(path),
                &[
                    "parallel.strategy",
                    "parallel.deepspeed_config",
                    "parallel.zero_stage",
                    "parallel.cpu_offload",
                ],
                Status::Carried,
                "",
            );
            if !offload_matches {
                em.cover(
                    "parallel.cpu_offload",
                    Status::Approximated,
                    "deepspeed",
                    "the named DeepSpeed file decides the offload",
                );
            }
        }
        Strategy::Fsdp2 => {
            // As Axolotl's FSDP2 examples: version at the top, activation checkpointing in
            // fsdp_config (HF refuses it together with gradient_checkpointing).
            em.put(
                "fsdp_version",
                json!(2),
                &["parallel.strategy"],
                Status::Carried,
                "",
            );
            let mut cfg = Map::new();
            cfg.insert("offload_params".into(), json!(p.cpu_offload));
            cfg.insert(
                "reshard_after_forward".into(),
                json!(p.reshard_after_forward),
            );
            wrap_policy(&mut cfg, spec, keys);
            let mut irs = vec![
                "parallel.strategy",
                "parallel.cpu_offload",
                "parallel.reshard_after_forward",
            ];
            // Offloaded checkpoints stay HF gradient checkpointing + activation_offloading
            // (as examples/alst/llama3-8b-fsdp2-alst.yaml does).
            if spec.memory.gradient_checkpointing == Recompute::On {
                cfg.insert("activation_checkpointing".into(), json!(true));
                irs.push("memory.gradient_checkpointing");
            }
            em.put("fsdp_config", Value::Object(cfg), &irs, Status::Carried, "");
            em.cover("parallel.zero_stage", Status::Defaulted, "", "");
        }
        Strategy::Fsdp1 => {
            // As Axolotl's FSDP1 examples: the `fsdp` list decides the sharding (the schema has
            // no sharding_strategy, and accelerate wants a strategy name, not a bool, for FSDP1).
            let mut list = vec![json!(if p.reshard_after_forward {
                "full_shard"
            } else {
                "shard_grad_op"
            })];
            if p.cpu_offload {
                list.push(json!("offload"));
            }
            list.push(json!("auto_wrap"));
            em.put(
                "fsdp",
                json!(list),
                &["parallel.reshard_after_forward"],
                Status::Carried,
                "",
            );
            em.put(
                "fsdp_version",
                json!(1),
                &["parallel.strategy"],
                Status::Carried,
                "",
            );
            let mut cfg = Map::new();
            cfg.insert("offload_params".into(), json!(p.cpu_offload));
            wrap_policy(&mut cfg, spec, keys);
            em.put(
                "fsdp_config",
                Value::Object(cfg),
                &["parallel.strategy", "parallel.cpu_offload"],
                Status::Carried,
                "",
            );
            em.cover("parallel.zero_stage", Status::Defaulted, "", "");
        }
        Strategy::Single | Strategy::Ddp => {
            // Plain DDP: Axolotl picks it itself under a multi-GPU launcher.
            em.cover("parallel.strategy", Status::Carried, "", "");
            em.cover("parallel.zero_stage", Status::Defaulted, "", "");
            em.cover("parallel.reshard_after_forward", Status::Defaulted, "", "");
            if p.cpu_offload {
                em.cover(
                    "parallel.cpu_offload",
                    Status::NotExpressible,
                    "",
                    "CPU offload needs DeepSpeed or FSDP",
                );
            }
        }
    }
}
