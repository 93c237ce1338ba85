//! Read training runs into one form, whoever wrote them.
//!
//! A [`Run`] is a loss curve (optimizer step, loss, lr, grad norm, tokens seen, epoch), the
//! weights the run left (an adapter or a full checkpoint, as files plus the adapter config)
//! and the precision it trained in, if recorded. Readers exist for:
//!
//! - tunebridge run directories (`run.toml`, `metrics.jsonl`, adapter files);
//! - Hugging Face Trainer outputs as Axolotl, Unsloth and TRL leave them (`trainer_state.json`
//!   in the folder or in its newest `checkpoint-*/`, adapter folders);
//! - TorchTune outputs (DiskLogger `logs/log_*.txt`, `epoch_N/` adapter and shard files);
//! - plain CSV and JSONL curves, and bare safetensors files or adapter folders.
//!
//! The format is detected from the files present ([`detect`]); a caller may force one.
//! Weight files are only located here, never read: `diff::weights` streams them.
//! Left out: TorchTune's pickled `adapter_model.pt` / `.bin` shards (reported as unsupported;
//! TorchTune writes a safetensors copy next to them) and TensorBoard event files.

mod curves;
mod error;
mod layout;
mod run;

pub use error::IngestError;
pub use layout::detect;
pub use run::{
    AdapterConfig, Curve, CurvePoint, EvalPoint, Format, ModelShape, Precision, Run, WeightOrigin,
    WeightSource,
};

use std::path::Path;

/// Read a run from a folder or file; `format` forces a layout instead of detecting it.
pub fn read_run(path: &Path, format: Option<Format>) -> Result<Run, IngestError> {
    if !path.exists() {
        return Err(IngestError::NotFound {
            path: path.to_path_buf(),
            what: "run folder or file".into(),
        });
    }
    let format = match format {
        Some(f) => f,
        None => detect(path)?,
    };
    layout::read(path, format)
}
