//! `tunebridge run CONFIG`: train a config on tunebridge's own engine.

use super::args::{EngineArgs, InputArgs};
use super::exit::{EXIT_NOT_SUPPORTED, EXIT_OK};
use super::input;
use crate::engine::{self, EngineError, Flavour, RunOptions};
use std::path::PathBuf;

/// Train a config (Axolotl YAML, TorchTune YAML, Unsloth script or run.toml) on the native
/// engine, reproducing the semantics of the framework it was written for.
///
/// Writes a run directory: the resolved `run.toml`, `metrics.jsonl` (one line per optimizer
/// step: loss, lr, grad_norm, tokens, tokens_per_sec, mem_peak), the adapter in PEFT format
/// (`adapter_model.safetensors` + `adapter_config.json`) or the full model in HF format, and
/// `checkpoint-<step>/` folders. A run that fails leaves a `FAILED` file with the reason.
#[derive(clap::Args)]
#[command(mut_arg("config", |a| a.help("Config or script to run")))]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Run directory (default: the config's output directory).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Continue from a checkpoint folder (`…/checkpoint-<step>`) or a run directory (its latest).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Whose semantics to follow for a run.toml (default: the framework its provenance names).
    #[arg(long, value_parser = ["axolotl", "torchtune", "unsloth"])]
    pub flavour: Option<String>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(a: RunArgs) -> anyhow::Result<u8> {
    let loaded = match input::load(&a.input, a.quiet)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let flavour = match (&a.flavour, Flavour::from_framework(loaded.framework)) {
        (Some(f), _) => Flavour::parse(f).expect("clap checked the value"),
        (None, Some(f)) => f,
        (None, None) => Flavour::of_spec(&loaded.parsed.resolved),
    };
    let mut opts = RunOptions::new(flavour);
    opts.device = engine::resolve_device(a.engine.device)?;
    opts.max_steps = a.engine.max_steps;
    opts.output = a.output.clone();
    opts.compute_dtype = a.engine.dtype.clone();
    opts.progress = !a.quiet;
    opts.resume_from = match &a.resume {
        Some(p) if p.join("trainer_state.json").is_file() => Some(p.clone()),
        Some(p) => Some(engine::checkpoint::latest(p).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no checkpoint-<step> folder to resume from",
                p.display()
            )
        })?),
        None => None,
    };
    if opts.resume_from.is_some() && opts.output.is_none() {
        // resuming continues in the directory the checkpoint lives in
        opts.output = opts
            .resume_from
            .as_ref()
            .and_then(|p| p.parent())
            .map(PathBuf::from);
    }
    match engine::run(&loaded.parsed.resolved, &opts) {
        Ok(summary) => {
            if !a.quiet {
                eprintln!(
                    "trained {} steps ({} semantics), final loss {:.6}; run directory {}",
                    summary.steps,
                    summary.flavour.name(),
                    summary.final_loss,
                    summary.output.display()
                );
            }
            Ok(EXIT_OK)
        }
        Err(e @ EngineError::Unsupported { .. })
        | Err(e @ EngineError::UnsupportedArchitecture { .. }) => {
            eprintln!("error: {e}");
            Ok(EXIT_NOT_SUPPORTED)
        }
        Err(e) => {
            Err(anyhow::Error::new(e)
                .context(format!("run of {} failed", a.input.config.display())))
        }
    }
}
