//! Quantised frozen base weights: bitsandbytes NF4 ([`nf4`], QLoRA) and LLM.int8 ([`int8`],
//! `load_in_8bit`), each bit-compatible with bitsandbytes 0.50.2.

pub mod int8;
pub mod nf4;

pub use int8::Int8Tensor;
pub use nf4::Nf4Tensor;
use tch::{Kind, Tensor};

/// How to quantise the frozen linears of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantFormat {
    /// bitsandbytes NF4, block 64 (QLoRA), with or without double quantisation.
    Nf4 { double_quant: bool },
    /// bitsandbytes LLM.int8 with this outlier threshold.
    Int8 { threshold: f64 },
}

/// A frozen weight stored quantised; the dense copy is gone.
pub enum QuantizedWeight {
    Nf4(Nf4Tensor),
    Int8(Int8Tensor),
}

impl QuantizedWeight {
    pub fn out_features(&self) -> i64 {
        match self {
            QuantizedWeight::Nf4(q) => q.out_features(),
            QuantizedWeight::Int8(q) => q.out_features(),
        }
    }

    pub fn in_features(&self) -> i64 {
        match self {
            QuantizedWeight::Nf4(q) => q.in_features(),
            QuantizedWeight::Int8(q) => q.in_features(),
        }
    }

    /// y = x·Wᵀ + b as bitsandbytes computes it for this format. `training` picks
    /// LLM.int8's path (see [`int8`]); NF4 (`matmul_4bit`) dequantizes to the weight's own
    /// dtype, then to the activations' dtype, then takes a dense product either way.
    pub fn linear(&self, xs: &Tensor, bias: Option<&Tensor>, training: bool) -> Tensor {
        match self {
            QuantizedWeight::Nf4(q) => xs.linear(&q.dequantize().to_kind(xs.kind()), bias),
            QuantizedWeight::Int8(q) => q.linear(xs, bias, training),
        }
    }

    /// The dense weight in `kind`, as the forward multiplies by it.
    pub fn dequantize(&self, kind: Kind) -> Tensor {
        match self {
            QuantizedWeight::Nf4(q) => q.dequantize().to_kind(kind),
            QuantizedWeight::Int8(q) => q.dequantize(kind),
        }
    }
}
