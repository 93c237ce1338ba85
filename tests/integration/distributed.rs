//! Multi-process runs on CPU ranks over gloo (libtorch's c10d through the engine's shim): the
//! launcher (`--nproc-per-node`), the same binary under torchrun's variables, what is the same
//! across world sizes, and how failures end a job.

use crate::harness::{repo, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn losses(run: &Path) -> Vec<f64> {
    let path = run.join("metrics.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v["loss"].as_f64())
        .collect()
}

/// The bundled default with its batch as `micro_batch_size` × `gradient_accumulation_steps`.
fn default_with_batch(dir: &Path, mb: u32, ga: u32) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("fixtures/default/axolotl-tiny-llama.yaml"))
        .unwrap()
        .replace("micro_batch_size: 2", &format!("micro_batch_size: {mb}"))
        .replace(
            "gradient_accumulation_steps: 2",
            &format!("gradient_accumulation_steps: {ga}"),
        );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `tunebridge run CONFIG -o OUT --max-steps N -q [extra…]` with a fresh rendezvous port.
fn run(config: &Path, out: &Path, steps: u32, extra: &[&str]) -> std::process::Output {
    let port = free_port().to_string();
    let steps = steps.to_string();
    let mut args = vec![
        "run",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-steps",
        &steps,
        "-q",
        "--master-port",
        &port,
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_tunebridge"))
        .args(&args)
        .current_dir(repo())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: step count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let rel = (g - w).abs() / w.abs().max(1e-12);
        assert!(
            rel <= rtol,
            "{what}: step {} loss {g} vs {w} ({rel:.2e})",
            i + 1
        );
    }
}

#[test]
fn one_two_and_four_ranks_with_one_global_batch_give_one_curve() {
    // HF semantics (Axolotl flavour): the step's token count is summed over ranks before the
    // loss is normalised, and accelerate deals whole micro-batches, so the same samples make
    // each step on any world size; only the order of the gradient sum differs.
    let tmp = tempfile::tempdir().unwrap();
    let config = default_with_batch(tmp.path(), 1, 4);
    let mut curves = Vec::new();
    for n in [1, 2, 4] {
        let out = tmp.path().join(format!("w{n}"));
        let nproc = n.to_string();
        let o = run(
            &config,
            &out,
            6,
            &["--nproc-per-node", &nproc, "--keep-global-batch"],
        );
        assert!(o.status.success(), "{n} ranks: {}", text(&o.stderr));
        let run_toml = std::fs::read_to_string(out.join("run.toml")).unwrap();
        assert!(
            run_toml.contains(&format!("grad_accum_steps = {}", 4 / n)),
            "{n} ranks keep the global batch 4"
        );
        curves.push(losses(&out));
    }
    assert_eq!(curves[0].len(), 6);
    assert_close("2 ranks", &curves[1], &curves[0], 1e-5);
    assert_close("4 ranks", &curves[2], &curves[0], 1e-5);
}

#[test]
fn by_default_every_rank_takes_the_configs_per_device_batch() {
    // `micro_batch_size: 2`, `gradient_accumulation_steps: 2` on 2 ranks is a global batch of
    // 8, as `torchrun --nproc-per-node 2 axolotl …` runs it; accelerate gives rank r the
    // micro-batches r, r+2, …, so each step trains the samples of one process with GA 4.
    let tmp = tempfile::tempdir().unwrap();
    let two_ranks = default_with_batch(tmp.path(), 2, 2);
    let w2 = tmp.path().join("w2");
    let o = run(&two_ranks, &w2, 4, &["--nproc-per-node", "2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let run_toml = std::fs::read_to_string(w2.join("run.toml")).unwrap();
    assert!(run_toml.contains("global_batch = 8"), "{run_toml}");
    assert!(run_toml.contains("grad_accum_steps = 2"), "{run_toml}");
    let one = tempfile::tempdir().unwrap();
    let one_rank = default_with_batch(one.path(), 2, 4);
    let w1 = tmp.path().join("w1");
    let o = run(&one_rank, &w1, 4, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_close(
        "2 ranks × GA 2 vs 1 × GA 4",
        &losses(&w2),
        &losses(&w1),
        1e-5,
    );
}

/// Run golden `name` from its own config on `nproc` CPU ranks; check the curve (1e-4 relative
/// per step, at least 16 steps) and return the run directory.
fn golden_on_ranks(name: &str, nproc: u32) -> tempfile::TempDir {
    let golden = repo().join("golden/runs").join(name);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let port = free_port().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_tunebridge"))
        .arg("run")
        .arg(golden.join("config.yaml"))
        .arg("-o")
        .arg(&out)
        .args(["-q", "--nproc-per-node", &nproc.to_string()])
        .args(["--master-port", &port])
        .current_dir(repo())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let want = losses(&golden);
    assert!(want.len() >= 16, "{name}: golden has {} steps", want.len());
    assert_close(name, &losses(&out), &want, 1e-4);
    tmp
}

#[test]
fn axolotl_on_two_cpu_ranks_matches_golden() {
    // golden/runs/axolotl-lora-llama-2ranks: real Axolotl 0.19 under torchrun on 2 gloo ranks
    // (scripts/reference/axolotl_cpu_ranks.py); DDP averages the ranks' micro-batch means.
    let name = "axolotl-lora-llama-2ranks";
    let tmp = golden_on_ranks(name, 2);
    crate::run::adapter_matches(name, &tmp.path().join("run"));
}

#[test]
fn torchtune_distributed_on_two_cpu_ranks_matches_golden() {
    // golden/runs/torchtune-lora-qwen2-2ranks: real TorchTune 0.6.1 lora_finetune_distributed
    // (FSDP2) on 2 gloo ranks. Each rank draws its rows of every LoRA A from seed 42 + rank;
    // DistributedSampler shards; gradients summed and scaled by W / Σ unshifted tokens.
    let name = "torchtune-lora-qwen2-2ranks";
    let tmp = golden_on_ranks(name, 2);
    crate::run::adapter_matches_torchtune_native(name, &tmp.path().join("run"));
}

#[test]
fn torchrun_variables_give_the_launcher_curve() {
    // What `torchrun --no-python --nproc-per-node 2 tunebridge run …` sets (the agent store
    // is replaced by rank 0 hosting it, as without TORCHELASTIC_USE_AGENT_STORE).
    let tmp = tempfile::tempdir().unwrap();
    let config = default_with_batch(tmp.path(), 2, 2);
    let launched = tmp.path().join("launched");
    let o = run(&config, &launched, 4, &["--nproc-per-node", "2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let by_env = tmp.path().join("env");
    let port = free_port().to_string();
    let ranks: Vec<_> = (0..2)
        .map(|r| {
            Command::new(env!("CARGO_BIN_EXE_tunebridge"))
                .args(["run", config.to_str().unwrap(), "-o"])
                .arg(&by_env)
                .args(["--max-steps", "4", "-q"])
                .current_dir(repo())
                .envs([
                    ("RANK", r.to_string()),
                    ("LOCAL_RANK", r.to_string()),
                    ("WORLD_SIZE", "2".into()),
                    ("LOCAL_WORLD_SIZE", "2".into()),
                    ("GROUP_RANK", "0".into()),
                    ("TORCHELASTIC_RUN_ID", "test".into()),
                    ("MASTER_ADDR", "127.0.0.1".into()),
                    ("MASTER_PORT", port.clone()),
                    ("OMP_NUM_THREADS", "1".into()),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in ranks {
        let o = r.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    assert_eq!(losses(&by_env), losses(&launched));
}

#[test]
fn a_world_size_that_does_not_divide_the_global_batch_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let config = default_with_batch(tmp.path(), 2, 2);
    let o = run(
        &config,
        &tmp.path().join("w3"),
        2,
        &["--nproc-per-node", "3", "--keep-global-batch"],
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "batch.global_batch 4 is not a multiple of batch.micro_batch_per_device 2 × 3 ranks"
        ),
        "{err}"
    );
    assert!(
        tmp.path().join("w3/FAILED").is_file(),
        "the run is marked FAILED"
    );
}

#[test]
fn a_rendezvous_nobody_hosts_times_out_naming_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    let config = default_with_batch(tmp.path(), 2, 2);
    let port = free_port();
    let o = Command::new(env!("CARGO_BIN_EXE_tunebridge"))
        .args(["run", config.to_str().unwrap(), "-o"])
        .arg(tmp.path().join("lonely"))
        .args(["--max-steps", "2", "-q"])
        .current_dir(repo())
        .envs([
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", &port.to_string()),
            ("TUNEBRIDGE_DIST_TIMEOUT", "2"),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("distributed: rendezvous at 127.0.0.1:{port}")),
        "{err}"
    );
}

/// Pids of the processes whose parent is `parent` and whose environment holds `RANK=<rank>`.
fn child_with_rank(parent: u32, rank: usize) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …: the comm may hold spaces, so split after its ')'
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(parent) {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let want = format!("RANK={rank}");
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_rank_ends_the_job_within_seconds_and_marks_the_run_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let config = default_with_batch(tmp.path(), 2, 2);
    let out = tmp.path().join("killed");
    let port = free_port().to_string();
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_tunebridge"))
        .args(["run", config.to_str().unwrap(), "-o"])
        .arg(&out)
        .args(["--max-steps", "100000", "-q", "--nproc-per-node", "2"])
        .args(["--master-port", &port])
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the ranks train, then SIGKILL rank 1
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(out.join("metrics.jsonl")).map_or(0, |t| t.lines().count()) < 2 {
        assert!(Instant::now() < deadline, "the ranks never trained");
        std::thread::sleep(Duration::from_millis(50));
    }
    let victim = child_with_rank(launcher.id(), 1).expect("rank 1 is a child of the launcher");
    let t0 = Instant::now();
    // SAFETY: kill(2) on a process this test started (through the launcher).
    unsafe { libc_kill(victim, 9) };
    let o = {
        let status = loop {
            if let Some(s) = launcher.try_wait().unwrap() {
                break s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the job did not end"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        use std::io::Read;
        launcher
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    };
    let took = t0.elapsed();
    eprintln!("job ended {took:?} after rank 1 was killed");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(!o.0.success());
    assert!(
        o.1.contains("rank 1 failed (killed by signal 9 (SIGKILL))"),
        "{}",
        o.1
    );
    let failed = std::fs::read_to_string(out.join("FAILED")).unwrap();
    assert!(failed.contains("rank 1 failed"), "{failed}");
    assert!(
        !out.join("adapter_model.safetensors").exists(),
        "nothing looks complete"
    );
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// (step, lr, tokens) of every logged training step.
fn steps(run: &Path) -> Vec<(u64, f64, i64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["loss"].is_number())
        .map(|v| {
            (
                v["step"].as_u64().unwrap(),
                v["lr"].as_f64().unwrap(),
                v["tokens"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn resume_on_two_ranks_and_on_another_world_size() {
    // TorchTune saves at each epoch end (2 ranks: step 8 of 16).
    let config = repo().join("golden/runs/torchtune-lora-qwen2-2ranks/config.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let go = |out: &str, extra: &[&str]| {
        let port = free_port().to_string();
        let o = Command::new(env!("CARGO_BIN_EXE_tunebridge"))
            .arg("run")
            .arg(&config)
            .arg("-o")
            .arg(tmp.path().join(out))
            .args(["-q", "--master-port", &port])
            .args(extra)
            .current_dir(repo())
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{out}: {}", text(&o.stderr));
        tmp.path().join(out)
    };
    let whole = go("whole", &["--nproc-per-node", "2"]);
    let ck = whole.join("checkpoint-8");
    let ck = ck.to_str().unwrap();
    // the same world: the rest of the uninterrupted curve, bit for bit
    let resumed = go("resumed", &["--nproc-per-node", "2", "--resume", ck]);
    assert_eq!(losses(&resumed), losses(&whole)[8..].to_vec());
    // one rank: TorchTune restarts at epoch 1, numbered in this world (16 steps an epoch),
    // so steps 17–32 with the one-rank schedule and data of that epoch
    let alone = go("alone", &["--resume", ck]);
    let fresh = go("fresh", &[]);
    let want: Vec<(u64, f64, i64)> = steps(&fresh)[16..].to_vec();
    assert_eq!(steps(&alone), want);
}

#[test]
fn bench_on_two_ranks_reports_scaling_and_communication() {
    let port = free_port().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_tunebridge"))
        .args([
            "bench", "--shape", "tiny", "--device", "cpu", "--dtype", "fp32",
        ])
        .args([
            "--batch", "1", "--seq", "32", "--warmup", "1", "--steps", "2",
        ])
        .args(["--nproc-per-node", "2", "--master-port", &port])
        .current_dir(repo())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let line = text(&o.stdout);
    let r: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(r["world_size"], 2);
    assert_eq!(r["comm_secs"].as_array().unwrap().len(), 2, "{line}");
    let per_gpu = r["tokens_per_sec"].as_f64().unwrap();
    let total = r["total_tokens_per_sec"].as_f64().unwrap();
    assert!(total > per_gpu, "{line}");
    assert!(r["single_tokens_per_sec"].as_f64().unwrap() > 0.0, "{line}");
    assert!(r["scaling_efficiency"].as_f64().unwrap() > 0.0, "{line}");
    assert!(
        text(&o.stderr).contains("2 rank(s):"),
        "{}",
        text(&o.stderr)
    );
}

/// tiny-llama with its two decoder layers repeated: four layers, so that "at most two layers
/// gathered" is a real bound.
fn four_layer_llama(dir: &Path) -> PathBuf {
    use tunebridge::engine::io::{read_safetensors, write_safetensors};
    let src = repo().join("fixtures/models/tiny-llama");
    let dst = dir.join("tiny-llama-4layers");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name == "config.json" {
            let mut c: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            c["num_hidden_layers"] = serde_json::json!(4);
            std::fs::write(dst.join(name), c.to_string()).unwrap();
        } else if name != "model.safetensors" {
            std::fs::copy(&p, dst.join(name)).unwrap();
        }
    }
    let mut tensors: Vec<(String, tch::Tensor)> = Vec::new();
    for (k, t) in read_safetensors(&src.join("model.safetensors")).unwrap() {
        if let Some(rest) = k.strip_prefix("model.layers.") {
            let (i, tail) = rest.split_once('.').unwrap();
            let i: usize = i.parse().unwrap();
            tensors.push((format!("model.layers.{}.{tail}", i + 2), t.copy()));
        }
        tensors.push((k, t));
    }
    write_safetensors(&dst.join("model.safetensors"), &tensors).unwrap();
    dst
}

#[test]
fn full_shard_gathers_two_layers_at_most_and_equals_the_replicated_run() {
    // FSDP2 over LoRA: each rank keeps half of every layer's frozen weights and gathers a
    // layer (and prefetches the next) only while it runs; the gathered weights are the loaded
    // ones bit for bit, so the curve is the replicated (DDP) run's exactly.
    let tmp = tempfile::tempdir().unwrap();
    let model = four_layer_llama(tmp.path());
    let base = std::fs::read_to_string(repo().join("fixtures/default/axolotl-tiny-llama.yaml"))
        .unwrap()
        .replace(
            "base_model: fixtures/models/tiny-llama",
            &format!("base_model: {}", model.display()),
        )
        // the pinned adapter has two layers; a fresh one is drawn from the seed instead
        .replace(
            "lora_model_dir: golden/runs/axolotl-lora-llama/init_adapter\n",
            "",
        );
    let ddp = tmp.path().join("ddp.yaml");
    std::fs::write(&ddp, &base).unwrap();
    let fsdp = tmp.path().join("fsdp.yaml");
    std::fs::write(
        &fsdp,
        format!("{base}fsdp_version: 2\nfsdp_config:\n  reshard_after_forward: true\n"),
    )
    .unwrap();
    let (out_ddp, out_fsdp) = (tmp.path().join("run-ddp"), tmp.path().join("run-fsdp"));
    for (config, out) in [(&ddp, &out_ddp), (&fsdp, &out_fsdp)] {
        let o = run(config, out, 4, &["--nproc-per-node", "2"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    assert_eq!(losses(&out_fsdp), losses(&out_ddp));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(out_fsdp.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("loss").is_some())
        .collect();
    // 4 layers × (4·64·64 attention, with k/v 64·32, + 3·64·128 MLP) fp32, halved
    let per_layer = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128;
    for r in &rows {
        let s = &r["sharded"];
        assert_eq!(s["layers_gathered_max"], 2, "{r}");
        assert_eq!(s["resident_bytes"], 4 * per_layer * 4 / 2, "{r}");
    }
    assert!(std::fs::read_to_string(out_ddp.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .all(|l| !l.contains("sharded")));
}
