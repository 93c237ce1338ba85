//! `tunebridge verify CONFIG --against FRAMEWORK`: the one-command answer to "will my port
//! give the same run?" — port the config, run both flavours on the native engine, diff the
//! curves and adapters, and write the report. The workflow is [`crate::workflow::verify`];
//! this file reads the flags and the config, prints, and picks the exit code.

use super::args::{EngineArgs, InputArgs, JsonArgs};
use super::exit::{EXIT_DIFFERS, EXIT_OK};
use super::input;
use crate::diag::Severity;
use crate::diff;
use crate::translate::{Framework, Status};
use crate::workflow::verify::{self, Ported, VerifyError, VerifyOutcome, VerifyRequest};
use std::path::PathBuf;

/// Port a config to another framework, train both the original and the port on tunebridge's
/// engine (each with its own framework's semantics), and diff the two runs.
///
/// The output folder gets `ported/` (the translated config), `a-<framework>/` and
/// `b-<framework>/` (the two run directories) and `report/` (Markdown, HTML, PNG/SVG plots,
/// CSV). Exit 0 when the runs match within tolerance, 1 when they differ.
#[derive(clap::Args)]
#[command(
    mut_arg("config", |a| a.help(
        "Config or script to verify (Axolotl, TorchTune, Unsloth or run.toml)"
    )),
    mut_arg("max_steps", |a| a.help("Optimizer steps for both runs (default: the config's)")),
    mut_arg("dtype", |a| a.help(
        "Compute dtype for both runs (`fp32` for a CPU parity run of a bf16 config)"
    )),
    mut_arg("json", |a| a.help("Print the verdict as JSON"))
)]
pub struct VerifyArgs {
    /// The framework the port targets.
    #[arg(long, value_enum)]
    pub against: Framework,
    #[command(flatten)]
    pub input: InputArgs,
    /// Plan the port for this many GPUs (the engine still runs on one device).
    #[arg(long)]
    pub devices: Option<u32>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Output folder.
    #[arg(short, long, default_value = "out/verify")]
    pub output: PathBuf,
    /// Relative tolerance on the loss (default from the precision).
    #[arg(long)]
    pub rtol: Option<f64>,
    #[command(flatten)]
    pub print: JsonArgs,
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(a: VerifyArgs) -> anyhow::Result<u8> {
    let json = a.print.json;
    let chatty = !a.quiet && !json;
    let loaded = match input::load(&a.input, a.quiet || json)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let req = VerifyRequest {
        source: loaded.parsed.resolved,
        source_name: loaded.source.name,
        from: loaded.framework,
        against: a.against,
        devices: a.devices,
        output: a.output,
        max_steps: a.engine.max_steps,
        device: a.engine.device,
        dtype: a.engine.dtype,
        rtol: a.rtol,
        progress: chatty,
    };
    let outcome = verify::verify(&req, |ported| {
        if chatty {
            print_port_summary(&req, ported);
        }
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            if let VerifyError::PortDoesNotReadBack { ported, error, .. } = &e {
                input::print_diagnostics(&error.diagnostics(), ported, Severity::Info);
            }
            return Err(e.into());
        }
    };
    if json {
        let mut v = diff::report::json(&outcome.comparison);
        v["port"] = serde_json::to_value(&outcome.port)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_outcome(&outcome);
    }
    Ok(if outcome.comparison.verdict.pass {
        EXIT_OK
    } else {
        EXIT_DIFFERS
    })
}

/// What the port approximated, before the runs start.
fn print_port_summary(req: &VerifyRequest, ported: &Ported) {
    let lossy: Vec<_> = ported.lossy().collect();
    eprintln!(
        "ported {} ({}) → {} ({}): {} field(s) approximated or not expressible",
        req.source_name,
        req.from,
        ported.path.display(),
        req.against,
        lossy.len()
    );
    for e in &lossy {
        eprintln!("  {:<15} {}  {}", e.status.label(), e.field, e.note);
    }
    if let Some(init) = &ported.shared_init {
        eprintln!("  (both runs start from the initial adapter {init})");
    }
}

/// The diff table, then where the port and diff reports went.
fn print_outcome(outcome: &VerifyOutcome) {
    print!("{}", diff::report::terminal(&outcome.comparison));
    let lossy_fields =
        outcome.port.count(Status::Approximated) + outcome.port.count(Status::NotExpressible);
    println!(
        "port report: {lossy_fields} lossy field(s) — {}",
        outcome.port_report().display()
    );
    println!(
        "report: {}",
        outcome
            .report_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
