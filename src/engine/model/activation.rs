//! The gate activation of the gated MLP: SwiGLU (Llama, Qwen, Mistral, Phi-3) or GeGLU (Gemma).

use tch::Tensor;

/// The gate activation of the gated MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// silu(x) = x·σ(x) (SwiGLU).
    Silu,
    /// gelu with the tanh approximation (`gelu_pytorch_tanh`, GeGLU), torch's
    /// `gelu(approximate="tanh")`.
    GeluTanh,
}

impl Activation {
    pub fn apply(self, xs: &Tensor) -> Tensor {
        match self {
            Activation::Silu => xs.silu(),
            Activation::GeluTanh => xs.gelu("tanh"),
        }
    }
}
