//! Errors from reading runs. Each names the file, and the line where one applies.

use std::path::PathBuf;

/// What went wrong while reading a run, curve or weight file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The file or folder could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line or document does not have the expected shape.
    #[error("{}{}: {message}", path.display(), line_suffix(*line))]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("{}{}: {field} is {value} at step {step} (a curve must be finite; the run diverged or the log is corrupt)", path.display(), line_suffix(*line))]
    NonFinite {
        path: PathBuf,
        line: Option<usize>,
        step: u64,
        field: &'static str,
        value: f64,
    },
    /// The last line stops in the middle of a record: the file was cut off while written.
    #[error("{}:{line}: truncated record (the file ends in the middle of a line: was the run still writing it?)", path.display())]
    Truncated { path: PathBuf, line: usize },
    /// The file holds no curve points.
    #[error("{}: no curve points ({what})", path.display())]
    Empty { path: PathBuf, what: String },
    /// A file the format requires is not there.
    #[error("{}: {what} not found", path.display())]
    NotFound { path: PathBuf, what: String },
    /// The file is of a kind tunebridge does not read.
    #[error("{}: {message}", path.display())]
    Unsupported { path: PathBuf, message: String },
    /// Nothing in the folder looks like a run of a known format.
    #[error("{}: not a run tunebridge recognises (looked for {looked_for}); pass --format to choose one", path.display())]
    UnknownFormat { path: PathBuf, looked_for: String },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

impl IngestError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IngestError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn parse(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        IngestError::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}
