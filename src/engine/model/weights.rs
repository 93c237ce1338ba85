//! Checkpoint tensors handed out to the model constructors by name.

use crate::engine::error::{EngineError, Result};
use crate::engine::layers::Linear;
use crate::engine::quant::nf4::{BnbParts, Nf4Tensor};
use crate::engine::quant::QuantizedWeight;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// Checkpoint tensors being handed out to the model constructors by name. Each `take`
/// checks the shape and converts to the compute dtype and device.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    kind: Kind,
    device: Device,
}

impl Weights {
    pub fn new(tensors: HashMap<String, Tensor>, kind: Kind, device: Device) -> Self {
        Weights {
            tensors,
            kind,
            device,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Remove one tensor, checking its shape; float tensors become the compute dtype.
    pub fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| EngineError::tensor(name, "missing from the checkpoint"))?;
        if t.size() != shape {
            return Err(EngineError::tensor(
                name,
                format!(
                    "shape {:?} in the checkpoint, config.json implies {shape:?}",
                    t.size()
                ),
            ));
        }
        // dtype first, on the host: a bf16 run never holds fp32 weights on the GPU
        Ok(t.f_to_kind(self.kind)?.f_to_device(self.device)?)
    }

    /// A linear layer `name.weight` (out, in) [+ `name.bias` (out)]. A weight a
    /// bitsandbytes checkpoint stores as 4-bit (`name.weight.quant_state.bitsandbytes__*`)
    /// is read as it is into the layer's NF4 form.
    pub fn linear(&mut self, name: &str, d_in: i64, d_out: i64, bias: bool) -> Result<Linear> {
        let w = format!("{name}.weight");
        let state = ["nf4", "fp4"]
            .iter()
            .map(|t| format!("{w}.quant_state.bitsandbytes__{t}"))
            .find(|k| self.contains(k));
        let weight = match state {
            Some(key) => {
                let q = self.take_nf4(&w, &key)?;
                if q.shape != [d_out, d_in] {
                    return Err(EngineError::tensor(
                        &w,
                        format!(
                            "quantised shape {:?} in the checkpoint, config.json implies {:?}",
                            q.shape,
                            [d_out, d_in]
                        ),
                    ));
                }
                let bias = if bias {
                    Some(self.take(&format!("{name}.bias"), &[d_out])?)
                } else {
                    None
                };
                let mut lin = Linear::new(Tensor::new(), bias);
                lin.quant = Some(QuantizedWeight::Nf4(q));
                return Ok(lin);
            }
            None if self.contains(&format!("{w}.SCB")) => {
                return Err(EngineError::tensor(
                    &w,
                    "a bitsandbytes LLM.int8 weight (int8 with `SCB`); the engine reads \
                     16/32-bit and bitsandbytes NF4 checkpoints",
                ))
            }
            None => self.take(&w, &[d_out, d_in])?,
        };
        let bias = if bias {
            Some(self.take(&format!("{name}.bias"), &[d_out])?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias))
    }

    /// The tensors of one bitsandbytes 4-bit weight, moved to the device as stored.
    fn take_nf4(&mut self, w: &str, state_key: &str) -> Result<Nf4Tensor> {
        let state = self
            .tensors
            .remove(state_key)
            .expect("the caller found the quant_state");
        let nested = if self.contains(&format!("{w}.nested_absmax")) {
            Some((
                self.take_raw(w, ".nested_absmax")?,
                self.take_raw(w, ".nested_quant_map")?,
            ))
        } else {
            None
        };
        let parts = BnbParts {
            packed: self.take_raw(w, "")?,
            absmax: self.take_raw(w, ".absmax")?,
            quant_map: self.take_raw(w, ".quant_map")?,
            nested,
            state,
        };
        Nf4Tensor::from_bnb(w, parts)
    }

    /// `w + suffix`, on the device, dtype as stored.
    fn take_raw(&mut self, w: &str, suffix: &str) -> Result<Tensor> {
        let k = format!("{w}{suffix}");
        let t = self
            .tensors
            .remove(&k)
            .ok_or_else(|| EngineError::tensor(&k, "missing from the checkpoint"))?;
        Ok(t.f_to_device(self.device)?)
    }

    /// Names nobody took (tolerated: rotary caches some checkpoints carry).
    pub fn leftover(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| !k.ends_with("rotary_emb.inv_freq"))
            .cloned()
            .collect();
        v.sort();
        v
    }
}
