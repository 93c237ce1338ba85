//! The command line as a user meets it: exit codes, error rendering, docs kept in sync.

use crate::harness::{check_golden, repo, text, tunebridge};

#[test]
fn mappings_doc_is_up_to_date() {
    let out = tunebridge(&["mappings"]);
    assert!(out.status.success());
    check_golden(&repo().join("docs/MAPPINGS.md"), &text(&out.stdout)).unwrap();
}

#[test]
fn malformed_yaml_points_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "base_model: x\ndatasets: [\n  - path: a\nlora_r: 8\n").unwrap();
    let out = tunebridge(&["port", bad.to_str().unwrap(), "--to", "axolotl"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("error[syntax]"), "{err}");
    assert!(err.contains("bad.yaml:"), "{err}");
}

#[test]
fn unsupported_features_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dpo.yaml");
    std::fs::write(&cfg, "base_model: meta-llama/Llama-3.2-1B\nrl: dpo\ndatasets:\n  - path: x\n    type: chat_template.default\nlearning_rate: 1e-5\n").unwrap();
    let out = tunebridge(&["port", cfg.to_str().unwrap(), "--to", "axolotl"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("not supported: reinforcement learning"),
        "{err}"
    );
    assert!(err.contains("dpo.yaml:2:1"), "{err}");
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("typo.yaml");
    std::fs::write(
        &cfg,
        "base_model: meta-llama/Llama-3.2-1B\nadapter: lora\nlora_rr: 8\nlora_target_linear: true\ndatasets:\n  - path: tatsu-lab/alpaca\n    type: alpaca\nlearning_rate: 2e-4\n",
    )
    .unwrap();
    let out = tunebridge(&["port", cfg.to_str().unwrap(), "--to", "axolotl"]);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning[unknown-key]: unknown key `lora_rr`"),
        "{err}"
    );
    assert!(err.contains("typo.yaml:3:1"), "{err}");
    assert!(err.contains("did you mean `lora_r`?"), "{err}");
}

#[test]
fn strict_port_fails_on_lossy_fields() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "base_model: meta-llama/Llama-3.2-1B\nadapter: lora\nlora_r: 8\nlora_alpha: 16\nlora_target_linear: true\ndatasets:\n  - path: tatsu-lab/alpaca\n    type: alpaca\nlearning_rate: 2e-4\nmicro_batch_size: 2\ngradient_accumulation_steps: 4\n",
    )
    .unwrap();
    let ok = tunebridge(&[
        "port",
        cfg.to_str().unwrap(),
        "--to",
        "axolotl",
        "--strict",
        "--json",
    ]);
    assert_eq!(ok.status.code(), Some(1), "{}", text(&ok.stderr));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["to"], "axolotl");
    assert!(report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["status"] == "approximated"));
}

#[test]
fn devices_rescale_accumulation_and_keep_the_global_batch() {
    let out = tunebridge(&[
        "port",
        "fixtures/configs/axolotl/llama3_2-1b-lora-alpaca.yaml",
        "--to",
        "axolotl",
        "--devices",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = report["text"].as_str().unwrap();
    assert!(t.contains("gradient_accumulation_steps: 1"), "{t}");
    assert_eq!(
        report["engine_command"],
        "tunebridge run CONFIG --nproc-per-node 2 --device cuda"
    );
    assert!(report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["id"] == "effective-batch"));
}

/// `tune run … key=value` overrides apply to a TorchTune config before it is read, and are
/// refused with a clear message for the other formats.
#[test]
fn torchtune_overrides_apply_like_tune_run() {
    let out = tunebridge(&[
        "inspect",
        "fixtures/configs/torchtune/gemma2-2b-lora-alpaca-json.yaml",
        "optimizer.lr=5e-5",
        "model.lora_rank=32",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spec"]["optimizer"]["lr"], 5e-5);
    assert_eq!(v["spec"]["adapter"]["rank"], 32);
    assert_eq!(v["provenance"]["adapter.rank"]["key"], "model.lora_rank");

    let out = tunebridge(&[
        "port",
        "fixtures/configs/axolotl/llama3_2-1b-lora-alpaca.yaml",
        "--to",
        "torchtune",
        "optimizer.lr=1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("overrides apply to TorchTune configs only"));
}
