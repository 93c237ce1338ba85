//! The optimizer a spec names (`optimizer.name`), and one type the train loop drives.
//!
//! | `optimizer.name` | what runs |
//! |---|---|
//! | `adamw`, `adamw_torch`, `adamw_fused`, `adamw_torch_fused` | torch AdamW ([`super::adamw`]) |
//! | `adamw_8bit` (`adamw_bnb_8bit`), `paged_adamw_8bit` | bitsandbytes AdamW, 8-bit states ([`super::bnb`]) |
//! | `paged_adamw_32bit` | bitsandbytes AdamW, 32-bit states |
//! | `adamw_8bit_torchao`, `adamw_4bit_torchao` | torchao `AdamW8bit` / `AdamW4bit` ([`super::torchao`]) |
//!
//! Paging is a memory placement (unified memory on CUDA), so a paged name runs the same math.
//! Any other name is refused with the list above.

use super::adamw::{self, AdamW, AdamWConfig, ADAMW_NAMES};
use super::ao_quant::Bits;
use super::bnb::{BnbAdamW, BnbAdamWConfig};
use super::torchao::{AoAdamW, AoAdamWConfig};
use crate::engine::error::{Result, Unsupported};
use tch::Tensor;

/// The IR names that select bitsandbytes AdamW with 8-bit states.
pub const BNB_8BIT_NAMES: [&str; 3] = ["adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit"];
/// The IR names that select bitsandbytes AdamW with 32-bit states.
pub const BNB_32BIT_NAMES: [&str; 1] = ["paged_adamw_32bit"];
/// The IR names that select torchao's low-bit AdamW (Axolotl/HF `adamw_torch_8bit`,
/// `adamw_torch_4bit`).
pub const TORCHAO_NAMES: [&str; 2] = ["adamw_8bit_torchao", "adamw_4bit_torchao"];
/// The block size HF Trainer gives torchao's optimizers (`optim_args` `block_size`, default 256).
pub const TORCHAO_BLOCK_SIZE: usize = 256;

/// Which optimizer an `optimizer.name` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// `torch.optim.AdamW` (fused or not: the same numbers on CPU).
    TorchAdamW,
    /// `bnb.optim.AdamW` with `optim_bits` = 8 or 32.
    BnbAdamW { optim_bits: u8 },
    /// `torchao.optim.AdamW8bit` / `AdamW4bit`.
    TorchaoAdamW { bits: Bits },
}

impl OptimizerKind {
    /// The kind an IR `optimizer.name` names, or a refusal listing every name that runs.
    pub fn of(name: &str) -> Result<OptimizerKind, Unsupported> {
        if ADAMW_NAMES.contains(&name) {
            Ok(OptimizerKind::TorchAdamW)
        } else if BNB_8BIT_NAMES.contains(&name) {
            Ok(OptimizerKind::BnbAdamW { optim_bits: 8 })
        } else if BNB_32BIT_NAMES.contains(&name) {
            Ok(OptimizerKind::BnbAdamW { optim_bits: 32 })
        } else if name == TORCHAO_NAMES[0] {
            Ok(OptimizerKind::TorchaoAdamW { bits: Bits::Eight })
        } else if name == TORCHAO_NAMES[1] {
            Ok(OptimizerKind::TorchaoAdamW { bits: Bits::Four })
        } else {
            Err(Unsupported::new(
                "optimizer.name",
                name,
                format!(
                    "the engine implements torch AdamW ({}), bitsandbytes AdamW ({}, {}) and torchao low-bit AdamW ({}); other optimizers are not implemented",
                    ADAMW_NAMES.join(", "),
                    BNB_8BIT_NAMES.join(", "),
                    BNB_32BIT_NAMES.join(", "),
                    TORCHAO_NAMES.join(", ")
                ),
            ))
        }
    }
}

/// A trainable tensor as the optimizer sees it.
pub struct Trainable {
    pub name: String,
    pub tensor: Tensor,
    pub weight_decay: f64,
    /// Keep 32-bit states whatever the optimizer's bits (HF Trainer's `nn.Embedding` override).
    pub force_32bit: bool,
}

/// The optimizer of a run.
pub enum Optimizer {
    Torch(AdamW),
    Bnb(BnbAdamW),
    Torchao(AoAdamW),
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, cfg: AdamWConfig, params: Vec<Trainable>) -> Optimizer {
        match kind {
            OptimizerKind::TorchAdamW => Optimizer::Torch(AdamW::new(
                cfg,
                params
                    .into_iter()
                    .map(|t| (t.name, t.tensor, t.weight_decay))
                    .collect(),
            )),
            OptimizerKind::BnbAdamW { optim_bits } => Optimizer::Bnb(BnbAdamW::new(
                BnbAdamWConfig {
                    beta1: cfg.beta1,
                    beta2: cfg.beta2,
                    eps: cfg.eps,
                    optim_bits,
                    min_8bit_size: 4096,
                },
                params
                    .into_iter()
                    .map(|t| (t.name, t.tensor, t.weight_decay, t.force_32bit))
                    .collect(),
            )),
            // HF Trainer's embedding override is for bitsandbytes only: `force_32bit` is unused
            OptimizerKind::TorchaoAdamW { bits } => Optimizer::Torchao(AoAdamW::new(
                AoAdamWConfig {
                    beta1: cfg.beta1,
                    beta2: cfg.beta2,
                    eps: cfg.eps,
                    bits,
                    block_size: TORCHAO_BLOCK_SIZE,
                },
                params
                    .into_iter()
                    .map(|t| (t.name, t.tensor, t.weight_decay))
                    .collect(),
            )),
        }
    }

    /// `clip_grad_norm_` over the parameters; the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        match self {
            Optimizer::Torch(o) => o.clip_grad_norm(max_norm),
            Optimizer::Bnb(o) => {
                let params: Vec<Tensor> =
                    o.params.iter().map(|s| s.param.shallow_clone()).collect();
                adamw::clip_grad_norm(&params, max_norm)
            }
            Optimizer::Torchao(o) => {
                let params: Vec<Tensor> =
                    o.params.iter().map(|s| s.param.shallow_clone()).collect();
                adamw::clip_grad_norm(&params, max_norm)
            }
        }
    }

    pub fn step(&mut self, lr: f64) -> Result<()> {
        match self {
            Optimizer::Torch(o) => o.step(lr),
            Optimizer::Bnb(o) => o.step(lr),
            Optimizer::Torchao(o) => o.step(lr),
        }
    }

    pub fn zero_grad(&mut self) {
        match self {
            Optimizer::Torch(o) => o.zero_grad(),
            Optimizer::Bnb(o) => zero_grads(o.params.iter().map(|s| &s.param)),
            Optimizer::Torchao(o) => zero_grads(o.params.iter().map(|s| &s.param)),
        }
    }

    /// (name, parameter) pairs; the tensors share storage with the model's.
    pub fn named_params(&self) -> Vec<(String, Tensor)> {
        match self {
            Optimizer::Torch(o) => o
                .params
                .iter()
                .map(|s| (s.name.clone(), s.param.shallow_clone()))
                .collect(),
            Optimizer::Bnb(o) => o
                .params
                .iter()
                .map(|s| (s.name.clone(), s.param.shallow_clone()))
                .collect(),
            Optimizer::Torchao(o) => o
                .params
                .iter()
                .map(|s| (s.name.clone(), s.param.shallow_clone()))
                .collect(),
        }
    }

    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        match self {
            Optimizer::Torch(o) => o.state_tensors(),
            Optimizer::Bnb(o) => o.state_tensors(),
            Optimizer::Torchao(o) => o.state_tensors(),
        }
    }

    pub fn load_state(&mut self, tensors: &indexmap::IndexMap<String, Tensor>) -> Result<()> {
        match self {
            Optimizer::Torch(o) => o.load_state(tensors),
            Optimizer::Bnb(o) => o.load_state(tensors),
            Optimizer::Torchao(o) => o.load_state(tensors),
        }
    }
}

/// `p.grad.zero_()` for every parameter that has a gradient.
fn zero_grads<'a>(params: impl Iterator<Item = &'a Tensor>) {
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.detach_().zero_();
        }
    }
}
