//! AdamW and gradient clipping with PyTorch's numerics, op for op.
//!
//! `torch.optim.AdamW` on CPU runs the single-tensor path (`foreach` needs CUDA); per parameter
//! p with gradient g, at step t (torch 2.11 `optim/adam.py::_single_tensor_adam`,
//! `decoupled_weight_decay=True`):
//!
//!   p   ← p · (1 − lr·λ)                       decoupled weight decay
//!   m   ← lerp(m, g, 1 − β₁)                   = β₁·m + (1 − β₁)·g
//!   v   ← β₂·v + (1 − β₂)·g·g                  (`addcmul`: self + value·t1·t2)
//!   bc₁ = 1 − β₁ᵗ,  bc₂ = 1 − β₂ᵗ               (Python floats)
//!   p   ← p + (−lr/bc₁) · m / (√v / √bc₂ + ε)   (`addcdiv`: self + value·t1/t2)
//!
//! tch's `nn::AdamW` wraps the C++ optimizer (mul+add instead of lerp, no state access), so
//! the update is written out here; its state is plain tensors, saved with checkpoints.
//! Clipping follows `torch.nn.utils.clip_grad_norm_` (per-tensor path): total = ‖(‖g₁‖, …)‖₂,
//! coef = clamp(max_norm / (total + 1e-6), max = 1), every g ← g · coef; the returned norm
//! is the one before clipping (what both frameworks log).

use super::error::Result;
use tch::Tensor;

#[derive(Debug, Clone, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// One parameter and its AdamW state.
pub struct ParamState {
    pub name: String,
    pub param: Tensor,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    /// Weight decay for this parameter (HF exempts biases and norms; TorchTune none).
    pub weight_decay: f64,
}

pub struct AdamW {
    pub cfg: AdamWConfig,
    pub params: Vec<ParamState>,
    /// Optimizer steps taken (torch keeps one float32 `step` per parameter; all equal here).
    pub step: u64,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig, params: Vec<(String, Tensor, f64)>) -> Self {
        let params = params
            .into_iter()
            .map(|(name, p, wd)| ParamState {
                exp_avg: p.zeros_like().detach(),
                exp_avg_sq: p.zeros_like().detach(),
                name,
                param: p,
                weight_decay: wd,
            })
            .collect();
        AdamW {
            cfg,
            params,
            step: 0,
        }
    }

    /// One update at learning rate `lr` (the value the schedule gives this step).
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let t = self.step as f64;
        let AdamWConfig { beta1, beta2, eps } = self.cfg;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        let step_size = lr / bias_correction1;
        let bias_correction2_sqrt = bias_correction2.powf(0.5);
        for s in &mut self.params {
            let grad = s.param.grad();
            if !grad.defined() {
                continue;
            }
            let mut p = s.param.shallow_clone();
            if s.weight_decay != 0.0 {
                let _ = p.f_mul_scalar_(1.0 - lr * s.weight_decay)?;
            }
            let _ = s.exp_avg.f_lerp_(&grad, 1.0 - beta1)?;
            // addcmul(v·β₂, g, g, value = 1 − β₂) = v·β₂ + ((1 − β₂)·g)·g
            let _ = s.exp_avg_sq.f_mul_scalar_(beta2)?;
            let gg = grad.f_mul_scalar(1.0 - beta2)?.f_mul(&grad)?;
            let _ = s.exp_avg_sq.f_add_(&gg)?;
            let denom = (s.exp_avg_sq.f_sqrt()? / bias_correction2_sqrt).f_add_scalar(eps)?;
            // addcdiv(p, m, denom, value = −step_size) = p + ((−step_size)·m) / denom
            let update = s.exp_avg.f_mul_scalar(-step_size)?.f_div(&denom)?;
            let _ = p.f_add_(&update)?;
        }
        Ok(())
    }

    pub fn zero_grad(&mut self) {
        for s in &mut self.params {
            // set_to_none: the next backward allocates fresh gradients
            let g = s.param.grad();
            if g.defined() {
                let _ = s.param.grad().detach_().zero_();
            }
        }
    }

    /// Optimizer state as named tensors (for checkpoints).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for s in &self.params {
            out.push((format!("{}.exp_avg", s.name), s.exp_avg.shallow_clone()));
            out.push((
                format!("{}.exp_avg_sq", s.name),
                s.exp_avg_sq.shallow_clone(),
            ));
        }
        out.push(("step".into(), Tensor::from_slice(&[self.step as i64])));
        out
    }

    /// Restore state saved by [`AdamW::state_tensors`].
    pub fn load_state(&mut self, tensors: &indexmap::IndexMap<String, Tensor>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for s in &mut self.params {
            for (suffix, dst) in [
                ("exp_avg", &mut s.exp_avg),
                ("exp_avg_sq", &mut s.exp_avg_sq),
            ] {
                let key = format!("{}.{suffix}", s.name);
                let src = tensors.get(&key).ok_or_else(|| {
                    super::error::EngineError::tensor(&key, "missing from the optimizer checkpoint")
                })?;
                dst.f_copy_(&src.f_to_device(dst.device())?.f_to_kind(dst.kind())?)?;
            }
        }
        if let Some(step) = tensors.get("step") {
            self.step = step.f_int64_value(&[0])? as u64;
        }
        Ok(())
    }
}

/// Multiply every gradient by `scale` (TorchTune `scale_grads`: `p.grad *= 1 / num_tokens`,
/// with 1/num_tokens a float32 tensor).
pub fn scale_grads(params: &[Tensor], scale_f32: f32) {
    let _guard = tch::no_grad_guard();
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.f_mul_scalar_(f64::from(scale_f32));
        }
    }
}

/// `clip_grad_norm_(params, max_norm)`; returns the total norm before clipping (float32).
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let grads: Vec<Tensor> = params
        .iter()
        .map(|p| p.grad())
        .filter(|g| g.defined())
        .collect();
    if grads.is_empty() {
        return Ok(0.0);
    }
    let norms: Vec<Tensor> = grads
        .iter()
        .map(|g| g.f_norm())
        .collect::<std::result::Result<_, _>>()?;
    // at::norm(p=2) is linalg.vector_norm for a dense float tensor
    let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
    if max_norm > 0.0 {
        // `max_norm / (total + 1e-6)` is Tensor.__rtruediv__ = reciprocal(total + 1e-6) · max_norm
        let coef = (total.f_add_scalar(1e-6)?.f_reciprocal()? * max_norm).f_clamp_max(1.0)?;
        for g in &grads {
            let mut g = g.shallow_clone();
            let _ = g.f_mul_(&coef)?;
        }
    }
    Ok(total.f_double_value(&[])?)
}
