//! The run: setup, the loop over optimizer steps with its metrics, periodic evals
//! (`training.eval_every_n_steps`, `eval_on_start`) and checkpoints, the final eval and save.

use super::options::{BatchOverRanks, RunOptions, RunSummary};
use super::setup::{setup, Recipe};
use super::step::eval_loss;
use crate::engine::checkpoint;
use crate::engine::data::order::dataloader_iter_draw;
use crate::engine::data::Sample;
use crate::engine::error::{EngineError, Result};
use crate::ir::{Origin, Resolved};
use std::io::Write;
use std::path::PathBuf;

/// Run a spec end to end. On failure the run directory gets a `FAILED` file with the reason.
pub fn run(resolved: &Resolved, opts: &RunOptions) -> Result<RunSummary> {
    let mut resolved = resolved.clone();
    if let Some(m) = opts.max_steps {
        resolved.spec.training.max_steps = m;
        resolved
            .provenance
            .set("training.max_steps", Origin::explicit("--max-steps"));
    }
    if let Some(d) = &opts.compute_dtype {
        resolved.spec.precision.compute_dtype = *d;
        resolved
            .provenance
            .set("precision.compute_dtype", Origin::explicit("--dtype"));
    }
    if let Some(o) = &opts.output {
        resolved.spec.checkpoint.output_dir = o.display().to_string();
        resolved
            .provenance
            .set("checkpoint.output_dir", Origin::explicit("--output"));
    }
    if let Some(w) = &opts.world {
        match opts.batch_over_ranks {
            BatchOverRanks::PerDevice => per_device_over_ranks(&mut resolved, w.size),
            BatchOverRanks::KeepGlobal => spread_over_ranks(&mut resolved, w.size)?,
        }
    }
    // rank 0 alone writes the run directory; the launcher marks it FAILED for other ranks
    let main = opts.world.as_ref().is_none_or(|w| w.rank == 0);
    let output = PathBuf::from(&resolved.spec.checkpoint.output_dir);
    std::fs::create_dir_all(&output).map_err(|e| EngineError::io(&output, e))?;
    let metrics_path = output.join("metrics.jsonl");
    if main && opts.resume_from.is_none() && metrics_path.exists() {
        return Err(EngineError::bad_file(
            &output,
            "already holds a run (metrics.jsonl); choose another --output or resume",
        ));
    }
    if main {
        let _ = std::fs::remove_file(output.join("FAILED"));
    }
    let result = setup(&resolved, opts, &output).and_then(|mut r| {
        if main {
            let path = output.join("run.toml");
            std::fs::write(&path, resolved.to_toml(true)).map_err(|e| EngineError::io(&path, e))?;
        }
        r.train(opts)
    });
    if let (Err(e), true) = (&result, main) {
        let _ = std::fs::write(output.join("FAILED"), format!("{e}\n"));
    }
    result
}

/// Run on `world` data-parallel ranks as the framework's launcher would run the same config:
/// every rank takes the per-device micro-batch and accumulation, so the global batch grows with
/// the world (Axolotl's and TRL's `per_device_train_batch_size`, TorchTune's `batch_size`).
fn per_device_over_ranks(resolved: &mut Resolved, world: usize) {
    let b = &mut resolved.spec.batch;
    let world = world as u32;
    if b.devices == world {
        return;
    }
    let planned = (b.devices, b.global_batch);
    b.devices = world;
    b.global_batch = b.micro_batch_per_device * b.grad_accum_steps * world;
    let rule = format!(
        "micro batch {} × accumulation {} × {world} ranks (the config's per-device batch on \
         every rank; the spec planned {} device(s), global batch {})",
        b.micro_batch_per_device, b.grad_accum_steps, planned.0, planned.1
    );
    for field in ["batch.devices", "batch.global_batch"] {
        resolved.provenance.set(
            field,
            Origin::Derived {
                from: vec!["--nproc-per-node".into()],
                rule: rule.clone(),
            },
        );
    }
}

/// Run on `world` data-parallel ranks with the spec's global batch: the per-device micro-batch
/// stays and the accumulation absorbs the change, as `port --devices` plans it. A global batch
/// the ranks cannot share evenly is an error naming the numbers.
fn spread_over_ranks(resolved: &mut Resolved, world: usize) -> Result<()> {
    let b = &resolved.spec.batch;
    let per_step = b.micro_batch_per_device as usize * world;
    if (b.global_batch as usize) % per_step != 0 {
        return Err(EngineError::Distributed(format!(
            "{world} ranks cannot share the global batch: batch.global_batch {} is not a multiple \
             of batch.micro_batch_per_device {} × {world} ranks; choose a world size that \
             divides {} or change the micro-batch",
            b.global_batch,
            b.micro_batch_per_device,
            b.global_batch / b.micro_batch_per_device.max(1)
        )));
    }
    crate::translate::retarget_devices(resolved, world as u32);
    Ok(())
}

impl Recipe {
    fn train(&mut self, opts: &RunOptions) -> Result<RunSummary> {
        let mut start = 0usize;
        if let Some(ck) = &opts.resume_from {
            start = self.resume(ck)? as usize;
        }
        let end = match opts.stop_after {
            Some(s) => (s as usize).min(self.plan.windows.len()),
            None => self.plan.windows.len(),
        };
        let metrics_path = self.output.join("metrics.jsonl");
        let mut metrics = Metrics::open(&metrics_path, self.is_main())?;
        let bar = (opts.progress && self.is_main()).then(|| {
            let b = indicatif::ProgressBar::new(self.plan.windows.len() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
                )
                .expect("valid template"),
            );
            b.set_position(start as u64);
            b
        });
        let save_every = self.spec.checkpoint.save_steps;
        let eval_every = self.spec.training.eval_every_n_steps;
        let mut losses = Vec::new();
        let mut last_eval: Option<(u64, f64)> = None;
        if start == 0 && self.spec.training.eval_on_start && !self.val.is_empty() {
            // HF `eval_on_start`: evaluated before the first step, logged at step 0
            let loss = self.evaluate(0, 0, &mut metrics)?;
            last_eval = Some((0, loss));
        }
        for step_idx in start..end {
            let window = self.plan.windows[step_idx].clone();
            if step_idx == 0 || self.plan.windows[step_idx - 1].epoch != window.epoch {
                dataloader_iter_draw(); // the epoch's `iter(train_dataloader)`
            }
            let global_step = step_idx as u64 + 1;
            let m = match self.train_step(global_step, &window) {
                Ok(m) => m,
                Err(e @ EngineError::NonFiniteLoss { .. }) => {
                    // Keep the last good state as a checkpoint to inspect or resume from.
                    let last_good = global_step - 1;
                    if last_good > 0 && !checkpoint::dir_for(&self.output, last_good).is_dir() {
                        self.save_checkpoint(last_good)?;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            losses.push(m.loss);
            metrics.write(&serde_json::to_value(&m).expect("metrics serialise"))?;
            // HF DefaultFlowCallback: evaluate when global_step % eval_steps == 0
            if eval_every > 0 && global_step % eval_every == 0 && !self.val.is_empty() {
                let loss = self.evaluate(global_step, window.epoch, &mut metrics)?;
                last_eval = Some((global_step, loss));
            }
            if let Some(b) = &bar {
                b.set_position(global_step);
                let eval = last_eval.map_or(String::new(), |(_, l)| format!("  eval {l:.4}"));
                b.set_message(format!(
                    "loss {:.4}{eval}  {:.0} tok/s",
                    m.loss, m.tokens_per_sec
                ));
            }
            let epoch_end = self
                .plan
                .windows
                .get(step_idx + 1)
                .is_none_or(|w| w.epoch != window.epoch);
            let due = if save_every > 0 {
                global_step % save_every == 0
            } else {
                epoch_end
            };
            if due && (global_step as usize) < self.plan.windows.len() {
                self.save_checkpoint(global_step)?;
            }
        }
        if let Some(b) = &bar {
            b.finish();
        }
        let done = end as u64;
        let mut eval = None;
        if end == self.plan.windows.len() && !self.val.is_empty() {
            // the final eval, unless the last step was just evaluated
            eval = match last_eval {
                Some((s, loss)) if s == done => Some(loss),
                _ => {
                    let epoch = self.plan.windows.last().map_or(0, |w| w.epoch);
                    Some(self.evaluate(done, epoch, &mut metrics)?)
                }
            };
        }
        if end == self.plan.windows.len() {
            self.save_final()?;
        } else {
            self.save_checkpoint(done)?;
        }
        Ok(RunSummary {
            output: self.output.clone(),
            steps: done,
            final_loss: losses.last().copied().unwrap_or(f64::NAN),
            losses,
            flavour: self.flavour,
            eval_loss: eval,
        })
    }
}

impl Recipe {
    /// The eval loss over the held-out rows, in batches of the training micro-batch (Axolotl's
    /// `eval_batch_size` default; packed rows: the sampler's bins per batch), appended to `metrics.jsonl` as
    /// `{"step", "epoch", "eval_loss", "eval_samples"}`.
    fn evaluate(&mut self, step: u64, epoch: u64, metrics: &mut Metrics) -> Result<f64> {
        dataloader_iter_draw(); // HF `evaluation_loop` iterates the eval loader
        let rows: Vec<&Sample> = self.val.iter().collect();
        let mut resident = crate::engine::recompute::Resident;
        let res: &mut dyn crate::engine::recompute::LayerResidency = match &mut self.full_shard {
            Some(fs) => fs,
            None => &mut resident,
        };
        let loss = eval_loss(
            &self.model,
            &rows,
            self.eval_batch,
            self.tok.pad_id(),
            self.device,
            crate::engine::data::flattens(&self.spec.data, self.flavour),
            res,
        )?;
        let line = serde_json::json!({
            "step": step,
            "epoch": epoch,
            "eval_loss": loss,
            "eval_samples": rows.len(),
        });
        metrics.write(&line)?;
        Ok(loss)
    }

    /// Rank 0 of a multi-process run, or a single process: the one that writes files.
    pub(super) fn is_main(&self) -> bool {
        self.dp.as_ref().is_none_or(|d| d.is_main())
    }
}

/// `metrics.jsonl`, appended one JSON object per line; a sink on ranks other than 0.
struct Metrics {
    file: Option<(std::fs::File, PathBuf)>,
}

impl Metrics {
    fn open(path: &std::path::Path, main: bool) -> Result<Self> {
        if !main {
            return Ok(Metrics { file: None });
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| EngineError::io(path, e))?;
        Ok(Metrics {
            file: Some((f, path.to_path_buf())),
        })
    }

    fn write(&mut self, line: &serde_json::Value) -> Result<()> {
        if let Some((f, path)) = &mut self.file {
            writeln!(f, "{line}").map_err(|e| EngineError::io(&*path, e))?;
        }
        Ok(())
    }
}
