//! The frameworks tunebridge ports between, and what a writer is given and gives back.
//!
//! A leaf module: every reader and writer imports these from here, and `translate/mod.rs`
//! re-exports them for the rest of the crate.

use std::fmt;
use std::path::Path;

use super::report::PortReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Axolotl,
    Torchtune,
    Unsloth,
    /// tunebridge's own `run.toml`.
    #[value(name = "ir")]
    Ir,
}

impl Framework {
    pub fn name(self) -> &'static str {
        match self {
            Framework::Axolotl => "axolotl",
            Framework::Torchtune => "torchtune",
            Framework::Unsloth => "unsloth",
            Framework::Ir => "ir",
        }
    }

    pub const PORTABLE: [Framework; 3] =
        [Framework::Axolotl, Framework::Torchtune, Framework::Unsloth];

    /// Guess the format of an input from its name and contents.
    pub fn detect(path: &Path, text: &str) -> Option<Framework> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("py") | Some("ipynb") => return Some(Framework::Unsloth),
            Some("toml") => return Some(Framework::Ir),
            _ => {}
        }
        if text.contains("_component_") {
            Some(Framework::Torchtune)
        } else if text.contains("base_model") {
            Some(Framework::Axolotl)
        } else if text.contains("FastLanguageModel")
            || text.contains("FastModel")
            || text.contains("import unsloth")
        {
            Some(Framework::Unsloth)
        } else if text.contains("[adapter]") && text.contains("[model]") {
            Some(Framework::Ir)
        } else {
            None
        }
    }

    /// File name a written config gets by default.
    pub fn default_file_name(self) -> &'static str {
        match self {
            Framework::Axolotl => "axolotl.yaml",
            Framework::Torchtune => "torchtune.yaml",
            Framework::Unsloth => "train_unsloth.py",
            Framework::Ir => "run.toml",
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Options for writing a target format.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Turn off optimisations that change numerics (fused kernels, …) for strict parity.
    pub strict: bool,
    /// File name of the source, for comments in the output.
    pub source_name: String,
}

/// A written config.
#[derive(Debug, Clone)]
pub struct Written {
    /// The config text.
    pub text: String,
    /// How to run it (`axolotl train x.yaml`, `tune run … --config x.yaml`).
    pub command: String,
    pub report: PortReport,
}
