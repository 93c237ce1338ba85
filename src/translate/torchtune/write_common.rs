//! Helpers the TorchTune writers share: where the base weights live, the model folder's
//! `config.json`, numbers and dtypes as TorchTune spells them, and `# parity:` comments.

use crate::ir::{Dtype, Origin, RunSpec};
use crate::translate::emitter::{values_equal, Emitter};
use crate::translate::report::{compact, Status};
use serde_json::{json, Value};
use std::path::Path;

/// Where the base weights live for TorchTune, which reads local folders only.
pub(super) struct Place {
    pub(super) dir: String,
    /// `tune download …` when the source named a Hub id.
    pub(super) download: Option<String>,
}

pub(super) fn place(model: &str) -> Place {
    let local = model.starts_with('/')
        || model.starts_with('.')
        || model.starts_with('~')
        || Path::new(model).exists()
        || model.matches('/').count() != 1;
    if local {
        return Place {
            dir: model.trim_end_matches('/').to_string(),
            download: None,
        };
    }
    let name = model.rsplit('/').next().unwrap_or(model);
    let dir = format!("/tmp/{name}");
    Place {
        download: Some(format!("tune download {model} --output-dir {dir}")),
        dir,
    }
}

pub(super) fn carried(em: &mut Emitter, key: &str, value: Value, irs: &[&str], comment: &str) {
    em.put(key, value, irs, Status::Carried, comment);
}

/// `# parity:` comment against a component's own default (the table defaults cover the rest).
pub(super) fn parity_against(
    em: &Emitter,
    ir: &str,
    v: &Value,
    target_default: Option<&Value>,
    what: &str,
) -> String {
    let why = match em.resolved.provenance.get(ir) {
        Some(Origin::Explicit { .. }) | None => return String::new(),
        Some(Origin::Default { framework, .. }) => format!("{framework} default"),
        Some(Origin::Derived { .. }) => "derived".to_string(),
    };
    match target_default {
        Some(d) if !values_equal(d, v) => format!("parity: {why}; {what} would use {}", compact(d)),
        _ => String::new(),
    }
}

/// Whole numbers as integers (`lora_alpha: 16`), others as floats.
pub(super) fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

pub(super) fn read_config_json(dir: &str) -> Option<Value> {
    let text = std::fs::read_to_string(Path::new(dir).join("config.json")).ok()?;
    serde_json::from_str(&text).ok()
}

pub(super) fn json_path<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |node, seg| node.get(seg))
}

pub(super) fn written_dtype(spec: &RunSpec) -> Dtype {
    match spec.precision.compute_dtype {
        Dtype::Fp32 => Dtype::Fp32,
        Dtype::Bf16 | Dtype::Fp16 => Dtype::Bf16,
    }
}
