//! Errors of the engine: one enum, each variant saying what was wrong and where.
//!
//! Library code returns [`EngineError`]; the CLI wraps it with `anyhow` and prints the chain
//! with `{:#}`. Tensor errors from libtorch arrive as [`tch::TchError`] and are wrapped with the
//! tensor or file they concern, so "shape mismatch" always says which weight.

use std::path::{Path, PathBuf};

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its contents are not what the engine expects (bad JSON, a broken
    /// safetensors header, a dataset row without the needed columns).
    #[error("{}: {message}", path.display())]
    BadFile { path: PathBuf, message: String },
    /// The model named in the spec was not found; the message lists every place looked at.
    #[error("model `{name}` not found; looked in:\n{}", looked.iter().map(|p| format!("  - {}", p.display())).collect::<Vec<_>>().join("\n"))]
    ModelNotFound { name: String, looked: Vec<PathBuf> },
    /// The model's architecture (config.json `model_type`) is not one the engine implements.
    #[error("unsupported architecture `{model_type}` (supported: llama, mistral, qwen2, qwen3)")]
    UnsupportedArchitecture { model_type: String },
    /// A spec value the engine cannot run (QLoRA on this build, an unknown optimizer …).
    #[error("cannot run `{field}` = {value}: {reason}")]
    Unsupported {
        field: String,
        value: String,
        reason: String,
    },
    /// Every spec value the engine cannot run, all found at once before anything is loaded
    /// (`engine::support::check`); one line per value, each as [`EngineError::Unsupported`]
    /// prints it.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    UnsupportedFeatures(Vec<Unsupported>),
    /// A checkpoint tensor is missing or has the wrong shape or dtype.
    #[error("tensor `{name}`: {message}")]
    Tensor { name: String, message: String },
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The loss became NaN or infinite; the run stops and keeps its last good checkpoint.
    #[error("loss is {loss} at step {step}: stopping (last good checkpoint kept)")]
    NonFiniteLoss { step: u64, loss: f64 },
    /// Anything about the data: a tokenizer failure, a chat template error, no samples left.
    #[error("data: {0}")]
    Data(String),
    /// A multi-process run could not meet or talk: rendezvous, process group, collectives,
    /// or a world size the batch does not divide.
    #[error("distributed: {0}")]
    Distributed(String),
}

impl From<crate::engine::dist::DistError> for EngineError {
    fn from(e: crate::engine::dist::DistError) -> Self {
        EngineError::Distributed(e.to_string())
    }
}

impl EngineError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn bad_file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        EngineError::BadFile {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    pub fn tensor(name: impl Into<String>, message: impl Into<String>) -> Self {
        EngineError::Tensor {
            name: name.into(),
            message: message.into(),
        }
    }

    pub fn unsupported(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        EngineError::Unsupported {
            field: field.into(),
            value: format!("`{value}`"),
            reason: reason.into(),
        }
    }
}

/// One feature a spec uses that the engine does not run: the IR field as provenance keys it
/// (`optimizer.name`, `data.datasets.0.loader`), the value, and why, naming what is supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl Unsupported {
    pub fn new(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Unsupported {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// The same line as [`EngineError::Unsupported`]: ``cannot run `field` = `value`: reason``.
impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot run `{}` = `{}`: {}",
            self.field, self.value, self.reason
        )
    }
}

impl From<Unsupported> for EngineError {
    fn from(u: Unsupported) -> Self {
        EngineError::unsupported(u.field, u.value, u.reason)
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Read a whole file, naming it on failure.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))
}

/// Parse a JSON file, naming it on failure.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| EngineError::bad_file(path, e.to_string()))
}
