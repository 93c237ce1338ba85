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
pub mod framework;
pub mod node;
pub mod reader;
pub mod report;
pub mod table;
pub mod torchtune;
pub mod unsloth;
pub mod yaml;
pub mod yaml_out;

pub use framework::{Framework, WriteOptions, Written};
pub use reader::{Parsed, ReadError};
pub use report::{PortReport, Status};

use crate::diag::{Diagnostic, Source};
use crate::ir::Strategy;
use crate::ir::{validate, Origin, Resolved};

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
