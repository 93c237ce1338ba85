//! torch AdamW and gradient clipping with PyTorch's numerics, op for op.
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

use crate::engine::error::{EngineError, Result};
use tch::Tensor;

/// The `optimizer.name` spellings this AdamW runs: torch AdamW, fused or not (the same math).
pub const ADAMW_NAMES: [&str; 4] = ["adamw", "adamw_torch", "adamw_torch_fused", "adamw_fused"];

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
    /// On CUDA, every parameter, gradient and moment lives in one flat buffer (see [`Flat`]).
    flat: Option<Flat>,
}

/// One contiguous buffer per quantity, each parameter a view into it (`set_data`), so an
/// update is a dozen kernels instead of a dozen per parameter (torch's `foreach`/`fused`
/// AdamW, which tch does not expose, exists for the same reason). Elementwise CUDA kernels
/// compute the same value for an element whatever tensor it sits in, so the numbers are the
/// per-parameter path's. The gradients join the flat buffer after the first backward: each
/// `.grad` gets a view of it as its data, and autograd then accumulates in place.
/// Used when all parameters share one CUDA device, dtype and weight decay.
struct Flat {
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    grad: Tensor,
    grads_bound: bool,
    /// (offset, numel, shape) of each parameter.
    spans: Vec<(i64, i64, Vec<i64>)>,
}

impl Flat {
    fn new(params: &mut [ParamState]) -> Option<Flat> {
        let first = params.first()?;
        let (device, kind, wd) = (first.param.device(), first.param.kind(), first.weight_decay);
        let uniform = params
            .iter()
            .all(|s| s.param.device() == device && s.param.kind() == kind && s.weight_decay == wd);
        if !uniform || !device.is_cuda() {
            return None;
        }
        let _guard = tch::no_grad_guard();
        let views: Vec<Tensor> = params.iter().map(|s| s.param.reshape([-1])).collect();
        let param = Tensor::cat(&views, 0); // (Σ numel)
        let mut spans = Vec::with_capacity(params.len());
        let mut offset = 0;
        for s in params.iter() {
            let n = s.param.numel() as i64;
            spans.push((offset, n, s.param.size()));
            offset += n;
        }
        let flat = Flat {
            exp_avg: param.zeros_like(),
            exp_avg_sq: param.zeros_like(),
            grad: param.zeros_like(),
            param,
            grads_bound: false,
            spans,
        };
        for (s, (off, n, shape)) in params.iter_mut().zip(&flat.spans) {
            s.param
                .set_data(&flat.param.narrow(0, *off, *n).view(shape.as_slice()));
            s.exp_avg = flat.exp_avg.narrow(0, *off, *n).view(shape.as_slice());
            s.exp_avg_sq = flat.exp_avg_sq.narrow(0, *off, *n).view(shape.as_slice());
        }
        Some(flat)
    }

    /// Make every `.grad` a view of the flat gradient (after the first backward made them).
    fn bind_grads(&mut self, params: &[ParamState]) -> bool {
        if self.grads_bound {
            return true;
        }
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = params.iter().map(|s| s.param.grad()).collect();
        if grads.iter().any(|g| !g.defined()) {
            return false;
        }
        for (g, (off, n, shape)) in grads.iter().zip(&self.spans) {
            let mut view = self.grad.narrow(0, *off, *n).view(shape.as_slice());
            view.copy_(g);
            let mut g = g.shallow_clone();
            g.set_data(&view);
        }
        self.grads_bound = true;
        true
    }
}

impl AdamW {
    pub fn new(cfg: AdamWConfig, params: Vec<(String, Tensor, f64)>) -> Self {
        let mut params: Vec<ParamState> = params
            .into_iter()
            .map(|(name, p, wd)| ParamState {
                exp_avg: p.zeros_like().detach(),
                exp_avg_sq: p.zeros_like().detach(),
                name,
                param: p,
                weight_decay: wd,
            })
            .collect();
        let flat = Flat::new(&mut params);
        AdamW {
            cfg,
            params,
            step: 0,
            flat,
        }
    }

    /// `clip_grad_norm_` over this optimizer's parameters (see [`clip_grad_norm`]); with flat
    /// buffers the per-tensor norms are the same, the scaling one kernel.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        let bound = match &mut self.flat {
            Some(f) => f.bind_grads(&self.params),
            None => false,
        };
        if !bound {
            let params: Vec<Tensor> = self
                .params
                .iter()
                .map(|s| s.param.shallow_clone())
                .collect();
            return clip_grad_norm(&params, max_norm);
        }
        let _guard = tch::no_grad_guard();
        let flat = self.flat.as_mut().expect("bound above");
        let norms: Vec<Tensor> = self
            .params
            .iter()
            .map(|s| s.param.grad().f_norm())
            .collect::<std::result::Result<_, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
        if max_norm > 0.0 {
            let coef = (total.f_add_scalar(1e-6)?.f_reciprocal()? * max_norm).f_clamp_max(1.0)?;
            let _ = flat.grad.f_mul_(&coef)?;
        }
        Ok(total.f_double_value(&[])?)
    }

    /// One update at learning rate `lr` (the value the schedule gives this step).
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let t = self.step as f64;
        let AdamWConfig { beta1, beta2, .. } = self.cfg;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        let step_size = lr / bias_correction1;
        let bias_correction2_sqrt = bias_correction2.powf(0.5);
        if let Some(f) = &mut self.flat {
            if f.bind_grads(&self.params) {
                let wd = self.params[0].weight_decay;
                let grad = f.grad.shallow_clone();
                let (p, m, v) = (&mut f.param, &mut f.exp_avg, &mut f.exp_avg_sq);
                return adamw_update(
                    p,
                    m,
                    v,
                    &grad,
                    lr,
                    wd,
                    &self.cfg,
                    step_size,
                    bias_correction2_sqrt,
                );
            }
        }
        for s in &mut self.params {
            let grad = s.param.grad();
            if !grad.defined() {
                continue;
            }
            let mut p = s.param.shallow_clone();
            let wd = s.weight_decay;
            let (m, v) = (&mut s.exp_avg, &mut s.exp_avg_sq);
            adamw_update(
                &mut p,
                m,
                v,
                &grad,
                lr,
                wd,
                &self.cfg,
                step_size,
                bias_correction2_sqrt,
            )?;
        }
        Ok(())
    }

    pub fn zero_grad(&mut self) {
        if let Some(f) = &mut self.flat {
            if f.grads_bound {
                let _ = f.grad.zero_();
                return;
            }
        }
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
                    EngineError::tensor(&key, "missing from the optimizer checkpoint")
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

/// One AdamW update of p with gradient g and moments m, v (the module docs' formulas).
#[allow(clippy::too_many_arguments)]
fn adamw_update(
    p: &mut Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    grad: &Tensor,
    lr: f64,
    weight_decay: f64,
    cfg: &AdamWConfig,
    step_size: f64,
    bias_correction2_sqrt: f64,
) -> Result<()> {
    let AdamWConfig { beta1, beta2, eps } = *cfg;
    if weight_decay != 0.0 {
        let _ = p.f_mul_scalar_(1.0 - lr * weight_decay)?;
    }
    let _ = m.f_lerp_(grad, 1.0 - beta1)?;
    // addcmul(v·β₂, g, g, value = 1 − β₂) = v·β₂ + ((1 − β₂)·g)·g
    let _ = v.f_mul_scalar_(beta2)?;
    let gg = grad.f_mul_scalar(1.0 - beta2)?.f_mul(grad)?;
    let _ = v.f_add_(&gg)?;
    let denom = (v.f_sqrt()? / bias_correction2_sqrt).f_add_scalar(eps)?;
    // addcdiv(p, m, denom, value = −step_size) = p + ((−step_size)·m) / denom
    let update = m.f_mul_scalar(-step_size)?.f_div(&denom)?;
    let _ = p.f_add_(&update)?;
    Ok(())
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
