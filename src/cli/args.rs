//! Flags that several commands share, declared once and flattened (`#[command(flatten)]`)
//! into each command's own struct, so a flag has one spelling, one type and one default.
//!
//! - [`InputArgs`]: the config to read and `--from` (port, inspect, gen, run, verify).
//! - [`OverrideArgs`]: TorchTune `key=value` overrides (port, inspect).
//! - [`EngineArgs`]: how a run uses the engine: `--max-steps`, `--device`, `--dtype`
//!   (run, verify).
//! - [`JsonArgs`]: `--json`, machine-readable output instead of text (port, inspect, diff,
//!   verify).
//!
//! - [`LaunchArgs`]: multi-process runs, with torchrun's flags (`--nproc-per-node`,
//!   `--nnodes`, `--node-rank`, `--master-addr`, `--master-port`) (run, bench). They are not
//!   `--devices N`, which stays the planning flag of `port`/`verify`: the GPU count a port is
//!   written for.
//!
//! What stays in a command's struct: flags whose meaning or default differs per command.
//! `-o/--output` is a file for `port`/`new`, a run directory for `run` (default: the config's
//! `output_dir`), a folder with a default for `verify`, a required folder for `gen`; `bench`
//! runs on `cuda` by default and its `--dtype` is the stored weights' dtype, not an override.
//! A command whose positional argument reads differently (`<INPUT>` for port and inspect,
//! `<TEMPLATE>` for gen) renames it with `mut_arg`, which keeps its help text its own.

use crate::device::Device;
use crate::ir::Dtype;
use crate::translate::Framework;
use std::path::PathBuf;

/// The config a command reads.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// Config or script (Axolotl YAML, TorchTune YAML, Unsloth script or run.toml).
    // The index is explicit because `mut_arg` (a command renaming this argument) re-adds it
    // last, which would otherwise put it after the overrides.
    #[arg(index = 1)]
    pub config: PathBuf,
    /// Source format, when detection guesses wrong.
    #[arg(long, value_enum)]
    pub from: Option<Framework>,
}

/// `tune run`-style `key=value` overrides; they follow the config on the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct OverrideArgs {
    /// TorchTune `key=value` overrides, applied as `tune run … key=value` does
    /// (`optimizer.lr=1e-4 model.lora_rank=16`).
    #[arg(index = 2, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// How a run uses the engine.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Stop after this many optimizer steps (also the schedule's horizon, as in the frameworks).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// Compute dtype (`fp32`, `bf16`), overriding the config's (a CPU parity run of a bf16 config).
    #[arg(long, value_parser = parse_dtype)]
    pub dtype: Option<Dtype>,
}

/// `--dtype`: the IR spelling (`fp32`, `bf16`, `fp16`) or torch's long name (`float32`, …).
fn parse_dtype(name: &str) -> Result<Dtype, String> {
    match name {
        "float32" => Ok(Dtype::Fp32),
        "bfloat16" => Ok(Dtype::Bf16),
        "float16" => Ok(Dtype::Fp16),
        other => other.parse().map_err(|_| {
            format!("expected fp32, bf16 or fp16 (or float32, bfloat16, float16), not `{other}`")
        }),
    }
}

/// How many processes a run spans, with torchrun's flags and defaults. Without
/// `--nproc-per-node` a run is one process, or one rank of a job that torchrun or Slurm
/// launched (read from their environment variables).
#[derive(clap::Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Ranks to spawn on this node (one process each, supervised: the first to fail ends
    /// the job).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub nproc_per_node: Option<u32>,
    /// Nodes in the job.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub nnodes: u32,
    /// This node's index, 0 ≤ node-rank < nnodes.
    #[arg(long, default_value_t = 0)]
    pub node_rank: u32,
    /// Host of global rank 0, where the ranks meet.
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port of the rendezvous store on that host.
    #[arg(long, default_value_t = 29500)]
    pub master_port: u16,
}

impl LaunchArgs {
    /// Become the launcher of `nproc` ranks on this node, each this same command line (told
    /// its rank through torchrun's variables; ranks other than 0 log to `logs/rank-N.log`).
    /// The outer error is bad flags; the inner one a rank that failed.
    pub fn spawn_ranks(
        &self,
        nproc: usize,
        logs: &std::path::Path,
        quiet: bool,
    ) -> anyhow::Result<Result<(), crate::engine::dist::LaunchError>> {
        if self.node_rank >= self.nnodes {
            anyhow::bail!(
                "--node-rank {} is not below --nnodes {}",
                self.node_rank,
                self.nnodes
            );
        }
        let spec = crate::engine::dist::LaunchSpec {
            nproc_per_node: nproc,
            nnodes: self.nnodes as usize,
            node_rank: self.node_rank as usize,
            master_addr: self.master_addr.clone(),
            master_port: self.master_port,
        };
        let program = std::env::current_exe()?;
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        if !quiet {
            eprintln!(
                "launching {} rank(s) on node {} of {} (world size {}), meeting at {}:{}; \
                 logs of ranks other than 0 in {}",
                nproc,
                spec.node_rank,
                spec.nnodes,
                spec.world_size(),
                spec.master_addr,
                spec.master_port,
                logs.display()
            );
        }
        Ok(crate::engine::dist::launch(&spec, &program, &args, logs))
    }
}

/// Machine-readable output.
#[derive(clap::Args, Debug, Clone)]
pub struct JsonArgs {
    /// Print JSON instead of text (for CI and scripts).
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        overrides: OverrideArgs,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        out: JsonArgs,
    }

    fn parse(args: &[&str]) -> Result<T, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let t = parse(&["c.yaml"]).unwrap();
        assert_eq!(t.input.config, PathBuf::from("c.yaml"));
        assert_eq!(t.input.from, None);
        assert!(t.overrides.overrides.is_empty());
        assert_eq!(
            (t.engine.max_steps, t.engine.device, t.engine.dtype),
            (None, Device::Cpu, None)
        );
        assert!(!t.out.json);
    }

    #[test]
    fn config_comes_before_overrides() {
        let t = parse(&["c.yaml", "optimizer.lr=1", "a.b=2", "--from", "torchtune"]).unwrap();
        assert_eq!(t.input.config, PathBuf::from("c.yaml"));
        assert_eq!(t.overrides.overrides, ["optimizer.lr=1", "a.b=2"]);
        assert_eq!(t.input.from, Some(Framework::Torchtune));
    }

    #[test]
    fn device_spellings() {
        for (s, want) in [
            ("cpu", Device::Cpu),
            ("cuda", Device::CudaLocal),
            ("cuda:2", Device::Cuda(2)),
        ] {
            assert_eq!(parse(&["c", "--device", s]).unwrap().engine.device, want);
            let eq = format!("--device={s}");
            assert_eq!(parse(&["c", &eq]).unwrap().engine.device, want);
        }
    }

    #[test]
    fn a_bad_device_is_a_usage_error_that_says_what_is_expected() {
        let e = parse(&["c", "--device", "gpu"]).err().unwrap();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("'gpu'"), "{msg}");
        assert!(msg.contains("expected cpu, cuda or cuda:N"), "{msg}");
    }

    #[test]
    fn engine_flags() {
        let t = parse(&["c", "--max-steps", "3", "--dtype", "fp32", "--json"]).unwrap();
        assert_eq!(t.engine.max_steps, Some(3));
        assert_eq!(t.engine.dtype, Some(Dtype::Fp32));
        let long = parse(&["c", "--dtype", "bfloat16"]).unwrap();
        assert_eq!(long.engine.dtype, Some(Dtype::Bf16));
        let e = parse(&["c", "--dtype", "fp8"]).err().unwrap().to_string();
        assert!(e.contains("expected fp32, bf16 or fp16"), "{e}");
        assert!(t.out.json);
    }
}
