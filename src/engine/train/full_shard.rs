//! Full shard of the frozen base weights over the ranks (FSDP `FULL_SHARD`, FSDP2
//! `fully_shard`, DeepSpeed ZeRO-3) for a LoRA run.
//!
//! Each decoder layer's frozen linear weights are one flat parameter, as FSDP's unit per layer:
//! the layer's weights flattened in module order and concatenated (n elements), padded with
//! zeros to W·S (S = ⌈n / W⌉); rank r keeps elements [r·S, (r+1)·S). A layer is gathered
//! (one all-gather of S per rank into W·S) right before it runs, with the next layer's gather
//! already issued (prefetch: forward i → i+1, backward i → i−1), and freed right after: at
//! most two layers' weights exist at once. The weights are set into the model's own tensors
//! (`set_data` on a handle sharing the parameter's TensorImpl), so the model code runs
//! unchanged; every pass goes layer by layer ([`LayerResidency`]), the backward by
//! recomputation, as FSDP re-gathers a resharded layer for its backward.
//!
//! The gathered values are the loaded ones, bit for bit, so the run equals the replicated
//! data-parallel run exactly. The LoRA pairs stay replicated and their gradients all-reduced
//! (`parallel.rs`): for adapters the optimizer arithmetic is elementwise, so FSDP's
//! reduce-scatter + sharded AdamW computes the same values.
//!
//! Kept whole on every rank: the embedding, final norm and `lm_head` (FSDP's root unit),
//! the per-layer norms and biases (under 0.1% of a layer), quantised (NF4, int8) weights.

use super::super::dist::{ProcessGroup, Work};
use super::super::error::Result;
use super::super::model::ModelForCausalLM;
use super::super::recompute::LayerResidency;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use tch::{Kind, Tensor};

/// One decoder layer's share of the frozen weights.
struct LayerShard {
    /// Handles on the model's weight tensors (same TensorImpl) and their shapes.
    weights: Vec<(Tensor, Vec<i64>)>,
    /// This rank's S elements of the padded flat parameter.
    shard: Tensor,
}

/// The frozen decoder weights sharded over a process group, gathered layer by layer.
pub struct FullShard {
    group: Rc<ProcessGroup>,
    layers: Vec<LayerShard>,
    /// Layers whose weights are in the model.
    gathered: BTreeSet<usize>,
    /// Gathers issued ahead (prefetch), with the buffer they fill.
    in_flight: BTreeMap<usize, (Work, Tensor)>,
    /// Most layers gathered or being gathered at one time since [`FullShard::take_peak`].
    peak: usize,
}

impl FullShard {
    /// Shard every dense frozen linear of the decoder layers; the full tensors are released.
    pub fn new(model: &mut ModelForCausalLM, group: Rc<ProcessGroup>) -> Result<FullShard> {
        let (rank, world) = (group.rank() as i64, group.size() as i64);
        let mut per_layer: Vec<Vec<Tensor>> = (0..model.num_layers()).map(|_| Vec::new()).collect();
        model.for_each_linear_mut(|name, lin| {
            let layer = name
                .strip_prefix("model.layers.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|i| i.parse::<usize>().ok());
            if let Some(i) = layer {
                if lin.quant.is_none() && !lin.weight.requires_grad() {
                    per_layer[i].push(lin.weight.shallow_clone());
                }
            }
            Ok(())
        })?;
        let _guard = tch::no_grad_guard();
        let mut layers = Vec::with_capacity(per_layer.len());
        for tensors in per_layer {
            let flat = match tensors.is_empty() {
                true => Tensor::zeros([0], (Kind::Float, tch::Device::Cpu)),
                false => Tensor::cat(
                    &tensors.iter().map(|t| t.flatten(0, -1)).collect::<Vec<_>>(),
                    0,
                ),
            };
            let n = flat.numel() as i64;
            let s = (n + world - 1) / world; // ⌈n / W⌉
            let padded = flat.constant_pad_nd([0, s * world - n]);
            let shard = padded.narrow(0, rank * s, s).copy();
            let weights = tensors
                .into_iter()
                .map(|mut t| {
                    let shape = t.size();
                    t.set_data(&Tensor::empty([0], (t.kind(), t.device())));
                    (t, shape)
                })
                .collect();
            layers.push(LayerShard { weights, shard });
        }
        Ok(FullShard {
            group,
            layers,
            gathered: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            peak: 0,
        })
    }

    /// Bytes of frozen decoder weights this rank keeps between uses.
    pub fn resident_bytes(&self) -> i64 {
        self.layers
            .iter()
            .map(|l| l.shard.numel() as i64 * l.shard.kind().elt_size_in_bytes() as i64)
            .sum()
    }

    /// The most layers held at once since the last call (then reset).
    pub fn take_peak(&mut self) -> usize {
        std::mem::take(&mut self.peak)
    }

    /// Issue layer `i`'s all-gather into a fresh W·S buffer.
    fn start_gather(&self, i: usize) -> Result<(Work, Tensor)> {
        let shard = &self.layers[i].shard;
        let full = Tensor::empty(
            [shard.numel() as i64 * self.group.size() as i64],
            (shard.kind(), shard.device()),
        );
        let work = self.group.all_gather_into(&full, shard)?;
        Ok((work, full))
    }

    /// Point the layer's weights at their slices of the gathered flat buffer.
    fn place(&mut self, i: usize, full: &Tensor) {
        let mut offset = 0i64;
        for (t, shape) in &mut self.layers[i].weights {
            let n: i64 = shape.iter().product();
            t.set_data(&full.narrow(0, offset, n).view(shape.as_slice()));
            offset += n;
        }
        self.gathered.insert(i);
    }

    fn note_peak(&mut self) {
        self.peak = self.peak.max(self.gathered.len() + self.in_flight.len());
    }
}

impl LayerResidency for FullShard {
    fn is_sharded(&self) -> bool {
        true
    }

    fn acquire(&mut self, i: usize, next: Option<usize>) -> Result<()> {
        // a layer with nothing sharded (all quantised) has nothing to gather
        let next = next.filter(|&j| !self.layers[j].weights.is_empty());
        if !self.gathered.contains(&i) && !self.layers[i].weights.is_empty() {
            let (work, full) = match self.in_flight.remove(&i) {
                Some(pending) => pending,
                None => self.start_gather(i)?,
            };
            work.wait()?;
            self.place(i, &full);
        }
        if let Some(j) = next {
            if !self.gathered.contains(&j) && !self.in_flight.contains_key(&j) {
                let pending = self.start_gather(j)?;
                self.in_flight.insert(j, pending);
            }
        }
        self.note_peak();
        Ok(())
    }

    fn release(&mut self, i: usize) -> Result<()> {
        for (t, _) in &mut self.layers[i].weights {
            let empty = Tensor::empty([0], (t.kind(), t.device()));
            t.set_data(&empty);
        }
        self.gathered.remove(&i);
        Ok(())
    }
}
