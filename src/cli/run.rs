//! `tunebridge run CONFIG`: train a config on tunebridge's own engine.

use super::args::{EngineArgs, InputArgs, LaunchArgs};
use super::exit::{EXIT_NOT_SUPPORTED, EXIT_OK};
use super::input::{self, Loaded};
use crate::diag::{Diagnostic, Span};
use crate::engine::dist::World;
use crate::engine::error::Unsupported;
use crate::engine::support::{self, Architecture};
use crate::engine::{self, EngineError, Flavour, RunOptions};
use crate::ir::Origin;
use std::path::PathBuf;

/// Train a config (Axolotl YAML, TorchTune YAML, Unsloth script or run.toml) on the native
/// engine, reproducing the semantics of the framework it was written for.
///
/// Writes a run directory: the resolved `run.toml`, `metrics.jsonl` (one line per optimizer
/// step: loss, lr, grad_norm, tokens, tokens_per_sec, mem_peak), the adapter in PEFT format
/// (`adapter_model.safetensors` + `adapter_config.json`) or the full model in HF format, and
/// `checkpoint-<step>/` folders. A run that fails leaves a `FAILED` file with the reason.
///
/// `--check` is a dry run: it reads the config as a run does and checks every feature it uses
/// against the engine, without weights (the architecture is judged from the model family), and
/// exits 0 when the engine runs them all, 3 with every reason otherwise.
#[derive(clap::Args)]
#[command(mut_arg("config", |a| a.help("Config or script to run")))]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// Keep the spec's global batch on any world size (accumulation = global / (micro-batch ×
    /// ranks), as `port --devices` plans it). Default: every rank takes the config's
    /// per-device batch and accumulation, as torchrun + the framework would.
    #[arg(long)]
    pub keep_global_batch: bool,
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
    /// Dry run: check that the engine runs every feature the config uses, without loading
    /// weights (exit 0), or list every reason it does not (exit 3).
    #[arg(long)]
    pub check: bool,
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
    if a.check {
        return Ok(check(&loaded, flavour));
    }
    let world = World::from_env().map_err(|e| anyhow::anyhow!("launch environment: {e}"))?;
    if let (Some(n), None) = (a.launch.nproc_per_node, &world) {
        return launch(&a, n as usize, &loaded);
    }
    let main = world.as_ref().is_none_or(|w| w.rank == 0);
    let mut opts = RunOptions::new(flavour);
    let local_rank = world.as_ref().map(|w| w.local_rank);
    opts.world = world;
    if a.keep_global_batch {
        opts.batch_over_ranks = engine::BatchOverRanks::KeepGlobal;
    }
    opts.device = engine::resolve_device(a.engine.device, local_rank)?;
    opts.max_steps = a.engine.max_steps;
    opts.output = a.output.clone();
    opts.compute_dtype = a.engine.dtype;
    opts.progress = !a.quiet && main;
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
            if !a.quiet && main {
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
        | Err(e @ EngineError::UnsupportedFeatures(_))
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

/// `--nproc-per-node N`: this process becomes the launcher of N ranks, each this same command
/// (told its rank through torchrun's variables). A failed rank marks the run directory FAILED.
fn launch(a: &RunArgs, nproc: usize, loaded: &Loaded) -> anyhow::Result<u8> {
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(&loaded.parsed.resolved.spec.checkpoint.output_dir));
    match a.launch.spawn_ranks(nproc, &output.join("logs"), a.quiet)? {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            let _ = std::fs::create_dir_all(&output);
            let _ = std::fs::write(output.join("FAILED"), format!("{e}\n"));
            Err(anyhow::Error::new(e)
                .context(format!("run of {} failed", a.input.config.display())))
        }
    }
}

/// `run --check`: every feature the engine lacks as a `not-supported` diagnostic at the key
/// that set it; 0 when there is none, 3 otherwise.
fn check(loaded: &Loaded, flavour: Flavour) -> u8 {
    let spec = &loaded.parsed.resolved.spec;
    let found = support::check(spec, flavour, Architecture::FromFamily);
    if found.is_empty() {
        println!("ok: the engine runs every feature this config uses");
        return EXIT_OK;
    }
    for u in &found {
        eprint!("{}", diagnostic(u, loaded).render(Some(&loaded.source)));
    }
    let n = found.len();
    eprintln!(
        "error: the engine cannot run {} ({} semantics): {n} unsupported feature{}",
        loaded.source.name,
        flavour.name(),
        if n == 1 { "" } else { "s" }
    );
    EXIT_NOT_SUPPORTED
}

/// One refusal, pointing at the source key its provenance records (or naming the default or
/// rule that set it), with the supported values as help.
fn diagnostic(u: &Unsupported, loaded: &Loaded) -> Diagnostic {
    let origin = loaded.parsed.resolved.provenance.0.get(&u.field);
    let mut message = format!("cannot run `{}` = `{}`", u.field, u.value);
    let span = match origin {
        Some(Origin::Explicit {
            line: Some(l),
            column: Some(c),
            ..
        }) => {
            let text = &loaded.source.text;
            let start = loaded.source.offset_of(*l, *c);
            let len = text[start..]
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '-'))
                .unwrap_or(text.len() - start);
            Some(Span::new(start, start + len))
        }
        Some(o) => {
            message.push_str(&format!(" ({})", o.describe()));
            None
        }
        None => None,
    };
    Diagnostic::error("not-supported", message)
        .at(span)
        .with_help(u.reason.clone())
        .locate(&loaded.source)
}

#[cfg(test)]
mod tests {
    use super::RunArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<T, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn check_is_off_by_default_and_goes_before_or_after_the_config() {
        assert!(!parse(&["c.yaml"]).unwrap().run.check);
        for args in [["--check", "c.yaml"], ["c.yaml", "--check"]] {
            let t = parse(&args).unwrap();
            assert!(t.run.check);
            assert_eq!(t.run.input.config, std::path::PathBuf::from("c.yaml"));
        }
        let e = parse(&["c.yaml", "--check=yes"]).err().unwrap();
        assert_eq!(e.kind(), clap::error::ErrorKind::TooManyValues);
    }
}
