//! torchao's low-bit AdamW (`torchao.optim.AdamW8bit` / `AdamW4bit`, torchao 0.17
//! `optim/adam.py`), as HF Trainer builds it for `optim="adamw_torch_8bit"` /
//! `"adamw_torch_4bit"` (Axolotl's `optimizer:` of the same names; IR `adamw_8bit_torchao` /
//! `adamw_4bit_torchao`): `cls(params, lr, weight_decay, betas, eps, block_size=256,
//! bf16_stochastic_round=False)` (`trainer_optimizer.py::_get_torchao_optimizer`; the block
//! size is 256 for both widths unless `optim_args` says otherwise, not AdamW4bit's own 128).
//!
//! Which parameters get quantised states (`_AdamBase._new_buffer`): numel ≥ 4096 and numel a
//! multiple of the block size; every other parameter keeps plain f32 `exp_avg`/`exp_avg_sq`.
//! Quantised states are codes + one scale per block ([`super::ao_quant`]).
//!
//! The step (`single_param_adam`) runs under `torch.compile` (inductor, C++ on CPU, compiled
//! with `-ffp-contract=off`), and this reproduces the compiled kernel, whose order differs
//! from eager in one place: inductor decomposes `lerp` into a multiply and an add where eager
//! ATen uses one FMA. Per element, all in f32, with step t (an f32 tensor), lr the f32 `lr`
//! tensor, λ, β₁, β₂, ε cast to f32 (`static_cast<float>` in the kernel), and
//! (1 − β₁), (1 − β₂) computed in f64 then cast:
//!
//!   m₀ = dequant(exp_avg),  v₀ = dequant(exp_avg_sq)      (or the f32 states)
//!   m  = (1 − β₁)·(g − m₀) + m₀                           `lerp(m₀, g, 1 − β₁)`, decomposed
//!   v  = (1 − β₂)·(g·g − v₀) + v₀                         `lerp(v₀, g², 1 − β₂)`
//!   c₁ = 1 − β₁^t,  c₂ = 1 − β₂^t                          (`powf` in f32)
//!   d  = √v / √c₂ + ε
//!   p  ← (p − (lr·λ)·p) − (lr·(m / c₁)) / d
//!   exp_avg ← quant(m),  exp_avg_sq ← quant(v)            (or store m, v)
//!
//! The parameter update uses the unquantised m and v of this step; the next step starts from
//! their quantised values. `amsgrad` (off in HF) and bf16 stochastic rounding (off) are not
//! implemented. The math runs on the host, as [`super::bnb`] does.

use super::ao_quant::{Bits, QMap};
use super::bnb::{fill, host_f32};
use crate::engine::error::{EngineError, Result};
use tch::{Kind, Tensor};

/// torchao quantises a state only from this many elements up ("follow bitsandbytes").
pub const MIN_QUANT_SIZE: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub struct AoAdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub bits: Bits,
    /// Elements per scale (HF Trainer passes 256 for both widths).
    pub block_size: usize,
}

/// One moment of one parameter.
pub enum Moment {
    /// A plain f32 tensor (small or indivisible parameters).
    Plain(Vec<f32>),
    /// Codes (one byte each, or two 4-bit codes per byte) and one scale per block.
    Quantised { codes: Vec<u8>, scale: Vec<f32> },
}

/// One parameter and its torchao state.
pub struct AoParam {
    pub name: String,
    pub param: Tensor,
    pub weight_decay: f64,
    pub exp_avg: Moment,
    pub exp_avg_sq: Moment,
}

pub struct AoAdamW {
    pub cfg: AoAdamWConfig,
    pub params: Vec<AoParam>,
    /// Optimizer steps taken (torchao keeps an f32 `step` per parameter; all equal here,
    /// every trainable tensor gets a gradient every step).
    pub step: u64,
    signed: QMap,
    unsigned: QMap,
}

impl AoAdamW {
    /// `params`: (name, tensor, weight decay).
    pub fn new(cfg: AoAdamWConfig, params: Vec<(String, Tensor, f64)>) -> Self {
        let params = params
            .into_iter()
            .map(|(name, param, weight_decay)| {
                let n = param.numel();
                let new = || {
                    if quantises(n, cfg.block_size) {
                        Moment::Quantised {
                            codes: vec![0; cfg.bits.code_bytes(n)],
                            scale: vec![0.0; n / cfg.block_size],
                        }
                    } else {
                        Moment::Plain(vec![0.0; n])
                    }
                };
                AoParam {
                    name,
                    param,
                    weight_decay,
                    exp_avg: new(),
                    exp_avg_sq: new(),
                }
            })
            .collect();
        AoAdamW {
            signed: QMap::for_state(cfg.bits, true),
            unsigned: QMap::for_state(cfg.bits, false),
            cfg,
            params,
            step: 0,
        }
    }

    /// One update at learning rate `lr` for every parameter with a gradient.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let t = self.step as f32;
        let (beta1, beta2) = (self.cfg.beta1 as f32, self.cfg.beta2 as f32);
        let k = Coefs {
            lr: lr as f32,
            lr_wd: 0.0,
            one_minus_beta1: (1.0 - self.cfg.beta1) as f32,
            one_minus_beta2: (1.0 - self.cfg.beta2) as f32,
            c1: 1.0f32 - beta1.powf(t),
            sqrt_c2: (1.0f32 - beta2.powf(t)).sqrt(),
            eps: self.cfg.eps as f32,
        };
        let block = self.cfg.block_size;
        for s in &mut self.params {
            let grad = s.param.grad();
            if !grad.defined() {
                continue;
            }
            let g = host_f32(&grad)?;
            let mut p = host_f32(&s.param)?;
            let n = p.len();
            // `lr * weight_decay`: the f32 lr tensor times λ cast to f32
            let k = Coefs {
                lr_wd: k.lr * s.weight_decay as f32,
                ..k
            };
            let mut m = load(&s.exp_avg, &self.signed, block, n);
            let mut v = load(&s.exp_avg_sq, &self.unsigned, block, n);
            update(&mut p, &g, &mut m, &mut v, &k);
            store(&mut s.exp_avg, m, &self.signed, block);
            store(&mut s.exp_avg_sq, v, &self.unsigned, block);
            // `p.copy_(p_f32)`: back into the parameter's dtype and device
            let host = Tensor::from_slice(&p).view(s.param.size().as_slice());
            s.param.f_copy_(&host)?;
        }
        Ok(())
    }

    /// Optimizer state as named tensors (torchao's names: `exp_avg`, or its `codes` and
    /// `scale` when quantised), for checkpoints.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for s in &self.params {
            for (key, m) in [("exp_avg", &s.exp_avg), ("exp_avg_sq", &s.exp_avg_sq)] {
                match m {
                    Moment::Plain(x) => {
                        out.push((format!("{}.{key}", s.name), Tensor::from_slice(x)))
                    }
                    Moment::Quantised { codes, scale } => {
                        out.push((format!("{}.{key}.codes", s.name), Tensor::from_slice(codes)));
                        out.push((format!("{}.{key}.scale", s.name), Tensor::from_slice(scale)));
                    }
                }
            }
        }
        out.push(("step".into(), Tensor::from_slice(&[self.step as i64])));
        out
    }

    /// Restore state saved by [`AoAdamW::state_tensors`]; each tensor must have the dtype
    /// and length this run's optimizer gives it.
    pub fn load_state(&mut self, tensors: &indexmap::IndexMap<String, Tensor>) -> Result<()> {
        for s in &mut self.params {
            let name = s.name.clone();
            let get = |key: String| -> Result<&Tensor> {
                tensors.get(&key).ok_or_else(|| {
                    EngineError::tensor(&key, "missing from the optimizer checkpoint")
                })
            };
            for (key, m) in [
                ("exp_avg", &mut s.exp_avg),
                ("exp_avg_sq", &mut s.exp_avg_sq),
            ] {
                match m {
                    Moment::Plain(x) => fill(x, get(format!("{name}.{key}"))?, Kind::Float, &name)?,
                    Moment::Quantised { codes, scale } => {
                        fill(
                            codes,
                            get(format!("{name}.{key}.codes"))?,
                            Kind::Uint8,
                            &name,
                        )?;
                        fill(
                            scale,
                            get(format!("{name}.{key}.scale"))?,
                            Kind::Float,
                            &name,
                        )?;
                    }
                }
            }
        }
        if let Some(step) = tensors.get("step") {
            self.step = step.f_int64_value(&[0])? as u64;
        }
        Ok(())
    }
}

/// Whether a parameter of `n` elements gets quantised states (`_new_buffer`).
pub fn quantises(n: usize, block_size: usize) -> bool {
    n >= MIN_QUANT_SIZE && n % block_size == 0
}

/// Per-step f32 scalars of the compiled kernel (module docs).
#[derive(Clone, Copy)]
struct Coefs {
    lr: f32,
    /// lr·λ
    lr_wd: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    /// c₁ = 1 − β₁^t
    c1: f32,
    /// √c₂ = √(1 − β₂^t)
    sqrt_c2: f32,
    eps: f32,
}

/// `single_param_adam` as inductor compiles it (module docs); no FMA anywhere
/// (`-ffp-contract=off`), √ correctly rounded (`_mm256_sqrt_ps` / `std::sqrt`).
fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &Coefs) {
    for i in 0..p.len() {
        let gi = g[i];
        m[i] = k.one_minus_beta1 * (gi - m[i]) + m[i];
        v[i] = k.one_minus_beta2 * (gi * gi - v[i]) + v[i];
        let denom = v[i].sqrt() / k.sqrt_c2 + k.eps;
        let step = (k.lr * (m[i] / k.c1)) / denom;
        p[i] = (p[i] - k.lr_wd * p[i]) - step;
    }
}

/// A moment as f32 values (dequantised when quantised).
fn load(m: &Moment, map: &QMap, block: usize, n: usize) -> Vec<f32> {
    match m {
        Moment::Plain(x) => x.clone(),
        Moment::Quantised { codes, scale } => {
            let mut out = vec![0f32; n];
            map.dequantize(codes, scale, block, &mut out);
            out
        }
    }
}

/// `exp_avg.copy_(exp_avg_f32)`: keep, or quantise into codes and scales.
fn store(m: &mut Moment, values: Vec<f32>, map: &QMap, block: usize) {
    match m {
        Moment::Plain(x) => *x = values,
        Moment::Quantised { codes, scale } => map.quantize(&values, block, codes, scale),
    }
}
