//! Helpers the Axolotl reader and writer share.

use super::keys::FW;
use crate::diag::{Diagnostic, Span};
use crate::ir::{BaseWeights, Method, Strategy};
use crate::translate::families;
use crate::translate::reader::Reader;
use serde_json::{Map, Value};

/// Keep a source value verbatim in `passthrough` (written back only to Axolotl) and say so.
pub(super) fn keep(r: &mut Reader, key: &str, value: Value, span: Option<Span>, reason: &str) {
    if value.is_null() {
        return;
    }
    if !r.ir.get("passthrough").is_some_and(Value::is_object) {
        r.ir["passthrough"] = Value::Object(Map::new());
    }
    if let Some(m) = r.ir["passthrough"].as_object_mut() {
        m.insert(format!("{}.{key}", FW.name()), value);
    }
    r.warn(
        Diagnostic::info(
            "not-expressible",
            format!("`{key}` is kept but has no IR field: {reason}"),
        )
        .at(span),
    );
}

pub(super) fn str_value(r: &Reader, key: &str) -> Option<String> {
    r.value(key).and_then(|v| v.as_str().map(str::to_string))
}

pub(super) fn key_span(r: &Reader, key: &str) -> Option<Span> {
    r.get(key).map(|e| e.key_span)
}

pub(super) fn ir_str(r: &Reader, path: &str) -> String {
    r.ir_value(path)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The linear layers "all linear" means for a family (Llama-style names when unknown).
pub(super) fn family_linear(family: &str) -> Vec<String> {
    families::by_name(family)
        .or_else(|| families::by_name("llama"))
        .map(|f| f.linear.clone())
        .unwrap_or_default()
}

/// Whether Axolotl can run its fused LoRA kernels (and so auto-enables them).
pub(super) fn kernels_possible(
    method: Method,
    base_weights: BaseWeights,
    remote_code: bool,
    strategy: Strategy,
) -> bool {
    let adapter = match method {
        Method::Lora => base_weights != BaseWeights::Int8,
        Method::Qlora => true,
        Method::Full => false,
    };
    adapter && !remote_code && strategy != Strategy::Fsdp1
}
