//! The data schedule of an Axolotl run with `sample_packing: true`: the multipack sampler's
//! micro-batches walked as the HF Trainer walks them (the packing itself:
//! [`data::multipack`](crate::engine::data::multipack)).

use super::plan::{Plan, Window};
use super::shard::Shard;
use crate::engine::data::multipack::{estimate_steps, packs_eval, sampler_len, Multipack};
use crate::engine::data::{order, Sample};
use crate::engine::error::{EngineError, Result};
use crate::engine::flavour::Flavour;
use crate::ir::RunSpec;

/// Whether a run packs as Axolotl's multipack sampler does.
pub fn applies(spec: &RunSpec, flavour: Flavour) -> bool {
    spec.data.packing && flavour == Flavour::Axolotl
}

/// The held-out rows as the run evaluates them, and the evaluation batch: packed
/// ([`Multipack::eval_rows`], `bins_per_batch` rows a batch) unless `eval_sample_packing` is
/// off; then as given, in batches of the micro-batch (`eval_batch_size` default).
/// A held-out set too small for one packed batch is an error, as in Axolotl.
pub fn eval_set(
    spec: &RunSpec,
    flavour: Flavour,
    val: Vec<Sample>,
    pad_id: i64,
) -> Result<(Vec<Sample>, usize)> {
    let mbs = spec.batch.micro_batch_per_device.max(1) as usize;
    if !applies(spec, flavour) || !packs_eval(spec) || val.is_empty() {
        return Ok((val, mbs));
    }
    let mp = Multipack::of(spec);
    let rows = mp.eval_rows(&val, pad_id);
    if rows.is_empty() {
        return Err(EngineError::Data(format!(
            "data.val_size: the {} held-out samples pack into no full evaluation batch of {} \
             bins (Axolotl: \"eval dataset split is too small for sample_packing\"); set \
             `eval_sample_packing: false` or hold out more",
            val.len(),
            mp.bins_per_batch
        )));
    }
    Ok((rows, mp.bins_per_batch))
}

/// The plan over packed rows, and those rows (every epoch's bins, in order; the plan's
/// micro-batches index them). `samples` are the unpacked training samples.
///
/// - Epoch `e`: `torch.randperm(n)` seeded `shuffle_seed + e` (accelerate's seedable sampler),
///   packed into bins, cut to the sampler's length (`sampler_len`, seeded by the Trainer's
///   `set_seed`).
/// - Steps: GA micro-batches each, the epoch's last one shorter (HF), until the horizon:
///   `max_steps`, else Axolotl's estimate. HF runs at most ⌈horizon / ⌈len/GA⌉⌉ epochs, so a
///   run whose epochs come out short of `len` ends early, as there.
/// - An epoch shorter than `len` by an odd count leaves HF a last micro-batch that never
///   reaches an optimizer step of its own (its gradient joins the next epoch's first step);
///   here it is a step of one micro-batch (docs/ENGINE.md, "Packing").
pub fn plan(
    spec: &RunSpec,
    samples: &[Sample],
    pad_id: i64,
    max_steps: u64,
    shard: Shard,
) -> Result<(Plan, Vec<Sample>)> {
    if shard.size > 1 {
        return Err(EngineError::Data(format!(
            "data.packing under Axolotl's multipack sampler is reproduced on one process; \
             this run has {} (accelerate shards the packed batches across ranks)",
            shard.size
        )));
    }
    let mp = Multipack::of(spec);
    let lengths: Vec<usize> = samples.iter().map(|s| s.input_ids.len()).collect();
    let len = sampler_len(&mp, &lengths, spec.training.seed);
    if len == 0 {
        return Err(EngineError::Data(format!(
            "{} samples pack into fewer than {} bins of {} tokens: no micro-batch",
            samples.len(),
            mp.bins_per_batch,
            mp.capacity
        )));
    }
    let horizon = if max_steps > 0 {
        max_steps
    } else {
        estimate_steps(spec, &mp, &lengths, 1)
    };
    let ga = spec.batch.grad_accum_steps.max(1) as usize;
    let max_epochs = horizon.div_ceil(len.div_ceil(ga) as u64);
    let mut rows: Vec<Sample> = Vec::new();
    let mut windows: Vec<Window> = Vec::new();
    for epoch in 0..max_epochs {
        if windows.len() as u64 >= horizon {
            break;
        }
        let order = order::torch_randperm(samples.len(), spec.data.shuffle_seed + epoch);
        let mut batches = mp.batches(&order, &lengths);
        batches.truncate(len);
        let micro: Vec<Vec<usize>> = batches
            .iter()
            .map(|bins| {
                bins.iter()
                    .map(|bin| {
                        rows.push(mp.row(samples, bin, pad_id));
                        rows.len() - 1
                    })
                    .collect()
            })
            .collect();
        for chunk in micro.chunks(ga) {
            if windows.len() as u64 >= horizon {
                break;
            }
            windows.push(Window {
                epoch,
                micro_batches: chunk.to_vec(),
            });
        }
    }
    Ok((
        Plan {
            windows,
            total_steps: horizon,
        },
        rows,
    ))
}
