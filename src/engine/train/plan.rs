//! The data schedule of a whole run: the micro-batches of every optimizer step.

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

/// Build the plan as the framework's data loader and loop would walk it.
pub fn plan(spec: &RunSpec, flavour: Flavour, n_samples: usize, max_steps: u64) -> Result<Plan> {
    let mb = spec.batch.micro_batch_per_device.max(1) as usize;
    let ga = spec.batch.grad_accum_steps.max(1) as usize;
    let d = &spec.data;
    let batches_per_epoch = match flavour {
        Flavour::TorchTune => n_samples / mb, // drop_last=True
        _ => n_samples.div_ceil(mb),          // dataloader_drop_last=False
    };
    if batches_per_epoch == 0 {
        return Err(EngineError::Data(format!(
            "{n_samples} samples make no micro-batch of {mb}"
        )));
    }
    let epoch_micro_batches = |epoch: u64| -> Vec<Vec<usize>> {
        let order = data::epoch_order(n_samples, d.shuffle, d.shuffle_seed, epoch);
        order
            .chunks(mb)
            .take(batches_per_epoch)
            .map(|c| c.to_vec())
            .collect()
    };
    let mut windows = Vec::new();
    let total_steps;
    match flavour {
        Flavour::TorchTune => {
            // steps_per_epoch = len(dataloader) // GA, capped by max_steps_per_epoch;
            // leftover micro-batches carry into the next epoch's first step (v0.6.1).
            let mut per_epoch = (batches_per_epoch / ga) as u64;
            if spec.training.max_steps_per_epoch > 0 {
                per_epoch = per_epoch.min(spec.training.max_steps_per_epoch);
            }
            let epochs = spec.training.epochs.ceil() as u64;
            total_steps = epochs * per_epoch;
            let mut carry: Vec<Vec<usize>> = Vec::new();
            for epoch in 0..epochs {
                let mbs = epoch_micro_batches(epoch);
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
        }
        Flavour::Axolotl | Flavour::Unsloth => {
            // HF Trainer: an optimizer step every GA micro-batches and at the end of an epoch.
            let per_epoch = batches_per_epoch.div_ceil(ga) as u64;
            let horizon = if max_steps > 0 {
                max_steps
            } else {
                match flavour {
                    // Axolotl passes its own estimate as max_steps:
                    // ceil(len(dataset) · epochs / (micro_batch · GA · devices)).
                    Flavour::Axolotl => {
                        let global = spec.batch.global_batch.max(1) as f64;
                        ((n_samples as f64) * spec.training.epochs / global).ceil() as u64
                    }
                    _ => ((batches_per_epoch / ga).max(1) as f64 * spec.training.epochs).ceil()
                        as u64,
                }
            };
            total_steps = horizon;
            let mut epoch = 0;
            while (windows.len() as u64) < horizon {
                let mbs = epoch_micro_batches(epoch);
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
        }
    }
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
