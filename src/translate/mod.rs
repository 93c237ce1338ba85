//! Porting: read any of the three formats into the IR, write the IR into any of them, and
//! report what became of every field.
//!
//! Each framework module has `read` (text → [`Parsed`]) and `write` (IR → [`Written`]). The
//! data that drives them lives in `translators/<framework>/` and is compiled into the binary
//! (see [`data`]), so the tool runs from anywhere.

pub mod axolotl;
pub mod data;
pub mod defaults;
pub mod emitter;
pub mod families;
pub mod node;
pub mod reader;
pub mod report;
pub mod table;
pub mod torchtune;
pub mod unsloth;
pub mod yaml;
pub mod yaml_out;

pub use reader::{Parsed, ReadError};
pub use report::{PortReport, Status};

use crate::diag::{Diagnostic, Source};
use crate::ir::{validate, Origin, Resolved, Strategy};
use std::fmt;
use std::path::Path;

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

/// Read an input of a known format.
pub fn read(framework: Framework, source: &Source) -> Result<Parsed, ReadError> {
    match framework {
        Framework::Axolotl => axolotl::read(source),
        Framework::Torchtune => torchtune::read(source),
        Framework::Unsloth => unsloth::read(source),
        Framework::Ir => read_ir(source),
    }
}

fn read_ir(source: &Source) -> Result<Parsed, ReadError> {
    let mut resolved = Resolved::from_toml(source).map_err(|d| match d.id {
        "syntax" => ReadError::Syntax(d),
        _ => ReadError::Invalid(vec![d]),
    })?;
    if resolved.provenance.0.is_empty() {
        for path in resolved.spec.flat().keys() {
            resolved
                .provenance
                .set(path.clone(), Origin::explicit(path.clone()));
        }
    }
    validate::derive(&mut resolved);
    let problems = validate::validate(&resolved);
    let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) = problems
        .into_iter()
        .map(|d| d.locate(source))
        .partition(|d| d.severity == crate::diag::Severity::Error);
    if !errors.is_empty() {
        return Err(ReadError::Invalid(errors));
    }
    Ok(Parsed {
        resolved,
        diagnostics: warnings,
    })
}

/// Write the IR in a target format.
pub fn write(
    framework: Framework,
    resolved: &Resolved,
    from: &str,
    opts: &WriteOptions,
) -> Written {
    match framework {
        Framework::Axolotl => axolotl::write(resolved, from, opts),
        Framework::Torchtune => torchtune::write(resolved, from, opts),
        Framework::Unsloth => unsloth::write(resolved, from, opts),
        Framework::Ir => {
            let text = resolved.to_toml(true);
            let report = PortReport {
                from: from.to_string(),
                to: "ir".into(),
                source: opts.source_name.clone(),
                entries: resolved
                    .spec
                    .flat()
                    .into_iter()
                    .map(|(field, value)| report::Entry {
                        origin: resolved
                            .provenance
                            .get(&field)
                            .map(Origin::describe)
                            .unwrap_or_default(),
                        target_key: field.clone(),
                        field,
                        value,
                        status: Status::Carried,
                        note: String::new(),
                    })
                    .collect(),
                warnings: Vec::new(),
            };
            Written {
                text,
                command: "tunebridge run run.toml".into(),
                report,
            }
        }
    }
}

/// Change the planned device count. The global batch is kept when the accumulation steps
/// can absorb the change; otherwise it changes, and a warning says by how much.
pub fn retarget_devices(resolved: &mut Resolved, devices: u32) -> Vec<Diagnostic> {
    let mut notes = Vec::new();
    let b = resolved.spec.batch.clone();
    if devices == b.devices || devices == 0 {
        return notes;
    }
    let per_step = b.micro_batch_per_device * devices;
    if b.global_batch % per_step == 0 {
        let accum = b.global_batch / per_step;
        notes.push(Diagnostic::info(
            "effective-batch",
            format!(
                "devices {} → {devices}: gradient accumulation {} → {accum} keeps the global batch at {}",
                b.devices, b.grad_accum_steps, b.global_batch
            ),
        ));
        resolved.spec.batch.grad_accum_steps = accum;
        resolved.provenance.set(
            "batch.grad_accum_steps",
            Origin::Derived {
                from: vec!["batch.global_batch".into(), "batch.devices".into()],
                rule: format!(
                    "global batch {} / (micro batch {} × devices {devices})",
                    b.global_batch, b.micro_batch_per_device
                ),
            },
        );
    } else {
        let new_global = b.micro_batch_per_device * b.grad_accum_steps * devices;
        notes.push(
            Diagnostic::warning(
                "effective-batch",
                format!(
                    "devices {} → {devices} changes the global batch {} → {new_global}: {} is not a multiple of micro batch {} × {devices} devices",
                    b.devices, b.global_batch, b.global_batch, b.micro_batch_per_device
                ),
            )
            .with_help("adjust the micro batch so the global batch divides evenly, or rescale the learning rate"),
        );
    }
    resolved.spec.batch.devices = devices;
    resolved
        .provenance
        .set("batch.devices", Origin::explicit("--devices"));
    if devices > 1 && resolved.spec.parallel.strategy == Strategy::Single {
        resolved.spec.parallel.strategy = Strategy::Ddp;
    } else if devices == 1 {
        resolved.spec.parallel.strategy = Strategy::Single;
    }
    validate::derive(resolved);
    notes
}
