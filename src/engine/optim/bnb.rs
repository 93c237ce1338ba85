//! bitsandbytes AdamW (`bnb.optim.AdamW`, 0.50.2), its 8-bit blockwise and 32-bit paths, with
//! the numbers of its CPU kernels (`backends/cpu/ops.py`: `_optimizer_update_8bit_blockwise_cpu`,
//! `_optimizer_update_32bit_cpu`; `optim/optimizer.py::Optimizer2State`).
//!
//! HF Trainer builds it for `optim="adamw_8bit"` / `adamw_bnb_8bit` (`optim_bits=8`),
//! `paged_adamw_8bit` (the same, `is_paged=True`) and `paged_adamw_32bit` (`optim_bits=32`);
//! paging only places the states in unified memory, so the update is the same here. TorchTune
//! names the classes (`bitsandbytes.optim.AdamW8bit`, `PagedAdamW8bit`, `PagedAdamW`).
//!
//! Which path a parameter takes: 8-bit when `optim_bits == 8` and numel ≥ `min_8bit_size`
//! (4096), else 32-bit; HF Trainer also overrides every `nn.Embedding` weight to 32-bit
//! (`Trainer.create_optimizer`: `register_module_override(module, "weight", {"optim_bits": 32})`).
//! One step t (1-based, per parameter) with gradient g, learning rate lr, weight decay λ; all
//! tensor math in f32, scalars computed in f64 and cast to f32 where they meet a tensor:
//!
//! 8-bit path (states stored as bytes + one absmax per block of 256, see [`super::blockwise`]):
//!
//!   m = code₁\[q₁\]·absmax₁,  v = code₂\[q₂\]·absmax₂    dequantise
//!   m ← m·β₁;  m ← fma(g, 1 − β₁, m)                      `mul_(β₁).add_(g, alpha=1−β₁)`
//!   v ← v·β₂;  v ← fma((1 − β₂)·g, g, v)                   `mul_(β₂).addcmul_(g, g, value=1−β₂)`
//!   c₁ = 1 − β₁ᵗ,  c₂ = √(1 − β₂ᵗ)
//!   d = √v / c₂ + ε
//!   p ← p·(1 − lr·λ)                                       (only when λ > 0)
//!   p ← p + ((−lr/c₁)·m) / d                               `addcdiv_(m, d, value=−lr/c₁)`
//!   q₁, absmax₁ = quantise(m, signed map);  q₂, absmax₂ = quantise(v, unsigned map)
//!
//! 32-bit path (states f32):
//!
//!   m, v as above (same ops)
//!   s = −lr·c₂/c₁
//!   p ← p·(1 − lr·λ)                                       (only when λ > 0)
//!   u = m / (√v + ε·c₂)
//!   p ← fma(u, s, p)                                       `p.add_(u, alpha=s)`
//!
//! The 32-bit path is not torch AdamW bit for bit: ε is scaled by c₂ inside the denominator
//! instead of dividing √v by c₂, the first moment uses mul+add instead of `lerp`, and the
//! final add is fused. `add_(…, alpha)` and `addcmul_` are one FMA in ATen's CPU kernels
//! (`vec::fmadd`), `addcdiv_` is not; the code below uses `f32::mul_add` exactly there. √ is
//! ATen's own `sqrt` (see `torch_sqrt`).
//! Gradient-norm scaling (`gnorm_scale`) is 1 and `max_unorm` 0 in `AdamW`, so neither
//! appears; `percentile_clipping` no longer exists in 0.50. The math runs on the host in
//! Rust; parameters and gradients on a GPU are copied over and back (bitsandbytes' own CUDA
//! kernel fuses the update and is not what this reproduces).

use super::blockwise::{blocks, Codebook};
use crate::engine::error::{EngineError, Result};
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct BnbAdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `optim_bits`: 8 (blockwise states where large enough) or 32.
    pub optim_bits: u8,
    /// `min_8bit_size`: smaller tensors keep 32-bit states (bitsandbytes default 4096).
    pub min_8bit_size: usize,
}

/// A parameter's optimizer states.
pub enum States {
    /// `state1`, `state2` as f32 (the 32-bit path).
    Fp32 { state1: Vec<f32>, state2: Vec<f32> },
    /// Bytes into the signed (state1) and unsigned (state2) codes, one absmax per block.
    Blockwise {
        state1: Vec<u8>,
        state2: Vec<u8>,
        absmax1: Vec<f32>,
        absmax2: Vec<f32>,
    },
}

/// One parameter and its bitsandbytes state.
pub struct BnbParam {
    pub name: String,
    pub param: Tensor,
    pub weight_decay: f64,
    pub states: States,
}

pub struct BnbAdamW {
    pub cfg: BnbAdamWConfig,
    pub params: Vec<BnbParam>,
    /// Optimizer steps taken (bitsandbytes keeps `state["step"]` per parameter; all equal
    /// here, every trainable tensor gets a gradient every step).
    pub step: u64,
    signed: Codebook,
    unsigned: Codebook,
}

impl BnbAdamW {
    /// `params`: (name, tensor, weight decay, forced 32-bit). The last flag is HF Trainer's
    /// embedding override.
    pub fn new(cfg: BnbAdamWConfig, params: Vec<(String, Tensor, f64, bool)>) -> Self {
        let params = params
            .into_iter()
            .map(|(name, param, weight_decay, force32)| {
                let n = param.numel();
                let states = if cfg.optim_bits == 8 && n >= cfg.min_8bit_size && !force32 {
                    States::Blockwise {
                        state1: vec![0; n],
                        state2: vec![0; n],
                        absmax1: vec![0.0; blocks(n)],
                        absmax2: vec![0.0; blocks(n)],
                    }
                } else {
                    States::Fp32 {
                        state1: vec![0.0; n],
                        state2: vec![0.0; n],
                    }
                };
                BnbParam {
                    name,
                    param,
                    weight_decay,
                    states,
                }
            })
            .collect();
        BnbAdamW {
            cfg,
            params,
            step: 0,
            signed: Codebook::signed(),
            unsigned: Codebook::unsigned(),
        }
    }

    /// One update at learning rate `lr` for every parameter with a gradient.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let t = self.step as f64;
        let (beta1, beta2, eps) = (self.cfg.beta1, self.cfg.beta2, self.cfg.eps);
        let c1 = 1.0 - beta1.powf(t);
        let c2 = (1.0 - beta2.powf(t)).sqrt();
        let k = Coefs {
            beta1: beta1 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            c2: c2 as f32,
            eps: eps as f32,
            eps_c2: (eps * c2) as f32,
            neg_lr_over_c1: (-lr / c1) as f32,
            step_size: (-lr * c2 / c1) as f32,
            decay: 0.0,
        };
        for s in &mut self.params {
            let grad = s.param.grad();
            if !grad.defined() {
                continue;
            }
            let g = host_f32(&grad)?;
            let mut p = host_f32(&s.param)?;
            let k = Coefs {
                decay: if s.weight_decay > 0.0 {
                    (1.0 - lr * s.weight_decay) as f32
                } else {
                    1.0
                },
                ..k
            };
            let decays = s.weight_decay > 0.0;
            match &mut s.states {
                States::Fp32 { state1, state2 } => {
                    update_32bit(&mut p, &g, state1, state2, &k, decays)?;
                }
                States::Blockwise {
                    state1,
                    state2,
                    absmax1,
                    absmax2,
                } => {
                    let n = p.len();
                    let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
                    self.signed.dequantize(state1, absmax1, &mut m);
                    self.unsigned.dequantize(state2, absmax2, &mut v);
                    update_8bit(&mut p, &g, &mut m, &mut v, &k, decays)?;
                    self.signed.quantize(&m, state1, absmax1);
                    self.unsigned.quantize(&v, state2, absmax2);
                }
            }
            // `p.data.copy_(p_fp32)`: back into the parameter's dtype and device
            let host = Tensor::from_slice(&p).view(s.param.size().as_slice());
            s.param.f_copy_(&host)?;
        }
        Ok(())
    }

    /// Optimizer state as named tensors (bitsandbytes' state keys), for checkpoints.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for s in &self.params {
            let name = &s.name;
            match &s.states {
                States::Fp32 { state1, state2 } => {
                    out.push((format!("{name}.state1"), Tensor::from_slice(state1)));
                    out.push((format!("{name}.state2"), Tensor::from_slice(state2)));
                }
                States::Blockwise {
                    state1,
                    state2,
                    absmax1,
                    absmax2,
                } => {
                    out.push((format!("{name}.state1"), Tensor::from_slice(state1)));
                    out.push((format!("{name}.state2"), Tensor::from_slice(state2)));
                    out.push((format!("{name}.absmax1"), Tensor::from_slice(absmax1)));
                    out.push((format!("{name}.absmax2"), Tensor::from_slice(absmax2)));
                }
            }
        }
        out.push(("step".into(), Tensor::from_slice(&[self.step as i64])));
        out
    }

    /// Restore state saved by [`BnbAdamW::state_tensors`]; each tensor must have the
    /// dtype and length the parameter's path gives it.
    pub fn load_state(&mut self, tensors: &indexmap::IndexMap<String, Tensor>) -> Result<()> {
        for s in &mut self.params {
            let name = s.name.clone();
            let get = |suffix: &str| -> Result<&Tensor> {
                let key = format!("{name}.{suffix}");
                tensors.get(&key).ok_or_else(|| {
                    EngineError::tensor(&key, "missing from the optimizer checkpoint")
                })
            };
            match &mut s.states {
                States::Fp32 { state1, state2 } => {
                    fill(state1, get("state1")?, Kind::Float, &name)?;
                    fill(state2, get("state2")?, Kind::Float, &name)?;
                }
                States::Blockwise {
                    state1,
                    state2,
                    absmax1,
                    absmax2,
                } => {
                    fill(state1, get("state1")?, Kind::Uint8, &name)?;
                    fill(state2, get("state2")?, Kind::Uint8, &name)?;
                    fill(absmax1, get("absmax1")?, Kind::Float, &name)?;
                    fill(absmax2, get("absmax2")?, Kind::Float, &name)?;
                }
            }
        }
        if let Some(step) = tensors.get("step") {
            self.step = step.f_int64_value(&[0])? as u64;
        }
        Ok(())
    }
}

/// Per-step scalars, cast to f32 as ATen casts a Python float meeting a float32 tensor.
#[derive(Clone, Copy)]
struct Coefs {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// c₂ = √(1 − β₂ᵗ)
    c2: f32,
    eps: f32,
    /// ε·c₂ (32-bit path)
    eps_c2: f32,
    /// −lr/c₁ (8-bit path)
    neg_lr_over_c1: f32,
    /// −lr·c₂/c₁ (32-bit path)
    step_size: f32,
    /// 1 − lr·λ
    decay: f32,
}

/// The moments' update, shared by both paths (module docs).
#[inline]
fn moments(m: &mut f32, v: &mut f32, g: f32, k: &Coefs) {
    // state1.mul_(β₁).add_(g, alpha=1−β₁): vec::fmadd(g, alpha, m·β₁)
    *m = g.mul_add(k.one_minus_beta1, *m * k.beta1);
    // state2.mul_(β₂).addcmul_(g, g, value=1−β₂): fmadd(value·g, g, v·β₂)
    *v = (k.one_minus_beta2 * g).mul_add(g, *v * k.beta2);
}

/// `_optimizer_update_8bit_blockwise_cpu` for "adam", on dequantised states.
fn update_8bit(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: &Coefs,
    decays: bool,
) -> Result<()> {
    for i in 0..p.len() {
        moments(&mut m[i], &mut v[i], g[i], k);
    }
    let sqrt_v = torch_sqrt(v)?;
    for i in 0..p.len() {
        // denom = (state2.sqrt() / c₂).add_(ε)
        let denom = sqrt_v[i] / k.c2 + k.eps;
        if decays {
            p[i] *= k.decay;
        }
        // p.addcdiv_(m, denom, value=−lr/c₁) = p + ((−lr/c₁)·m) / denom
        p[i] += (k.neg_lr_over_c1 * m[i]) / denom;
    }
    Ok(())
}

/// `_optimizer_update_32bit_cpu` for "adam" (no trust ratio: `max_unorm` = 0).
fn update_32bit(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: &Coefs,
    decays: bool,
) -> Result<()> {
    for i in 0..p.len() {
        moments(&mut m[i], &mut v[i], g[i], k);
    }
    let sqrt_v = torch_sqrt(v)?;
    for i in 0..p.len() {
        if decays {
            p[i] *= k.decay;
        }
        // update = state1 / (state2.sqrt() + ε·c₂);  p.add_(update, alpha=step_size)
        let update = m[i] / (sqrt_v[i] + k.eps_c2);
        p[i] = update.mul_add(k.step_size, p[i]);
    }
    Ok(())
}

/// `torch.sqrt` of a float32 CPU tensor. ATen's CPU kernel is not the correctly rounded
/// square root (it differs from `f32::sqrt` by one ulp in about 15 % of elements, as measured
/// on the golden's states), so it is called rather than imitated; the result depends only on
/// each element, not on the tensor's length or the element's position.
fn torch_sqrt(v: &[f32]) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(Tensor::from_slice(v).f_sqrt()?)?)
}

/// A tensor's values as host f32 (`.float()` on the CPU), flattened.
pub(super) fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    let t = t
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::<f32>::try_from(&t)?)
}

/// Copy a checkpoint tensor into a state vector, checking dtype and length.
pub(super) fn fill<T: tch::kind::Element + Copy>(
    dst: &mut [T],
    src: &Tensor,
    kind: Kind,
    name: &str,
) -> Result<()> {
    if src.kind() != kind || src.numel() != dst.len() {
        return Err(EngineError::tensor(
            name,
            format!(
                "optimizer state is {:?} × {}, this run needs {kind:?} × {} (a checkpoint of a different optimizer?)",
                src.kind(),
                src.numel(),
                dst.len()
            ),
        ));
    }
    let flat = src.f_contiguous()?.f_view([-1])?;
    flat.f_copy_data(dst, dst.len())?;
    Ok(())
}
