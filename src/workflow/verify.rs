//! "Will my port give the same run?": port a config to another framework, train the original
//! and the port on the engine (each with its own framework's semantics), diff the two runs and
//! write the report.
//!
//! Three phases, each its own function so a command can report between them:
//! [`port`] (write the port and read it back as the target framework's user would hand it to
//! us), [`train`] (both sides on the engine), [`compare`] (diff the run directories, write
//! `report/`). [`verify`] chains them. Nothing here prints: the caller renders the outcome.
//!
//! The output folder gets `ported/` (the translated config), `a-<framework>/` and
//! `b-<framework>/` (the two run directories) and `report/` (the diff report and `port.md`).

use crate::device::Device;
use crate::diag::Source;
use crate::diff::{self, Comparison, DiffError, DiffOptions};
use crate::engine::{self, EngineError, Flavour, RunOptions};
use crate::ingest::{self, IngestError};
use crate::ir::{Dtype, Resolved};
use crate::translate::{self, Framework, PortReport, ReadError, Status, WriteOptions, Written};
use std::path::{Path, PathBuf};

/// What to verify, and how to run it.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// The config as read (the caller reads it, so it can report the reader's diagnostics).
    pub source: Resolved,
    /// The config's file name, for the port's comments and the report.
    pub source_name: String,
    /// The framework the config was written for.
    pub from: Framework,
    /// The framework the port targets.
    pub against: Framework,
    /// Plan the port for this many GPUs (the engine still runs on one device).
    pub devices: Option<u32>,
    /// Output folder.
    pub output: PathBuf,
    /// Optimizer steps for both runs (default: the config's).
    pub max_steps: Option<u64>,
    pub device: Device,
    /// Compute dtype for both runs (`fp32` for a CPU parity run of a bf16 config).
    pub dtype: Option<Dtype>,
    /// Relative tolerance on the loss (default from the precision).
    pub rtol: Option<f64>,
    /// Show the engine's progress bars.
    pub progress: bool,
}

/// One side of the comparison: a spec, whose semantics it follows, where its run goes.
#[derive(Debug, Clone)]
pub struct Side {
    pub resolved: Resolved,
    pub flavour: Flavour,
    pub run_dir: PathBuf,
}

/// The port, written and read back.
#[derive(Debug, Clone)]
pub struct Ported {
    /// The translated config and its port report.
    pub written: Written,
    /// Where the translated config was written (`<output>/ported/<default file name>`).
    pub path: PathBuf,
    /// The original (A, the reference) and the port (B).
    pub a: Side,
    pub b: Side,
    /// The initial adapter both runs start from, when B took it over from A.
    pub shared_init: Option<String>,
}

impl Ported {
    /// The report entries that did not carry over exactly.
    pub fn lossy(&self) -> impl Iterator<Item = &translate::report::Entry> {
        self.written.report.lossy()
    }
}

/// The verdict and where the report went.
#[derive(Debug)]
pub struct VerifyOutcome {
    pub comparison: Comparison,
    /// The port report (also written as `port.md`).
    pub port: PortReport,
    /// `<output>/report`.
    pub report_dir: PathBuf,
    /// The diff report's files (`port.md` is written beside them).
    pub report_files: Vec<PathBuf>,
}

impl VerifyOutcome {
    /// The port report's path.
    pub fn port_report(&self) -> PathBuf {
        self.report_dir.join(PORT_REPORT)
    }
}

const PORT_REPORT: &str = "port.md";

/// Why verification stopped.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// `--against ir` (a run.toml has no framework semantics to train with).
    #[error("--against must name a framework: axolotl, torchtune or unsloth")]
    AgainstNotAFramework,
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot clear {}", path.display())]
    Clear {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The written port does not read back; `source` holds its text for the diagnostics.
    #[error("the {against} port of {source_name} does not read back")]
    PortDoesNotReadBack {
        against: Framework,
        source_name: String,
        ported: Box<Source>,
        error: ReadError,
    },
    /// The device was parsed but cannot be used (no such GPU, no CUDA backend).
    #[error(transparent)]
    Device(EngineError),
    #[error("training the {flavour:?} flavour into {}", run_dir.display())]
    Train {
        flavour: Flavour,
        run_dir: PathBuf,
        #[source]
        source: EngineError,
    },
    #[error(transparent)]
    ReadRun(#[from] IngestError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Report(#[from] diff::report::ReportError),
}

/// Port, train both sides, compare. `on_ported` runs between the port and the training (a
/// command reports the port there, before the progress bars).
pub fn verify(
    req: &VerifyRequest,
    on_ported: impl FnOnce(&Ported),
) -> Result<VerifyOutcome, VerifyError> {
    let ported = port(req)?;
    on_ported(&ported);
    train(req, &ported)?;
    compare(req, &ported)
}

/// Phase 1: write the port into `<output>/ported/` and read it back exactly as the target
/// framework's user would hand it to us.
pub fn port(req: &VerifyRequest) -> Result<Ported, VerifyError> {
    let flavour_a =
        Flavour::from_framework(req.from).unwrap_or_else(|| Flavour::of_spec(&req.source));
    let flavour_b =
        Flavour::from_framework(req.against).ok_or(VerifyError::AgainstNotAFramework)?;
    let mut resolved_a = req.source.clone();
    if let Some(d) = req.devices {
        translate::retarget_devices(&mut resolved_a, d);
    }
    create_dir(&req.output)?;

    let opts = WriteOptions {
        strict: false,
        source_name: req.source_name.clone(),
    };
    let written = translate::write(req.against, &resolved_a, req.from.name(), &opts);
    let path = req
        .output
        .join("ported")
        .join(req.against.default_file_name());
    create_dir(path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&path, &written.text).map_err(|source| VerifyError::Write {
        path: path.clone(),
        source,
    })?;
    let ported_source = Source::new(path.display().to_string(), written.text.clone());
    let mut resolved_b = match translate::read(req.against, &ported_source) {
        Ok(p) => p.resolved,
        Err(error) => {
            return Err(VerifyError::PortDoesNotReadBack {
                against: req.against,
                source_name: req.source_name.clone(),
                ported: Box::new(ported_source),
                error,
            })
        }
    };

    // Both sides start from the same initial adapter, so the comparison isolates what the
    // port changes rather than two random initialisations.
    let init_a = &resolved_a.spec.adapter.init_from;
    let shared_init = if !init_a.is_empty() && resolved_b.spec.adapter.init_from.is_empty() {
        resolved_b.spec.adapter.init_from = init_a.clone();
        Some(init_a.clone())
    } else {
        None
    };

    let a = Side {
        resolved: resolved_a,
        flavour: flavour_a,
        run_dir: req.output.join(format!("a-{}", req.from)),
    };
    let b = Side {
        resolved: resolved_b,
        flavour: flavour_b,
        run_dir: req.output.join(format!("b-{}", req.against)),
    };
    Ok(Ported {
        written,
        path,
        a,
        b,
        shared_init,
    })
}

/// Phase 2: train both sides on the engine, each into a fresh run directory.
pub fn train(req: &VerifyRequest, ported: &Ported) -> Result<(), VerifyError> {
    let device = engine::resolve_device(req.device, None).map_err(VerifyError::Device)?;
    for side in [&ported.a, &ported.b] {
        let dir = &side.run_dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|source| VerifyError::Clear {
                path: dir.clone(),
                source,
            })?;
        }
        let mut o = RunOptions::new(side.flavour);
        o.device = device;
        o.output = Some(dir.clone());
        o.max_steps = req.max_steps;
        o.compute_dtype = req.dtype;
        o.progress = req.progress;
        engine::run(&side.resolved, &o).map_err(|source| VerifyError::Train {
            flavour: side.flavour,
            run_dir: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Phase 3: diff the two run directories (A is the reference) and write `<output>/report/`:
/// the diff report and the port report beside it.
pub fn compare(req: &VerifyRequest, ported: &Ported) -> Result<VerifyOutcome, VerifyError> {
    let ra = ingest::read_run(&ported.a.run_dir, None)?;
    let rb = ingest::read_run(&ported.b.run_dir, None)?;
    let dopts = DiffOptions {
        rtol: req.rtol,
        ..DiffOptions::default()
    };
    let comparison = diff::compare(&ra, &rb, &dopts)?;
    let report_dir = req.output.join("report");
    let report_files = diff::report::write_report(&comparison, &report_dir)?;
    let port_md = report_dir.join(PORT_REPORT);
    std::fs::write(&port_md, port_markdown(&ported.written.report)).map_err(|source| {
        VerifyError::Write {
            path: port_md,
            source,
        }
    })?;
    Ok(VerifyOutcome {
        comparison,
        port: ported.written.report.clone(),
        report_dir,
        report_files,
    })
}

fn create_dir(path: &Path) -> Result<(), VerifyError> {
    std::fs::create_dir_all(path).map_err(|source| VerifyError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// The port report beside the diff report, as Markdown.
fn port_markdown(report: &PortReport) -> String {
    let mut md = format!(
        "# Port report: {} → {}\n\nSource: `{}`\n\n",
        report.from, report.to, report.source
    );
    md.push_str(&format!(
        "{} carried · {} defaulted · {} approximated · {} not expressible\n\n",
        report.count(Status::Carried),
        report.count(Status::Defaulted),
        report.count(Status::Approximated),
        report.count(Status::NotExpressible)
    ));
    md.push_str("| field | value | status | target key | note |\n|---|---|---|---|---|\n");
    for e in &report.entries {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            e.field,
            translate::report::compact(&e.value).replace('|', "\\|"),
            e.status.label(),
            e.target_key,
            e.note.replace('|', "\\|")
        ));
    }
    if !report.warnings.is_empty() {
        md.push_str("\n## Warnings\n\n");
        for w in &report.warnings {
            md.push_str(&format!("- `{}`: {}\n", w.id, w.message));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled tiny Axolotl config, as the CLI would read it.
    fn request(against: Framework, output: &Path) -> VerifyRequest {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/default/axolotl-tiny-llama.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let source = Source::new(path.display().to_string(), text);
        let parsed = translate::read(Framework::Axolotl, &source).unwrap();
        VerifyRequest {
            source: parsed.resolved,
            source_name: source.name,
            from: Framework::Axolotl,
            against,
            devices: None,
            output: output.to_path_buf(),
            max_steps: Some(1),
            device: Device::Cpu,
            dtype: None,
            rtol: None,
            progress: false,
        }
    }

    #[test]
    fn the_port_is_written_read_back_and_given_its_own_run_directory() {
        let out = tempfile::tempdir().unwrap();
        let req = request(Framework::Unsloth, out.path());
        let ported = port(&req).unwrap();
        assert_eq!(ported.path, out.path().join("ported/train_unsloth.py"));
        assert_eq!(
            std::fs::read_to_string(&ported.path).unwrap(),
            ported.written.text
        );
        assert_eq!(
            (ported.a.flavour, ported.b.flavour),
            (Flavour::Axolotl, Flavour::Unsloth)
        );
        assert_eq!(ported.a.run_dir, out.path().join("a-axolotl"));
        assert_eq!(ported.b.run_dir, out.path().join("b-unsloth"));
        assert!(
            ported.lossy().count() > 0,
            "loss normalisation does not carry over"
        );
        assert!(!ported.a.run_dir.exists(), "runs are the train phase's job");
    }

    #[test]
    fn a_run_toml_target_is_refused_before_anything_is_written() {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("v");
        let e = port(&request(Framework::Ir, &dir)).unwrap_err();
        assert!(matches!(e, VerifyError::AgainstNotAFramework), "{e}");
        assert!(!dir.exists());
    }

    #[test]
    fn the_port_report_markdown_has_a_row_per_entry() {
        let out = tempfile::tempdir().unwrap();
        let ported = port(&request(Framework::Unsloth, out.path())).unwrap();
        let md = port_markdown(&ported.written.report);
        assert!(md.starts_with("# Port report: axolotl → unsloth\n"), "{md}");
        let rows = md.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, ported.written.report.entries.len());
    }
}
