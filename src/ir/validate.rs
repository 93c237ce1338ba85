//! Consistency rules over a whole spec, and the values derived from others.
//!
//! Validation gathers every problem instead of stopping at the first; each names the fields
//! involved and the fix.

use super::kinds::{BaseWeights, Dtype, Method, PrecisionMode, Strategy};
use super::{Origin, Resolved};
use crate::diag::Diagnostic;

/// Fill in derived fields (global batch, parallel strategy for several devices).
pub fn derive(r: &mut Resolved) {
    let b = &mut r.spec.batch;
    b.global_batch = b.micro_batch_per_device * b.grad_accum_steps * b.devices;
    r.provenance.set(
        "batch.global_batch",
        Origin::Derived {
            from: vec![
                "batch.micro_batch_per_device".into(),
                "batch.grad_accum_steps".into(),
                "batch.devices".into(),
            ],
            rule: format!(
                "micro batch {} × accumulation {} × devices {} = {}",
                b.micro_batch_per_device, b.grad_accum_steps, b.devices, b.global_batch
            ),
        },
    );
    if r.spec.batch.devices > 1 && r.spec.parallel.strategy == Strategy::Single {
        r.spec.parallel.strategy = Strategy::Ddp;
        r.provenance.set(
            "parallel.strategy",
            Origin::Derived {
                from: vec!["batch.devices".into()],
                rule: "several devices without sharding: data parallel".into(),
            },
        );
    }
}

/// Check every rule; errors are conflicts the run cannot have, warnings are suspicious.
pub fn validate(r: &Resolved) -> Vec<Diagnostic> {
    let s = &r.spec;
    let mut out = Vec::new();
    let mut conflict =
        |msg: String, help: &str| out.push(Diagnostic::error("conflict", msg).with_help(help));

    let four_bit = s.quantization.base_weights.is_four_bit();
    match s.adapter.method {
        Method::Qlora if !four_bit => conflict(
            format!("adapter.method is qlora but the base weights are `{}`, not 4-bit", s.quantization.base_weights),
            "set quantization.base_weights = \"nf4\" (Axolotl: load_in_4bit: true) or use method lora",
        ),
        Method::Lora if four_bit => conflict(
            "adapter.method is lora but the base weights are 4-bit: that is QLoRA".into(),
            "set adapter.method = \"qlora\" (Axolotl: adapter: qlora)",
        ),
        Method::Full if s.quantization.base_weights != BaseWeights::None => conflict(
            format!("a full fine-tune cannot train quantised base weights (`{}`)", s.quantization.base_weights),
            "drop the 4/8-bit loading or train an adapter",
        ),
        Method::Lora | Method::Qlora | Method::Full => {}
    }
    if s.adapter.method != Method::Full {
        if s.adapter.rank == 0 {
            conflict(
                "adapter.rank is 0".into(),
                "LoRA needs a rank ≥ 1 (8, 16, 32 are usual)",
            );
        }
        if s.adapter.target_modules.is_empty() {
            conflict(
                "no LoRA target modules".into(),
                "list target modules (q_proj, v_proj, …) or target all linear layers",
            );
        }
        if !(0.0..1.0).contains(&s.adapter.dropout) {
            conflict(
                format!("adapter.dropout {} is outside [0, 1)", s.adapter.dropout),
                "use a probability such as 0.05",
            );
        }
    }
    if s.schedule.warmup_ratio > 0.0
        && r.provenance.is_explicit("schedule.warmup_ratio")
        && r.provenance.is_explicit("schedule.warmup_steps")
    {
        conflict(
            "warmup given twice: as steps and as a ratio".into(),
            "keep one of warmup_steps and warmup_ratio",
        );
    }
    if s.optimizer.lr <= 0.0 || !s.optimizer.lr.is_finite() {
        conflict(
            format!("learning rate {} must be positive", s.optimizer.lr),
            "set a learning rate such as 2e-4",
        );
    }
    if s.data.sequence_len == 0 {
        conflict(
            "data.sequence_len is 0".into(),
            "set the maximum tokens per sample, e.g. 2048",
        );
    }
    if s.data.datasets.is_empty() {
        conflict("no training dataset".into(), "add at least one dataset");
    }
    let b = &s.batch;
    if b.micro_batch_per_device == 0 || b.grad_accum_steps == 0 || b.devices == 0 {
        conflict(
            "batch sizes must be at least 1".into(),
            "set micro batch, accumulation and devices ≥ 1",
        );
    } else if b.global_batch != b.micro_batch_per_device * b.grad_accum_steps * b.devices {
        conflict(
            format!(
                "batch.global_batch {} ≠ micro batch {} × accumulation {} × devices {}",
                b.global_batch, b.micro_batch_per_device, b.grad_accum_steps, b.devices
            ),
            "remove global_batch and let tunebridge derive it",
        );
    }
    if s.training.max_steps == 0 && s.training.epochs <= 0.0 {
        conflict(
            "neither epochs nor max_steps is positive".into(),
            "set epochs = 1 or a max_steps",
        );
    }
    if s.precision.compute_dtype == Dtype::Fp16 && s.precision.mode == PrecisionMode::Pure {
        out.push(
            Diagnostic::warning(
                "precision",
                "pure fp16 training without loss scaling diverges easily",
            )
            .with_help("use bf16, or fp16 with autocast"),
        );
    }
    out
}
