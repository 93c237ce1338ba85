//! Reports of a comparison: a terminal summary, JSON, Markdown, a self-contained HTML page
//! (the SVG plot inline), the PNG/SVG plots and CSV tables.
//!
//! One model, one renderer per format (as ripgrep's printers): [`model::Report`] is built once
//! from a [`Comparison`](crate::diff::Comparison) and holds every formatted number, the
//! summaries and the tables ([`table::Table`]); `terminal`, `markdown` and `html` only lay it
//! out. JSON is the serialized `Comparison` itself and CSV the full-precision rows.
//!
//! [`write_report`] writes everything into one folder:
//! `report.md`, `report.html`, `curves.png`, `curves.svg`, `curves.csv`, `weights.csv`,
//! `diff.json` (and `curves.parquet` with the `tables` feature).

mod csv;
pub(crate) mod error;
mod files;
mod html;
mod json;
mod markdown;
pub mod model;
pub mod table;
mod terminal;
mod text;

pub use csv::{curves_csv, weights_csv};
pub use error::ReportError;
pub use files::write_report;
pub use html::html;
pub use json::json;
pub use markdown::markdown;
pub use model::{weight_rows, WeightRow};
pub use terminal::terminal;

#[cfg(test)]
mod tests;
