//! Checkpoint tensors handed out to the model constructors by name.

use crate::engine::error::{EngineError, Result};
use crate::engine::layers::Linear;
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

    /// A linear layer `name.weight` (out, in) [+ `name.bias` (out)].
    pub fn linear(&mut self, name: &str, d_in: i64, d_out: i64, bias: bool) -> Result<Linear> {
        let weight = self.take(&format!("{name}.weight"), &[d_out, d_in])?;
        let bias = if bias {
            Some(self.take(&format!("{name}.bias"), &[d_out])?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias))
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
