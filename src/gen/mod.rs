//! Generating configs: `new` (a starting config from a built-in template per method and
//! model family) and `gen` (a template expanded over `--set`, `--grid` and `--zip` values,
//! every point validated through the IR and written in one or more formats).
//!
//! A template is a `run.toml` or a config in any of the three formats, with minijinja
//! expressions (`{{ lr }}`). A `--set`/`--grid` key is either a variable the template uses
//! or an IR field path (`adapter.rank`) applied to the parsed spec; anything else is an
//! error that names it.

mod generate;
pub mod grid;
pub mod new;
mod template;

pub use generate::{extension, generate, Generated};
pub use template::{apply_overrides, environment, Template};
