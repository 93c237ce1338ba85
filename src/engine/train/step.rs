//! One optimizer step: the window's micro-batches forward and backward under the loss
//! normalisation, then clip, AdamW and the step's metrics. Also the held-out eval loss.

use super::options::{ShardStats, StepMetrics};
use super::plan::Window;
use super::setup::Recipe;
use crate::engine::data::{self, Sample};
use crate::engine::dist::ReduceOp;
use crate::engine::error::{EngineError, Result};
use crate::engine::model::ModelForCausalLM;
use crate::engine::recompute::LayerResidency;
use crate::engine::{optim, recompute};
use crate::ir::{LossNormalization, LrReported};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
fn mem_peak() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The HF Trainer's `eval_loss`: the held-out samples in order, in batches of `batch`
/// (Axolotl's `eval_batch_size` defaults to the micro-batch), each batch's token-mean CE over
/// its shifted labels, then the mean over samples of their batch's loss (`evaluation_loop`
/// repeats each batch loss `batch_size` times). No dropout, no gradients. `flat`: TRL's
/// padding-free batches ([`data::flattens`]), one row each, so each batch counts once.
pub fn eval_loss(
    model: &ModelForCausalLM,
    samples: &[&Sample],
    batch: usize,
    pad_id: i64,
    device: Device,
    flat: bool,
    res: &mut dyn LayerResidency,
) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let (mut sum, mut n) = (0f64, 0usize);
    for chunk in samples.chunks(batch.max(1)) {
        let b = data::collate_as(flat, chunk, pad_id, device);
        let labels = shifted_labels(&b);
        let logits = match res.is_sharded() {
            true => recompute::forward_logits(model, &b.input_ids, b.docs.as_ref(), res)?,
            false => model.forward(&b.input_ids, b.docs.as_ref(), false),
        }
        .to_kind(Kind::Float);
        let v = logits.size().last().copied().unwrap_or(0);
        let ce = logits.view([-1, v]).cross_entropy_loss::<Tensor>(
            &labels.view([-1]),
            None,
            tch::Reduction::Sum,
            -100,
            0.0,
        );
        let mean = ce.double_value(&[]) / (b.label_tokens_shifted.max(1) as f64);
        let rows = if flat { 1 } else { chunk.len() };
        sum += mean * rows as f64;
        n += rows;
    }
    Ok(sum / n.max(1) as f64)
}

/// labels[..., 1:] then one −100 column: position i predicts token i+1 (no logit slicing).
fn shifted_labels(batch: &data::Batch) -> Tensor {
    let (b, t) = batch.labels.size2().expect("labels are (B, T)");
    Tensor::cat(
        &[
            batch.labels.narrow(1, 1, t - 1),
            Tensor::full([b, 1], -100, (Kind::Int64, batch.labels.device())),
        ],
        1,
    ) // (B, T)
}

impl Recipe {
    /// One optimizer step over `window`'s micro-batches.
    pub(super) fn train_step(&mut self, global_step: u64, window: &Window) -> Result<StepMetrics> {
        let t0 = Instant::now();
        let pad = self.tok.pad_id();
        let flat = data::flattens(&self.spec.data, self.flavour);
        let batches: Vec<data::Batch> = window
            .micro_batches
            .iter()
            .map(|mb| {
                let rows: Vec<&Sample> = mb.iter().map(|&i| &self.samples[i]).collect();
                data::collate_as(flat, &rows, pad, self.device)
            })
            .collect();
        let counts = [
            batches.iter().map(|b| b.label_tokens_shifted).sum::<i64>(),
            batches
                .iter()
                .map(|b| b.label_tokens_unshifted)
                .sum::<i64>(),
            batches.iter().map(|b| b.tokens).sum::<i64>(),
        ];
        // the step's counts over every rank: HF's gathered `num_items_in_batch`, TorchTune's
        // all-reduced `num_tokens` (docs of train/parallel.rs)
        let [n_shifted, n_unshifted, tokens] = match &self.dp {
            Some(dp) => dp.sum_counts(counts)?,
            None => counts,
        };
        let norm = self.spec.loss.normalization;
        let n_micro = batches.len() as f64;
        let mut running = Tensor::zeros([], (Kind::Float, self.device));
        for b in &batches {
            let n_mb = b.label_tokens_shifted;
            let scale = |sum: Tensor| match norm {
                // TorchTune: CEWithChunkedOutputLoss = Σ CE / n_shifted(mb); the recipe
                // multiplies by n_unshifted(mb) and scales the grads by 1/Σ n_unshifted later.
                LossNormalization::TokenWeightedUnshifted => {
                    if n_mb == 0 {
                        sum * 0.0
                    } else {
                        sum / (n_mb as f64) * (b.label_tokens_unshifted as f64)
                    }
                }
                // HF ForCausalLMLoss with num_items_in_batch = the window's shifted count.
                LossNormalization::TokenMeanOverStep => sum / (n_shifted.max(1) as f64),
                // HF without num_items_in_batch: each micro-batch's mean, ÷ the window's
                // micro-batch count (`current_gradient_accumulation_steps`).
                LossNormalization::MeanOfMicrobatchMeans => sum / (n_mb.max(1) as f64) / n_micro,
            };
            // forward → Σ CE (fp32) → scale → backward, by layer recomputation when asked;
            // packed rows take their positions and block-causal mask from `b.docs`
            let mut resident = recompute::Resident;
            let res: &mut dyn LayerResidency = match &mut self.full_shard {
                Some(fs) => fs,
                None => &mut resident,
            };
            let loss = recompute::forward_backward(
                &self.model,
                &b.input_ids,
                b.docs.as_ref(),
                &shifted_labels(b),
                self.recompute,
                &scale,
                res,
            )?;
            running += loss;
        }
        if let Some(dp) = &self.dp {
            // as DDP/FSDP reduce gradients, and the recipes their logged loss
            let op = match norm {
                LossNormalization::MeanOfMicrobatchMeans => ReduceOp::Avg,
                _ => ReduceOp::Sum,
            };
            dp.reduce_grads(&self.trainable, op)?;
            dp.reduce_in_place(&running, op)?;
        }
        let logged = match norm {
            LossNormalization::TokenWeightedUnshifted => {
                let scale = 1.0f32 / n_unshifted.max(1) as f32;
                optim::adamw::scale_grads(&self.trainable, scale);
                // running_loss.item() / num_tokens: a float32 reciprocal times the sum
                running.double_value(&[]) * f64::from(scale)
            }
            _ => running.double_value(&[]),
        };
        if !logged.is_finite() {
            // Leave the weights as the last good step made them.
            self.optimizer.zero_grad();
            return Err(EngineError::NonFiniteLoss {
                step: global_step,
                loss: logged,
            });
        }
        let grad_norm = self
            .optimizer
            .clip_grad_norm(self.spec.optimizer.max_grad_norm)?;
        let lr = self.schedule.lr_at(global_step);
        self.optimizer.step(lr)?;
        self.optimizer.zero_grad();
        let reported_lr = match self.spec.logging.lr_reported {
            LrReported::Next => self.schedule.base_lr * self.schedule.lambda(global_step),
            LrReported::Applied => lr,
        };
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        Ok(StepMetrics {
            step: global_step,
            epoch: window.epoch,
            loss: logged,
            lr: reported_lr,
            grad_norm,
            tokens,
            label_tokens: n_shifted,
            tokens_per_sec: tokens as f64 / secs,
            mem_peak: match self.device {
                // peak bytes allocated by libtorch's CUDA caching allocator
                Device::Cuda(i) => crate::engine::cuda_mem::allocator_stats(i)
                    .map(|s| s.allocated_peak.max(0) as u64),
                _ => mem_peak(),
            },
            sharded: self.full_shard.as_mut().map(|fs| ShardStats {
                resident_bytes: fs.resident_bytes(),
                layers_gathered_max: fs.take_peak(),
            }),
        })
    }
}
