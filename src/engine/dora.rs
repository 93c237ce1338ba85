//! DoRA (weight-decomposed LoRA, Liu et al. 2024) as TorchTune 0.6.1 (`DoRALinear`) and PEFT
//! 0.20 (`DoraLinearLayer` + `DoraLinearVariant`) compute it, on top of a LoRA pair
//! ([`super::layers::Lora`]).
//!
//! The adapted weight is W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row: a trainable magnitude m
//! (out) times the unit-norm rows of the LoRA-adapted weight. Both frameworks expand it so the
//! frozen base product W·x is reused:
//!
//!   n = ‖W + s·B·A‖ per output row (dim 1), **detached** (DoRA paper §4.3: no gradient flows
//!       through the norm; both frameworks `.detach()` it)
//!   k = m / n                                        (1, out)
//!   y = base + (k − 1)·base + (k·lora)·s             lora = B·(A·x̃)
//!
//! with x̃ = dropout(x) on the LoRA path only. The two frameworks differ in what `base` is:
//! - TorchTune: base = W·x + b, the undropped layer output *with* its bias (so the bias is
//!   scaled by k too), and the result is `dora + base`.
//! - PEFT: without active dropout base = (W·x + b) − b, the layer output less its bias; with
//!   active dropout (training, p > 0) base = W·x̃, recomputed on the dropped input. The result is
//!   `(W·x + b) + dora`.
//!
//! n is computed as both do it: B·A as `lora_b(lora_a(eye(in))).T` (an FSDP-safe product;
//! see [`weight_norm`] for the identity left out), then `linalg.norm(W + s·BA, dim=1)`. The magnitude starts at ‖W + s·B·A‖ over the loaded
//! base weights (B·A as a plain `B @ A`): TorchTune's `initialize_dora_magnitude` after the
//! checkpoint loads, PEFT's `DoraLinearLayer.update_layer` in `get_peft_model`. With B = 0 it
//! is ‖W‖ per row, so the first forward equals the base model's.
//!
//! Files: PEFT saves m as `base_model.model.<module>.lora_magnitude_vector` (1-D, out) and
//! `use_dora: true` in `adapter_config.json`; TorchTune's own checkpoint calls it `magnitude`.

use tch::Tensor;

/// Whose DoRA forward a layer follows (see the module docs for the difference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    TorchTune,
    Peft,
}

/// The DoRA part of a LoRA'd linear layer: its trainable magnitude.
pub struct Dora {
    pub magnitude: Tensor, // (out)
    pub style: Style,
}

/// What one DoRA forward needs from its layer.
pub struct Inputs<'a> {
    /// W·x + b over the undropped input, in the layer's compute dtype: (…, out).
    pub base: &'a Tensor,
    /// x̃: the input in the adapter dtype, dropped out when dropout is on: (…, in).
    pub x: &'a Tensor,
    /// W, dense (dequantised if NF4): (out, in).
    pub weight: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub a: &'a Tensor, // (R, in)
    pub b: &'a Tensor, // (out, R)
    pub scale: f64,
    /// Dropout drew a mask for x̃ (training with p > 0): PEFT then recomputes the base on x̃.
    pub dropped: bool,
}

/// ‖W + s·BA‖ per output row, with BA as both frameworks form it in the forward,
/// `lora_b(lora_a(eye(in))).T`; no gradient (the frameworks detach it). W is cast to `kind`
/// first (`self.weight.to(x.dtype)`). Returns (out).
///
/// `lora_a(eye)` = eye·Aᵀ is Aᵀ exactly (each entry one product by 1 plus exact zeros), so the
/// engine starts from a contiguous Aᵀ: the same second product, without the (in, in) identity
/// (822 MB in fp32 for an 8B `down_proj`). A unit test checks the two bit for bit.
pub fn weight_norm(weight: &Tensor, a: &Tensor, b: &Tensor, scale: f64, kind: tch::Kind) -> Tensor {
    let _guard = tch::no_grad_guard();
    let ba = a
        .tr()
        .contiguous() // (in, R), as eye·Aᵀ is laid out
        .linear::<Tensor>(b, None)
        .tr()
        .to_kind(kind); // (out, in)
    row_norm(&(weight.to_kind(kind) + ba * scale))
}

/// `torch.linalg.norm(w, dim=1)`: the 2-norm of each row.
fn row_norm(w: &Tensor) -> Tensor {
    // ord 2 over one dim is `vector_norm(w, 2, dim)`, as `ord=None` is
    w.linalg_norm(2.0, [1i64].as_slice(), false, None::<tch::Kind>)
}

/// The initial magnitude ‖W + s·(B @ A)‖ per row (TorchTune `initialize_dora_magnitude`, PEFT
/// `DoraLinearLayer.update_layer`), in the adapter dtype of A. Returns (out).
pub fn initial_magnitude(weight: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Tensor {
    let _guard = tch::no_grad_guard();
    let ba = b.matmul(a); // (out, in)
    row_norm(&(weight.to_kind(a.kind()) + ba * scale))
}

impl Dora {
    /// The layer's output with DoRA applied (module docs), in the promoted dtype of base and
    /// adapter; the caller casts back to the activations' dtype.
    pub fn forward(&self, i: &Inputs) -> Tensor {
        let kind = i.x.kind();
        let norm = weight_norm(i.weight, i.a, i.b, i.scale, kind); // (out), detached
        let k = (&self.magnitude / norm).view([1, -1]); // (1, out)
        let lora = i.x.linear::<Tensor>(i.a, None).linear::<Tensor>(i.b, None); // (…, out)
        match self.style {
            Style::TorchTune => {
                let dora = (&k - 1.0) * i.base + &k * lora * i.scale;
                dora + i.base
            }
            Style::Peft => {
                let base = if i.dropped {
                    i.x.linear::<Tensor>(&i.weight.to_kind(kind), None)
                } else {
                    match i.bias {
                        Some(b) => i.base - b,
                        None => i.base.shallow_clone(),
                    }
                };
                let dora = (&k - 1.0) * base + &k * lora * i.scale;
                i.base + dora
            }
        }
    }
}

#[cfg(test)]
mod tests;
