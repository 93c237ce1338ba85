//! Saving the run's weights and checkpoints, and resuming from one.

use super::plan::Window;
use super::setup::Recipe;
use crate::engine::checkpoint::{self, TrainerState};
use crate::engine::data::order::dataloader_iter_draw;
use crate::engine::error::{EngineError, Result};
use crate::engine::flavour::Flavour;
use crate::engine::lora;
use crate::engine::model::LayerLinear;
use std::path::Path;
use tch::Tensor;

impl Recipe {
    /// Weights of the run: the PEFT adapter, or the full model as HF safetensors.
    fn save_weights(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
        match &self.lora {
            Some(ls) => lora::save_peft(&self.model, ls, &self.spec.model.base, dir),
            None => {
                let params: Vec<(String, Tensor)> = self.model.named_parameters();
                crate::engine::io::write_safetensors(&dir.join("model.safetensors"), &params)?;
                for f in [
                    "config.json",
                    "generation_config.json",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "special_tokens_map.json",
                ] {
                    let src = self.model_dir.join(f);
                    if src.is_file() {
                        std::fs::copy(&src, dir.join(f)).map_err(|e| EngineError::io(&src, e))?;
                    }
                }
                Ok(())
            }
        }
    }

    pub(super) fn save_checkpoint(&self, step: u64) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        let dir = checkpoint::dir_for(&self.output, step);
        self.save_weights(&dir)?;
        checkpoint::write_state(
            &dir,
            &TrainerState {
                global_step: step,
                flavour: self.flavour.name().into(),
                method: self.spec.adapter.method,
                world_size: self.world_size(),
                epochs_completed: self.epochs_completed(step),
            },
            &self.optimizer.state_tensors(),
        )?;
        checkpoint::prune(&self.output, self.spec.checkpoint.save_total_limit);
        Ok(())
    }

    pub(super) fn save_final(&self) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        self.save_weights(&self.output)
    }

    /// Load weights and optimizer state from a checkpoint; returns the step it reached.
    pub(super) fn resume(&mut self, dir: &Path) -> Result<u64> {
        let state = checkpoint::read_state(dir)?;
        if state.flavour != self.flavour.name() || state.method != self.spec.adapter.method {
            return Err(EngineError::bad_file(
                dir,
                format!(
                    "checkpoint of a {} {} run cannot resume a {} {} run",
                    state.flavour,
                    state.method,
                    self.flavour.name(),
                    self.spec.adapter.method
                ),
            ));
        }
        let _guard = tch::no_grad_guard();
        let weights = match &self.lora {
            Some(_) => crate::engine::io::read_safetensors(&dir.join("adapter_model.safetensors"))?
                .into_iter()
                .map(|(k, v)| (k.trim_start_matches("base_model.model.").to_string(), v))
                .collect::<indexmap::IndexMap<_, _>>(),
            None => crate::engine::io::read_safetensors(&dir.join("model.safetensors"))?,
        };
        for (name, mut param) in self.optimizer.named_params() {
            let src = weights.get(&name).ok_or_else(|| {
                EngineError::tensor(&name, format!("missing from {}", dir.display()))
            })?;
            param.f_copy_(&src.f_to_device(param.device())?.f_to_kind(param.kind())?)?;
        }
        let opt = crate::engine::io::read_safetensors(&dir.join("optimizer.safetensors"))?;
        self.optimizer.load_state(&opt)?;
        let step = match (self.flavour, state.epochs_completed) {
            // TorchTune: the next epoch, its first step numbered in this world's epochs
            (Flavour::TorchTune, Some(done)) if state.world_size != self.world_size() => {
                self.plan.windows.iter().filter(|w| w.epoch < done).count() as u64
            }
            _ => state.global_step,
        };
        if step as usize > self.plan.windows.len() {
            return Err(EngineError::bad_file(
                dir,
                "checkpoint is past the end of this run",
            ));
        }
        let skipped = self.plan.windows[..step as usize].to_vec();
        self.replay_dropout(&skipped);
        Ok(step)
    }

    /// Data-parallel ranks of this run.
    fn world_size(&self) -> usize {
        self.dp.as_ref().map_or(1, |d| d.world.size)
    }

    /// Whole epochs done after `step` when it is the last step of its epoch.
    fn epochs_completed(&self, step: u64) -> Option<u64> {
        let w = &self.plan.windows;
        let this = w.get((step as usize).checked_sub(1)?)?;
        let next = w.get(step as usize);
        next.is_none_or(|n| n.epoch != this.epoch)
            .then_some(this.epoch + 1)
    }

    /// Replay the RNG draws LoRA dropout made in the windows a resumed run skips, and the
    /// data loaders' own draws between them (each epoch's and each evaluation's
    /// `iter(DataLoader)`), so the generator is where the uninterrupted run had it.
    fn replay_dropout(&self, windows: &[Window]) {
        let Some(ls) = &self.lora else { return };
        if ls.dropout <= 0.0 || windows.is_empty() {
            return;
        }
        let cfg = &self.model.config;
        let c = cfg.hidden_size;
        let evals = !self.val.is_empty();
        let eval_every = self.spec.training.eval_every_n_steps;
        if evals && self.spec.training.eval_on_start {
            dataloader_iter_draw();
        }
        for (i, w) in windows.iter().enumerate() {
            if i == 0 || windows[i - 1].epoch != w.epoch {
                dataloader_iter_draw();
            }
            for mb in &w.micro_batches {
                let t = mb
                    .iter()
                    .map(|&s| self.samples[s].input_ids.len())
                    .max()
                    .unwrap_or(0) as i64;
                let b = mb.len() as i64;
                for _layer in 0..cfg.num_hidden_layers {
                    // in forward order, each LoRA'd linear draws one mask the shape of its input
                    for &m in LayerLinear::of(cfg) {
                        if ls.target_modules.iter().any(|target| target == m.name()) {
                            let (d_in, _, _) = m.dims(cfg, cfg.head_dim);
                            let mut noise = Tensor::empty([b, t, d_in], (ls.kind, self.device));
                            let _ = noise.bernoulli_float_(1.0 - ls.dropout);
                        }
                    }
                }
                if ls.target_modules.iter().any(|m| m == "lm_head") && !self.model.has_tied_head() {
                    let mut noise = Tensor::empty([b, t, c], (ls.kind, self.device));
                    let _ = noise.bernoulli_float_(1.0 - ls.dropout);
                }
            }
            if evals && eval_every > 0 && (i as u64 + 1) % eval_every == 0 {
                dataloader_iter_draw();
            }
        }
    }
}
