//! Periodic evaluation: `eval_steps`, `eval_strategy` and the `eval_on_start` Axolotl turns on
//! by itself (core/builders/base.py `_configure_save_and_eval_strategy`: no validation split →
//! `eval_strategy="no"`; else `eval_steps` → `eval_strategy="steps"` + `eval_on_start=True`;
//! else a given `eval_strategy` + `eval_on_start=True`). `evals_per_epoch` (a fraction of the
//! step estimate) and fractional `eval_steps` stay in `passthrough`.

use super::common::keep;
use crate::diag::Diagnostic;
use crate::ir::{Origin, RunSpec};
use crate::translate::emitter::Emitter;
use crate::translate::reader::Reader;
use crate::translate::report::Status;
use serde_json::{json, Value};

/// `eval_steps` → `training.eval_every_n_steps`; `eval_strategy` (`steps`, `no`, `epoch`);
/// `training.eval_on_start` derived from either being given.
pub(super) fn read_eval(r: &mut Reader) {
    let steps = r.get("eval_steps").filter(|e| !e.node.is_null());
    let strategy = r.get("eval_strategy").filter(|e| !e.node.is_null());
    r.consume("eval_steps");
    r.consume("eval_strategy");
    let has_val = r
        .ir_value("data.val_size")
        .and_then(Value::as_f64)
        .is_some_and(|v| v > 0.0);
    if !has_val {
        for (key, e) in [("eval_steps", steps), ("eval_strategy", strategy)] {
            if let Some(e) = e {
                let reason = "without val_set_size Axolotl does not evaluate";
                keep(r, key, e.node.to_value(), Some(e.key_span), reason);
            }
        }
        return;
    }
    let mut periodic = false;
    if let Some(e) = strategy {
        let span = Some(e.key_span);
        match e.node.to_value() {
            Value::String(s) if s == "steps" => periodic = true,
            Value::String(s) if s == "no" => return,
            other => {
                keep(
                    r,
                    "eval_strategy",
                    other,
                    span,
                    "only step-wise evaluation is in the IR",
                );
                return;
            }
        }
    }
    if let Some(e) = steps {
        let span = Some(e.key_span);
        match e.node.to_value() {
            Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => {
                r.set_from("training.eval_every_n_steps", json!(n), "eval_steps", span);
                periodic = true;
            }
            Value::Number(n) if n.as_f64().is_some_and(|f| f > 0.0 && f < 1.0) => {
                keep(
                    r,
                    "eval_steps",
                    Value::Number(n),
                    span,
                    "a fraction of the total steps is not in the IR",
                );
                return;
            }
            other => {
                r.warn(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`eval_steps` must be a positive integer, found `{other}`"),
                    )
                    .at(Some(e.node.span())),
                );
                return;
            }
        }
    } else if periodic {
        // HF TrainingArguments: eval_steps unset → logging_steps
        let every = r
            .ir_value("logging.every_n_steps")
            .cloned()
            .unwrap_or(json!(1));
        r.set(
            "training.eval_every_n_steps",
            every,
            Origin::Derived {
                from: vec!["logging.every_n_steps".into()],
                rule: "HF: eval_strategy steps without eval_steps evaluates every logging_steps"
                    .into(),
            },
        );
    }
    if periodic {
        r.set(
            "training.eval_on_start",
            json!(true),
            Origin::Derived {
                from: vec!["training.eval_every_n_steps".into()],
                rule:
                    "Axolotl sets eval_on_start=True whenever eval_steps or eval_strategy is given"
                        .into(),
            },
        );
    }
}

/// `eval_steps` (+ `eval_strategy: steps`); Axolotl always evaluates on start then.
pub(super) fn write_eval(em: &mut Emitter, spec: &RunSpec) {
    let t = &spec.training;
    if t.eval_every_n_steps > 0 {
        em.put(
            "eval_strategy",
            json!("steps"),
            &["training.eval_every_n_steps"],
            Status::Carried,
            "",
        );
        em.put(
            "eval_steps",
            json!(t.eval_every_n_steps),
            &["training.eval_every_n_steps"],
            Status::Carried,
            "",
        );
        if !t.eval_on_start {
            em.cover(
                "training.eval_on_start",
                Status::Approximated,
                "",
                "Axolotl also evaluates before the first step whenever eval_steps is set",
            );
        }
    } else if t.eval_on_start {
        em.cover(
            "training.eval_on_start",
            Status::NotExpressible,
            "",
            "Axolotl evaluates on start only together with eval_steps",
        );
    }
    if t.eval_on_start && t.eval_every_n_steps > 0 {
        em.cover("training.eval_on_start", Status::Carried, "eval_steps", "");
    }
}
