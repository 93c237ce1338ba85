//! The data schedule of a whole run: the micro-batches of every optimizer step.

use super::shard::{self, Shard};
use crate::engine::data;
use crate::engine::error::{EngineError, Result};
use crate::engine::flavour::Flavour;
use crate::ir::RunSpec;

/// The samples of one optimizer step, as micro-batches.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub epoch: u64,
    pub micro_batches: Vec<Vec<usize>>,
}

/// The whole run's data schedule: every optimizer step's micro-batches, derived from the
/// spec alone (so a resumed run recomputes it and skips what was done).
pub struct Plan {
    pub windows: Vec<Window>,
    /// The schedule horizon (`num_training_steps`).
    pub total_steps: u64,
}

/// Build the plan as the framework's data loader and loop would walk it, for data-parallel
/// rank `shard` (its share of each epoch: `shard::micro_batches`).
pub fn plan(
    spec: &RunSpec,
    flavour: Flavour,
    n_samples: usize,
    max_steps: u64,
    shard: Shard,
) -> Result<Plan> {
    let mb = spec.batch.micro_batch_per_device.max(1) as usize;
    let order: Vec<usize> = (0..n_samples).collect();
    // the count does not depend on the order, only on the sizes
    let batches_per_epoch = shard::micro_batches(&order, mb, flavour, shard).len();
    if batches_per_epoch == 0 {
        return Err(EngineError::Data(format!(
            "{n_samples} samples make no micro-batch of {mb}"
        )));
    }
    let loader = Loader {
        spec,
        n_samples,
        mb,
        ga: spec.batch.grad_accum_steps.max(1) as usize,
        batches_per_epoch,
        flavour,
        shard,
    };
    let (mut windows, total_steps) = match flavour {
        Flavour::TorchTune => torchtune_windows(&loader),
        Flavour::Axolotl | Flavour::Unsloth => hf_windows(&loader, max_steps),
    };
    // TorchTune has no max_steps; an explicit one (`--max-steps`) stops the run and, as in
    // the HF stacks, becomes the schedule's horizon.
    if max_steps > 0 && flavour == Flavour::TorchTune {
        windows.truncate(max_steps as usize);
        return Ok(Plan {
            windows,
            total_steps: max_steps,
        });
    }
    Ok(Plan {
        windows,
        total_steps,
    })
}

/// The data loader as the loop sees it: `mb` samples a micro-batch, `ga` micro-batches a
/// window, `batches_per_epoch` micro-batches an epoch.
struct Loader<'a> {
    spec: &'a RunSpec,
    n_samples: usize,
    mb: usize,
    ga: usize,
    batches_per_epoch: usize,
    flavour: Flavour,
    shard: Shard,
}

impl Loader<'_> {
    /// This rank's micro-batches of `epoch`, in the epoch's sample order.
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let d = &self.spec.data;
        let order = data::epoch_order(self.n_samples, d.shuffle, d.shuffle_seed, epoch);
        shard::micro_batches(&order, self.mb, self.flavour, self.shard)
    }
}

/// TorchTune 0.6.1: steps_per_epoch = len(dataloader) // GA, capped by max_steps_per_epoch;
/// leftover micro-batches carry into the next epoch's first step. Returns the windows and the
/// schedule horizon.
fn torchtune_windows(loader: &Loader) -> (Vec<Window>, u64) {
    let (spec, ga) = (loader.spec, loader.ga);
    let mut per_epoch = (loader.batches_per_epoch / ga) as u64;
    if spec.training.max_steps_per_epoch > 0 {
        per_epoch = per_epoch.min(spec.training.max_steps_per_epoch);
    }
    let epochs = spec.training.epochs.ceil() as u64;
    let mut windows = Vec::new();
    let mut carry: Vec<Vec<usize>> = Vec::new();
    for epoch in 0..epochs {
        let mbs = loader.epoch(epoch);
        for (idx, b) in mbs.into_iter().enumerate() {
            carry.push(b);
            if (idx + 1) % ga == 0 {
                windows.push(Window {
                    epoch,
                    micro_batches: std::mem::take(&mut carry),
                });
            }
            let cap = spec.training.max_steps_per_epoch;
            if cap > 0 && ((idx + 1) / ga) as u64 == cap {
                break;
            }
        }
    }
    (windows, epochs * per_epoch)
}

/// HF Trainer: an optimizer step every GA micro-batches and at the end of an epoch, until
/// the horizon. Returns the windows and the horizon.
fn hf_windows(loader: &Loader, max_steps: u64) -> (Vec<Window>, u64) {
    let (spec, ga) = (loader.spec, loader.ga);
    let per_epoch = loader.batches_per_epoch.div_ceil(ga) as u64;
    let horizon = if max_steps > 0 {
        max_steps
    } else {
        match loader.flavour {
            // Axolotl passes its own estimate as max_steps:
            // ceil(len(dataset) · epochs / (micro_batch · GA · devices)).
            Flavour::Axolotl => {
                let global = spec.batch.global_batch.max(1) as f64;
                ((loader.n_samples as f64) * spec.training.epochs / global).ceil() as u64
            }
            _ => {
                ((loader.batches_per_epoch / ga).max(1) as f64 * spec.training.epochs).ceil() as u64
            }
        }
    };
    let mut windows = Vec::new();
    let mut epoch = 0;
    while (windows.len() as u64) < horizon {
        let mbs = loader.epoch(epoch);
        for chunk in mbs.chunks(ga) {
            if (windows.len() as u64) >= horizon {
                break;
            }
            windows.push(Window {
                epoch,
                micro_batches: chunk.to_vec(),
            });
        }
        epoch += 1;
        if per_epoch == 0 {
            break;
        }
    }
    (windows, horizon)
}
