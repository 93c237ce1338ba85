//! Errors of writing report files.

use std::path::PathBuf;

/// A report file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Plot(#[from] crate::diff::plot::PlotError),
    /// Writing Parquet failed.
    #[error("{}: {message}", path.display())]
    Table { path: PathBuf, message: String },
}
