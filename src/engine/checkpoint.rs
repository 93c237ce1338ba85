//! Checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! `checkpoint-<step>/` holds the trained weights (PEFT adapter files, or `model.safetensors`
//! for a full fine-tune), `optimizer.safetensors` (the optimizer's state: AdamW moments, or bitsandbytes'
//! quantised states and absmax, and the step) and
//! `trainer_state.json` (the optimizer step reached, the world size, the epochs done). The data
//! order is a pure function of the spec (see `train::plan`), so the step number is all the data
//! loader needs; dropout's RNG stream is advanced on resume by replaying the draws of the
//! skipped steps. On another world size the frameworks differ, and so does the resume:
//! TorchTune restarts at the next epoch and renumbers the steps (`global_step = epochs_run ×
//! steps_per_epoch` of the new world); the HF Trainer keeps the step count and skips that many
//! steps of the new world's epoch (`_inner_training_loop`, `steps_trained_in_current_epoch`).

use super::error::{read_json, EngineError, Result};
use super::io;
use crate::ir::Method;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub global_step: u64,
    /// The run's flavour, to refuse resuming under different semantics.
    pub flavour: String,
    /// `adapter.method` of the run.
    pub method: Method,
    /// Data-parallel ranks of the run that wrote it.
    #[serde(default = "one_rank")]
    pub world_size: usize,
    /// Whole epochs done when the step ends an epoch (TorchTune resumes by epochs).
    #[serde(default)]
    pub epochs_completed: Option<u64>,
}

fn one_rank() -> usize {
    1
}

pub fn dir_for(output: &Path, step: u64) -> PathBuf {
    output.join(format!("checkpoint-{step}"))
}

/// Write the state and optimizer files into an existing checkpoint folder.
pub fn write_state(
    dir: &Path,
    state: &TrainerState,
    optimizer: &[(String, tch::Tensor)],
) -> Result<()> {
    io::write_safetensors(&dir.join("optimizer.safetensors"), optimizer)?;
    let path = dir.join("trainer_state.json");
    let text = serde_json::to_string_pretty(state).expect("state serialises");
    std::fs::write(&path, text + "\n").map_err(|e| EngineError::io(&path, e))
}

pub fn read_state(dir: &Path) -> Result<TrainerState> {
    read_json(&dir.join("trainer_state.json"))
}

/// The newest `checkpoint-<n>` folder of a run directory.
pub fn latest(output: &Path) -> Option<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(output).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("checkpoint-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            if e.path().join("trainer_state.json").is_file()
                && best.as_ref().is_none_or(|(b, _)| n > *b)
            {
                best = Some((n, e.path()));
            }
        }
    }
    best.map(|(_, p)| p)
}

/// Keep at most `limit` checkpoints (0 = all), removing the oldest.
pub fn prune(output: &Path, limit: u32) {
    if limit == 0 {
        return;
    }
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(output)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e
                        .file_name()
                        .to_string_lossy()
                        .strip_prefix("checkpoint-")?
                        .parse::<u64>()
                        .ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    while found.len() > limit as usize {
        let (_, p) = found.remove(0);
        let _ = std::fs::remove_dir_all(p);
    }
}
