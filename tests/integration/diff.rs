//! `tunebridge diff` on files written by the real frameworks (golden/runs/) and on the edge
//! cases in fixtures/runs/ (written by fixtures/runs/make_fixtures.py).
//!
//! Hand-checked values below were read off the golden files themselves (log.txt line 1,
//! trainer_state.json log_history[0] and [31]).

use crate::harness::{repo, text, tunebridge};
use std::path::{Path, PathBuf};
use tunebridge::diff::{self, DiffOptions};
use tunebridge::ingest::{self, Format, Precision, WeightOrigin, WeightSource};

fn golden(name: &str) -> PathBuf {
    repo().join("golden/runs").join(name)
}

/// Golden runs that are present (others may be regenerated or absent in a checkout).
fn golden_runs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("golden/runs"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("metrics.jsonl").is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn show(o: &std::process::Output) -> String {
    format!(
        "```stdout\n{}\n```\n```stderr\n{}\n```",
        text(&o.stdout),
        text(&o.stderr)
    )
}

#[test]
fn reads_torchtune_golden() {
    let run = ingest::read_run(&golden("torchtune-lora-qwen2"), None).unwrap();
    assert_eq!(run.format, Format::Torchtune);
    assert_eq!(run.precision, Precision::Fp32);
    let c = run.curve.as_ref().unwrap();
    assert_eq!(c.points.len(), 32);
    // log.txt line 1: `Step 1 | loss:6.222100257873535 lr:0.001 … grad_norm:0.47407111525535583`
    let p = &c.points[0];
    assert_eq!(
        (p.step, p.loss, p.lr, p.grad_norm),
        (1, 6.222100257873535, Some(0.001), Some(0.47407111525535583))
    );
    assert_eq!(p.tokens, None, "TorchTune logs tokens per second only");
    let w = run.weights.as_ref().unwrap();
    assert_eq!(w.origin, WeightOrigin::TorchtuneNative);
    assert!(w.files[0].ends_with("adapter_model_torchtune.safetensors"));
    let m = w.model.as_ref().unwrap();
    assert_eq!(
        (m.family.as_str(), m.num_heads, m.num_kv_heads, m.head_dim),
        ("qwen2", 4, 2, 16)
    );
    let cfg = w.adapter_config.as_ref().unwrap();
    assert_eq!((cfg.r, cfg.lora_alpha), (8, 16.0));
}

#[test]
fn reads_axolotl_golden() {
    let run = ingest::read_run(&golden("axolotl-lora-llama"), None).unwrap();
    assert_eq!(run.format, Format::Hf);
    assert_eq!(
        run.precision,
        Precision::Fp32,
        "config.yaml: bf16/fp16/tf32 false"
    );
    let c = run.curve.as_ref().unwrap();
    assert_eq!(c.points.len(), 32);
    // trainer_state.json log_history[0]: loss 6.2812418937683105, learning_rate 0.0,
    // grad_norm 0.5839325785636902, tokens/total 334; [31]: step 32, tokens/total 10506.
    let p = &c.points[0];
    assert_eq!(
        (p.step, p.loss, p.lr, p.grad_norm),
        (1, 6.2812418937683105, Some(0.0), Some(0.5839325785636902))
    );
    assert_eq!(p.tokens, Some(334.0));
    assert_eq!(p.epoch, Some(0.0625));
    assert_eq!(c.points[31].tokens, Some(10506.0));
    let w = run.weights.as_ref().unwrap();
    assert_eq!(w.origin, WeightOrigin::Peft);
    assert_eq!(w.adapter_config.as_ref().unwrap().r, 8);
}

/// Our readers agree with golden_tools.py (an independent Python parser) on every golden run.
#[test]
fn golden_curves_match_their_metrics_jsonl() {
    let runs = golden_runs();
    assert!(runs.len() >= 2, "golden runs missing");
    for dir in runs {
        let native =
            ingest::read_run(&dir, None).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let jsonl = ingest::read_run(&dir.join("metrics.jsonl"), None).unwrap();
        let (a, b) = (native.curve.unwrap(), jsonl.curve.unwrap());
        assert_ne!(
            a.source,
            b.source,
            "{}: the native log must be read, not metrics.jsonl",
            dir.display()
        );
        assert_eq!(a.points.len(), b.points.len(), "{}", dir.display());
        for (x, y) in a.points.iter().zip(&b.points) {
            assert_eq!(
                (x.step, x.loss, x.lr, x.grad_norm),
                (y.step, y.loss, y.lr, y.grad_norm),
                "{}",
                dir.display()
            );
        }
    }
}

#[test]
fn every_golden_run_against_itself_passes() {
    for dir in golden_runs() {
        let d = dir.to_string_lossy().to_string();
        let o = tunebridge(&["diff", &d, &d]);
        assert_eq!(code(&o), 0, "{d}\n{}", show(&o));
        assert!(text(&o.stdout).contains("verdict: PASS"), "{}", show(&o));
    }
}

/// TorchTune 0.6.1 exports Qwen2 q/k lora_B rows permuted as for Llama; undoing that makes
/// the PEFT export equal the native adapter exactly (checked in Python too: the export is
/// `tune_to_hf(native)` for q/k and a copy elsewhere).
#[test]
fn torchtune_peft_export_matches_native_after_qk_fix() {
    let run = ingest::read_run(&golden("torchtune-lora-qwen2"), None).unwrap();
    let native = run.weights.clone().unwrap();
    let export = WeightSource {
        files: vec![golden("torchtune-lora-qwen2/adapter_model.safetensors")],
        origin: WeightOrigin::TorchtunePeftExport,
        ..native.clone()
    };
    let opts = diff::WeightOptions::default();
    let d = diff::weights::diff_weights(&native, &export, &opts).unwrap();
    assert_eq!(d.summary.compared, 14);
    assert_eq!(d.summary.max_rel, 0.0, "{:?}", d.summary);
    assert!(
        d.notes.iter().any(|n| n.contains("undone")),
        "{:?}",
        d.notes
    );
    // Read as plain PEFT, the q/k modules differ: the permutation is real.
    let naive = WeightSource {
        origin: WeightOrigin::Peft,
        ..export
    };
    let d = diff::weights::diff_weights(&native, &naive, &opts).unwrap();
    let bad: Vec<&str> = d
        .modules
        .iter()
        .filter(|m| !m.within)
        .map(|m| m.module.as_str())
        .collect();
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert!(
        bad.iter()
            .all(|m| m.ends_with("q_proj") || m.ends_with("k_proj")),
        "{bad:?}"
    );
}

/// Fabricate "the same run with another lr": the golden log with lr doubled from step 9 and
/// the losses after it lower, as a faster-learning run would log them.
fn lr_changed_copy(dir: &Path) -> PathBuf {
    let src = std::fs::read_to_string(golden("torchtune-lora-qwen2/log.txt")).unwrap();
    let run = dir.join("torchtune-lr-changed");
    std::fs::create_dir_all(run.join("logs")).unwrap();
    std::fs::copy(
        golden("torchtune-lora-qwen2/config.yaml"),
        run.join("config.yaml"),
    )
    .unwrap();
    let mut out = String::new();
    for line in src.lines() {
        let Some((head, rest)) = line.split_once('|') else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let step: u64 = head.trim_start_matches("Step ").trim().parse().unwrap();
        let mut items = Vec::new();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once(':').unwrap();
            let v: f64 = v.parse().unwrap();
            let v = match (k, step >= 9) {
                ("lr", true) => v * 2.0,
                ("loss", true) => v - 0.004 * (step - 8) as f64,
                _ => v,
            };
            items.push(format!("{k}:{v} "));
        }
        out.push_str(&format!("{head}| {}\n", items.concat()));
    }
    std::fs::write(run.join("logs/log_1764355200.txt"), out).unwrap();
    run
}

#[test]
fn changed_lr_fails_and_the_report_names_the_first_divergent_step() {
    let tmp = tempfile::tempdir().unwrap();
    let changed = lr_changed_copy(tmp.path());
    let report = tmp.path().join("report");
    let g = golden("torchtune-lora-qwen2");
    let o = tunebridge(&[
        "diff",
        g.to_str().unwrap(),
        changed.to_str().unwrap(),
        "--curves-only",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    let out = text(&o.stdout);
    assert!(out.contains("verdict: DIFFERS"), "{}", show(&o));
    assert!(
        out.contains("[curve-outside-tolerance] loss leaves the tolerance band at step 9"),
        "{}",
        show(&o)
    );
    assert!(
        out.contains("[lr-differs] logged learning rates first differ at step 9"),
        "{}",
        show(&o)
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("# tunebridge diff: DIFFERS"));
    assert!(md.contains("first step outside the band: 9"), "{md}");
    assert!(md.contains("![loss curves](curves.png)"));
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("step 9"),
        "the HTML inlines the plot"
    );
    let png = std::fs::read(report.join("curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let csv = std::fs::read_to_string(report.join("curves.csv")).unwrap();
    assert_eq!(csv.lines().count(), 33, "header + 32 rows");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("diff.json")).unwrap()).unwrap();
    let first = json["curves"]["first_divergent"].as_u64().unwrap() as usize;
    assert_eq!(json["curves"]["rows"][first]["step_a"], 9);
    assert_eq!(json["verdict"]["pass"], false);
}

/// Axolotl with train_on_inputs false vs true (another masking), both real runs.
#[test]
fn changed_masking_fails_at_step_one() {
    let (a, b) = (
        golden("axolotl-lora-llama"),
        golden("axolotl-lora-llama-inputs"),
    );
    let o = tunebridge(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"]["pass"], false);
    let ids: Vec<&str> = v["verdict"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["curve-outside-tolerance", "weights-outside-tolerance"]
    );
    let first = v["curves"]["first_divergent"].as_u64().unwrap() as usize;
    assert_eq!(v["curves"]["rows"][first]["step_a"], 1);
}

#[test]
fn tolerance_flags_override_the_precision_defaults() {
    let (a, b) = (
        golden("axolotl-lora-llama"),
        golden("axolotl-lora-llama-inputs"),
    );
    let o = tunebridge(&[
        "diff",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--curves-only",
        "--rtol",
        "0.05",
    ]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        text(&o.stdout).contains("fp32 defaults; --rtol"),
        "{}",
        show(&o)
    );
}

#[test]
fn by_tokens_needs_token_counts() {
    let a = golden("axolotl-lora-llama");
    let o = tunebridge(&[
        "diff",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
        "--by",
        "tokens",
    ]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(text(&o.stdout).contains("loss curves by tokens"));
    let t = golden("torchtune-lora-qwen2");
    let o = tunebridge(&[
        "diff",
        t.to_str().unwrap(),
        a.to_str().unwrap(),
        "--by",
        "tokens",
    ]);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(text(&o.stderr).contains("no token counts"), "{}", show(&o));
}

#[test]
fn adapters_against_themselves_pass() {
    for dir in [
        "torchtune-lora-qwen2/init_adapter",
        "axolotl-lora-llama/init_adapter",
    ] {
        let p = golden(dir);
        if !p.is_dir() {
            continue;
        }
        let o = tunebridge(&["diff", p.to_str().unwrap(), p.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{}", show(&o));
    }
}

#[test]
fn other_rank_same_update_passes_with_a_remark() {
    let o = tunebridge(&[
        "diff",
        "fixtures/runs/tunebridge-mini",
        "fixtures/runs/tunebridge-mini-r8",
    ]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        text(&o.stdout).contains("[rank-differs] LoRA ranks differ (A r=4, B r=8)"),
        "{}",
        show(&o)
    );
}

#[test]
fn other_targets_are_listed() {
    let o = tunebridge(&[
        "diff",
        "fixtures/runs/tunebridge-mini",
        "fixtures/runs/tunebridge-mini-targets",
    ]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    let out = text(&o.stdout);
    assert!(
        out.contains(
            "[tensors-missing] B lacks 2 modules that A has: `model.layers.0.self_attn.v_proj`"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "[tensors-extra] B has 2 modules that A lacks: `model.layers.0.self_attn.k_proj`"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "[targets-differ] LoRA target_modules differ: A [q_proj, v_proj], B [k_proj, q_proj]"
        ),
        "{out}"
    );
}

#[test]
fn different_lengths_are_reported() {
    let o = tunebridge(&[
        "diff",
        "fixtures/runs/tunebridge-mini",
        "fixtures/runs/curves/short.jsonl",
    ]);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(text(&o.stdout).contains("[length-mismatch] the runs have different lengths: A ends at step 20 (20 points), B at step 15"));
}

#[test]
fn bad_input_is_a_clear_error() {
    for (input, want) in [
        (
            "fixtures/runs/torchtune-truncated",
            "log_1764355200.txt:5: truncated record",
        ),
        (
            "fixtures/runs/torchtune-empty",
            "log_1764355200.txt: no curve points (the file is empty)",
        ),
        (
            "fixtures/runs/hf-nan",
            "checkpoint-4/trainer_state.json:22: loss is NaN at step 3",
        ),
        (
            "fixtures/runs/torchtune-pt-only/epoch_0/adapter_model.pt",
            "a pickled PyTorch file; tunebridge reads safetensors only",
        ),
        (
            "fixtures/runs/no-such-run",
            "no-such-run: run folder or file not found",
        ),
    ] {
        let o = tunebridge(&["diff", input, "fixtures/runs/tunebridge-mini"]);
        assert_eq!(code(&o), 2, "{input}\n{}", show(&o));
        let err = text(&o.stderr);
        assert!(err.starts_with("error: run A: "), "{err}");
        assert!(err.contains(want), "{input}: want `{want}`\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn pickled_adapter_in_a_run_is_a_note_not_a_failure() {
    let o = tunebridge(&[
        "diff",
        "fixtures/runs/torchtune-pt-only",
        "fixtures/runs/torchtune-pt-only",
    ]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        text(&o.stdout).contains("adapter_model.pt: weights not compared: a pickled PyTorch file")
    );
}

/// Full checkpoints tensor by tensor: the TorchTune full fine-tune against its base model.
#[test]
fn full_checkpoint_against_its_base() {
    let trained = golden("torchtune-full-qwen2/model.safetensors");
    if !trained.is_file() {
        return;
    }
    let base = repo().join("fixtures/models/tiny-qwen2/model.safetensors");
    let opts = DiffOptions::default();
    let c = diff::diff_paths(&base, &trained, None, None, &opts).unwrap();
    let w = c.weights.as_ref().unwrap();
    assert_eq!(w.kind, diff::weights::WeightKind::Full);
    assert!(w.summary.compared >= 20, "{:?}", w.summary);
    assert!(!c.verdict.pass, "training moved the weights");
    let same = diff::diff_paths(&trained, &trained, None, None, &opts).unwrap();
    assert!(same.verdict.pass);
    assert_eq!(same.weights.unwrap().summary.max_rel, 0.0);
}

/// The golden TorchTune run laid out as `tune run` leaves it: `logs/log_<ts>.txt`,
/// `epoch_0/` and `epoch_1/` with the PEFT export and `adapter_config.json`, and
/// `torchtune_config.yaml`. The newest epoch is read, the export's q/k rows are un-permuted
/// (Qwen2), and the run equals the flattened golden.
#[test]
fn torchtune_output_dir_layout_reads_the_newest_epoch() {
    let g = golden("torchtune-lora-qwen2");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("logs")).unwrap();
    std::fs::copy(g.join("log.txt"), out.join("logs/log_1764355200.txt")).unwrap();
    std::fs::write(out.join("logs/log_1700000000.txt"), "Step 1 | loss:9.0 \n").unwrap(); // an older run
    std::fs::copy(g.join("config.yaml"), out.join("torchtune_config.yaml")).unwrap();
    for (epoch, src) in [("epoch_0", g.join("init_adapter")), ("epoch_1", g.clone())] {
        std::fs::create_dir_all(out.join(epoch)).unwrap();
        for f in ["adapter_model.safetensors", "adapter_config.json"] {
            std::fs::copy(src.join(f), out.join(epoch).join(f)).unwrap();
        }
        std::fs::write(out.join(epoch).join("adapter_model.pt"), b"pickle").unwrap();
    }
    let run = ingest::read_run(&out, None).unwrap();
    assert_eq!(run.format, Format::Torchtune);
    assert_eq!(
        run.curve.as_ref().unwrap().points.len(),
        32,
        "the newest log, not the older one"
    );
    let w = run.weights.as_ref().unwrap();
    assert!(
        w.files[0].ends_with("epoch_1/adapter_model.safetensors"),
        "{:?}",
        w.files
    );
    assert_eq!(w.origin, WeightOrigin::TorchtunePeftExport);
    let o = tunebridge(&["diff", g.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        text(&o.stdout).contains("permutation is undone"),
        "{}",
        show(&o)
    );
}

/// The golden Axolotl run laid out as `axolotl train` leaves it: `trainer_state.json` only in
/// `checkpoint-32/` (Axolotl never calls save_state), the final adapter at the root.
#[test]
fn hf_output_dir_layout_reads_the_newest_checkpoint() {
    let g = golden("axolotl-lora-llama");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for ck in ["checkpoint-16", "checkpoint-32"] {
        std::fs::create_dir_all(out.join(ck)).unwrap();
    }
    std::fs::copy(
        g.join("trainer_state.json"),
        out.join("checkpoint-32/trainer_state.json"),
    )
    .unwrap();
    std::fs::write(
        out.join("checkpoint-16/trainer_state.json"),
        "{\"log_history\": [{\"loss\": 9.0, \"step\": 1}]}",
    )
    .unwrap();
    for f in ["adapter_model.safetensors", "adapter_config.json"] {
        std::fs::copy(g.join(f), out.join(f)).unwrap();
    }
    let run = ingest::read_run(&out, None).unwrap();
    assert_eq!(run.format, Format::Hf);
    assert!(run
        .curve
        .as_ref()
        .unwrap()
        .source
        .ends_with("checkpoint-32/trainer_state.json"));
    assert!(run.weights.as_ref().unwrap().files[0].ends_with("out/adapter_model.safetensors"));
    let o = tunebridge(&["diff", g.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", show(&o));
}

/// Curves on their own, in every plain format: the golden trainer_state.json against the
/// golden metrics.jsonl and a CSV of the same numbers.
#[test]
fn plain_curve_files_compare_with_the_native_logs() {
    let g = golden("axolotl-lora-llama");
    let tmp = tempfile::tempdir().unwrap();
    let run = ingest::read_run(&g, None).unwrap();
    let mut csv = String::from("step,loss,learning_rate\n");
    for p in &run.curve.as_ref().unwrap().points {
        csv.push_str(&format!("{},{},{}\n", p.step, p.loss, p.lr.unwrap()));
    }
    let csv_path = tmp.path().join("curve.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let state = g.join("trainer_state.json");
    for other in [g.join("metrics.jsonl"), csv_path] {
        let o = tunebridge(&["diff", state.to_str().unwrap(), other.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{}", show(&o));
        assert!(text(&o.stdout).contains("32 compared"), "{}", show(&o));
    }
}
