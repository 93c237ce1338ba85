//! `tunebridge bench`: a LoRA training benchmark on a randomly initialised model.

use super::args::LaunchArgs;
use super::exit::{EXIT_BAD_INPUT, EXIT_NOT_SUPPORTED, EXIT_OK};
use crate::device::Device;
use crate::engine::dist::World;
use crate::engine::{self, bench, EngineError};
use std::io::Write;
use std::path::PathBuf;

/// Time LoRA training steps on a random-init model of a named shape (no weights on disk).
///
/// LoRA r/α on q, k, v, o, gate, up, down; base weights frozen in `--dtype`; AdamW; `--warmup`
/// untimed steps, then `--steps` timed ones. Prints the median step time, tokens/s (B·T real
/// tokens per step over the median, device synchronised around each step) and, on CUDA, the
/// peak memory of libtorch's caching allocator; writes one JSON line to stdout (and appends
/// it to `--json`). Exit 2 when a step fails (e.g. out of memory); the JSON line says why.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Model shape: `llama3-8b` (Llama-3.1-8B dimensions) or `tiny` (CPU smoke runs).
    #[arg(long, default_value = "llama3-8b", value_parser = ["llama3-8b", "tiny"])]
    pub shape: String,
    /// Sequences per step (B).
    #[arg(long, default_value_t = 4)]
    pub batch: i64,
    /// Tokens per sequence (T).
    #[arg(long, default_value_t = 2048)]
    pub seq: i64,
    /// `lora`, or `qlora` (decoder linears stored as NF4, dequantized in each forward).
    #[arg(long, default_value = "lora", value_parser = ["lora", "qlora"])]
    pub method: String,
    /// Layer-wise activation recomputation.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub recompute: String,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cuda")]
    pub device: Device,
    /// Compute dtype of the frozen base weights and activations.
    #[arg(long, default_value = "bf16", value_parser = ["bf16", "fp32"])]
    pub dtype: String,
    /// dtype of the LoRA tensors and their AdamW state (PEFT keeps fp32).
    #[arg(long, default_value = "fp32", value_parser = ["bf16", "fp32"])]
    pub adapter_dtype: String,
    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    pub rank: i64,
    /// LoRA alpha.
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append the JSON line to this file too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// With `--nproc-per-node N`: N data-parallel ranks (gradients all-reduced every step over
    /// NCCL on CUDA, gloo on CPU); rank 0 first times the same steps alone, and reports tokens/s
    /// per GPU and in total, the scaling efficiency, the time in communication and every
    /// rank's peak memory.
    #[command(flatten)]
    pub launch: LaunchArgs,
}

fn kind(s: &str) -> tch::Kind {
    if s == "bf16" {
        tch::Kind::BFloat16
    } else {
        tch::Kind::Float
    }
}

pub fn run(a: BenchArgs) -> anyhow::Result<u8> {
    let world = World::from_env().map_err(|e| anyhow::anyhow!("launch environment: {e}"))?;
    if let (Some(n), None) = (a.launch.nproc_per_node, &world) {
        let logs = std::env::temp_dir().join(format!("tunebridge-bench-{}", std::process::id()));
        return match a.launch.spawn_ranks(n as usize, &logs, false)? {
            Ok(()) => Ok(EXIT_OK),
            Err(e) => Err(anyhow::Error::new(e).context("bench failed")),
        };
    }
    let local_rank = world.as_ref().map(|w| w.local_rank);
    let main = world.as_ref().is_none_or(|w| w.rank == 0);
    let opts = bench::BenchOptions {
        shape: bench::Shape::parse(&a.shape).expect("clap checked the value"),
        batch: a.batch,
        seq: a.seq,
        recompute: a.recompute == "on",
        warmup: a.warmup,
        steps: a.steps,
        device: engine::resolve_device(a.device, local_rank)?,
        dtype: kind(&a.dtype),
        adapter_dtype: kind(&a.adapter_dtype),
        rank: a.rank,
        alpha: a.alpha,
        seed: a.seed,
        qlora: a.method == "qlora",
        world,
    };
    let r = match bench::run(&opts) {
        Ok(r) => r,
        Err(e @ EngineError::Unsupported { .. }) => {
            eprintln!("error: {e}");
            return Ok(EXIT_NOT_SUPPORTED);
        }
        Err(e) => return Err(e.into()),
    };
    if !main {
        return Ok(if r.error.is_none() {
            EXIT_OK
        } else {
            EXIT_BAD_INPUT
        });
    }
    let line = serde_json::to_string(&r)?;
    println!("{line}");
    if let Some(path) = &a.json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{line}")?;
    }
    let gib = |b: Option<i64>| {
        b.map_or("n/a".into(), |b| {
            format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
        })
    };
    match (&r.error, r.tokens_per_sec) {
        (None, Some(tps)) => {
            eprintln!(
                "{} {} B={} T={} recompute={}: median step {:.3} s, {:.0} tokens/s, peak allocated {}, reserved {}",
                a.shape,
                a.method,
                r.batch,
                r.seq,
                a.recompute,
                r.median_step_secs.unwrap_or(f64::NAN),
                tps,
                gib(r.peak_allocated_bytes),
                gib(r.peak_reserved_bytes),
            );
            if r.single_tokens_per_sec.is_some() {
                let comm = bench::median(&r.comm_secs).unwrap_or(f64::NAN);
                eprintln!(
                    "{} rank(s): {:.0} tokens/s per GPU, {:.0} in total; alone {:.0} tokens/s, \
                     scaling efficiency {:.3}; all-reduce {:.1} ms a step ({:.1}% of it); peak \
                     allocated per rank {:?} GiB",
                    r.world_size,
                    tps,
                    r.total_tokens_per_sec.unwrap_or(f64::NAN),
                    r.single_tokens_per_sec.unwrap_or(f64::NAN),
                    r.scaling_efficiency.unwrap_or(f64::NAN),
                    comm * 1e3,
                    100.0 * comm / r.median_step_secs.unwrap_or(f64::NAN),
                    r.peak_allocated_gib_per_rank
                );
            }
            Ok(EXIT_OK)
        }
        (err, _) => {
            eprintln!(
                "{} B={} T={} recompute={}: failed: {}",
                a.shape,
                r.batch,
                r.seq,
                a.recompute,
                err.as_deref().unwrap_or("no timed step")
            );
            Ok(EXIT_BAD_INPUT)
        }
    }
}
