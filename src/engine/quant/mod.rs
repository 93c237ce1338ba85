//! Quantised base weights for QLoRA. Only bitsandbytes NF4 ([`nf4`]) for now.

pub mod nf4;

pub use nf4::Nf4Tensor;
