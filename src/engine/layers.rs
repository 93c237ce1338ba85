//! The layers the model and LoRA share: [`Linear`] (a frozen or trainable weight, optionally
//! quantised as NF4 or LLM.int8, optionally carrying a [`Lora`] pair) and the LoRA
//! [`Dropout`] modes.
//!
//! The LoRA forward is PEFT's: y = W·x + b + s · B·(A·dropout(x)) (see [`super::lora`] for
//! how A and B are attached and initialised); with DoRA, [`super::dora`] rescales it.

use super::dora::{self, Dora};
use super::error::Result;
use super::quant::{Int8Tensor, Nf4Tensor, QuantizedWeight};
use std::cell::RefCell;
use std::collections::VecDeque;
use tch::Tensor;

/// How LoRA dropout gets its masks in one forward pass.
///
/// A recomputed layer (see [`super::recompute`]) must see in its second forward the masks of
/// its first, as `torch.utils.checkpoint` does by restoring the RNG state: the first pass
/// records them, the recomputation replays them and draws nothing, so the generator ends
/// where a run without recomputation leaves it.
pub enum Dropout<'a> {
    /// Evaluation: no dropout.
    Off,
    /// Training: `dropout(x, p)` draws a fresh mask.
    Draw,
    /// Training, first pass of a recomputed layer: draw as [`Dropout::Draw`] and keep the mask.
    Record(&'a RefCell<Vec<Tensor>>),
    /// Training, recomputation: reuse the recorded masks in order.
    Replay(&'a RefCell<VecDeque<Tensor>>),
}

impl Dropout<'_> {
    pub fn train(train: bool) -> Dropout<'static> {
        if train {
            Dropout::Draw
        } else {
            Dropout::Off
        }
    }

    /// Whether a mask is drawn (or replayed): training.
    fn is_on(&self) -> bool {
        !matches!(self, Dropout::Off)
    }

    /// x ↦ dropout(x, p). `Record` spells out ATen's CPU `_dropout_impl` (the path
    /// `dropout` takes on the CPU): noise = empty_like(x).bernoulli_(1 − p); noise /= 1 − p;
    /// x · noise. So on the CPU a recorded pass draws and computes exactly what `Draw` does.
    fn apply(&self, x: &Tensor, p: f64) -> Tensor {
        match self {
            Dropout::Off => x.shallow_clone(),
            Dropout::Draw => x.dropout(p, true),
            Dropout::Record(masks) => {
                let mut noise = x.empty_like();
                let _ = noise.bernoulli_float_(1.0 - p);
                let _ = noise.g_div_scalar_(1.0 - p);
                let y = x * &noise;
                masks.borrow_mut().push(noise);
                y
            }
            Dropout::Replay(masks) => {
                let noise = masks
                    .borrow_mut()
                    .pop_front()
                    .expect("a recomputed layer replays exactly the masks its first pass drew");
                x * noise
            }
        }
    }
}

/// A linear layer with an optional LoRA adapter.
pub struct Linear {
    /// (out, in); undefined once [`Linear::quantize`] moved it into `quant`.
    pub weight: Tensor,
    pub bias: Option<Tensor>, // (out)
    pub lora: Option<Lora>,
    /// The frozen weight stored quantised (NF4 for QLoRA, LLM.int8 for `load_in_8bit`).
    pub quant: Option<QuantizedWeight>,
}

/// The trainable low-rank pair of one linear layer.
pub struct Lora {
    pub a: Tensor, // (R, in)
    pub b: Tensor, // (out, R)
    pub scale: f64,
    pub dropout: f64,
    /// DoRA: the magnitude that rescales W + s·B·A row by row.
    pub dora: Option<Dora>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight,
            bias,
            lora: None,
            quant: None,
        }
    }

    pub fn in_features(&self) -> i64 {
        match &self.quant {
            Some(q) => q.in_features(),
            None => self.weight.size()[1],
        }
    }

    pub fn out_features(&self) -> i64 {
        match &self.quant {
            Some(q) => q.out_features(),
            None => self.weight.size()[0],
        }
    }

    /// Store the (frozen) weight as NF4, bitsandbytes-compatible; the dense copy is dropped.
    /// A weight loaded already quantised (a bitsandbytes checkpoint) stays as it is, as
    /// transformers keeps a pre-quantised checkpoint's own quantisation.
    pub fn quantize(&mut self, double_quant: bool) -> Result<()> {
        if self.quant.is_some() {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        self.quant = Some(QuantizedWeight::Nf4(Nf4Tensor::quantize(
            &self.weight,
            double_quant,
        )?));
        self.weight = Tensor::new();
        Ok(())
    }

    /// Store the (frozen) weight as LLM.int8 (`Linear8bitLt`), outliers at `threshold`.
    pub fn quantize_int8(&mut self, threshold: f64) -> Result<()> {
        if self.quant.is_some() {
            return Ok(());
        }
        self.quant = Some(QuantizedWeight::Int8(Int8Tensor::quantize(
            &self.weight,
            threshold,
        )?));
        self.weight = Tensor::new();
        Ok(())
    }

    /// W (out, in), dequantised when stored quantised (NF4: in the weight's own dtype;
    /// LLM.int8: fp16, the dtype its codes were made from).
    pub fn dense_weight(&self) -> Tensor {
        match &self.quant {
            Some(QuantizedWeight::Nf4(q)) => q.dequantize(),
            Some(QuantizedWeight::Int8(q)) => q.dequantize(tch::Kind::Half),
            None => self.weight.shallow_clone(),
        }
    }

    /// x (…, in) → (…, out).
    pub fn forward(&self, xs: &Tensor, drop: &Dropout) -> Tensor {
        let training = !matches!(drop, Dropout::Off);
        let base = match &self.quant {
            Some(q) => q.linear(xs, self.bias.as_ref(), training),
            None => xs.linear(&self.weight, self.bias.as_ref()),
        }; // (…, out)
        match &self.lora {
            None => base,
            Some(l) => {
                // PEFT casts the input to the adapter dtype, adds, then casts back.
                let x = xs.to_kind(l.a.kind());
                let x = if l.dropout > 0.0 {
                    drop.apply(&x, l.dropout)
                } else {
                    x
                };
                let y = match &l.dora {
                    None => {
                        let delta =
                            x.linear::<Tensor>(&l.a, None).linear::<Tensor>(&l.b, None) * l.scale;
                        if matches!(self.quant, Some(QuantizedWeight::Int8(_))) {
                            // PEFT's bitsandbytes layer (`lora/bnb.py::Linear8bitLt`) casts
                            // the update to the base output's dtype first, then adds.
                            return base + delta.to_kind(xs.kind());
                        }
                        base + delta
                    }
                    Some(d) => {
                        let dense;
                        let weight = match &self.quant {
                            Some(q) => {
                                dense = q.dequantize(xs.kind()); // (out, in)
                                &dense
                            }
                            None => &self.weight,
                        };
                        d.forward(&dora::Inputs {
                            base: &base,
                            x: &x,
                            weight,
                            bias: self.bias.as_ref(),
                            a: &l.a,
                            b: &l.b,
                            scale: l.scale,
                            dropped: l.dropout > 0.0 && drop.is_on(),
                        })
                    }
                };
                y.to_kind(xs.kind())
            }
        }
    }

    /// Push `name.weight`, `name.bias` and the LoRA pair, checkpoint-named.
    /// A quantised weight is not a parameter and is left out.
    pub fn push_params(&self, name: &str, out: &mut Vec<(String, Tensor)>) {
        if self.quant.is_none() {
            out.push((format!("{name}.weight"), self.weight.shallow_clone()));
        }
        if let Some(b) = &self.bias {
            out.push((format!("{name}.bias"), b.shallow_clone()));
        }
        if let Some(l) = &self.lora {
            out.push((format!("{name}.lora_A.weight"), l.a.shallow_clone()));
            out.push((format!("{name}.lora_B.weight"), l.b.shallow_clone()));
            if let Some(d) = &l.dora {
                out.push((
                    format!("{name}.lora_magnitude_vector"),
                    d.magnitude.shallow_clone(),
                ));
            }
        }
    }
}
