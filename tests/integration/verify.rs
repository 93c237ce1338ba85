//! `tunebridge verify`: port + two engine runs + diff, end to end through the binary.
//! A port to the same framework must verify; a port whose semantics differ must be
//! reported as differing, with the first divergent step and the report files written.

#![cfg(feature = "engine")]

use crate::harness::{text, tunebridge};

#[test]
fn the_bundled_default_port_to_unsloth_is_reported_as_differing() {
    let out = tempfile::tempdir().unwrap();
    let res = tunebridge(&[
        "verify",
        "fixtures/default/axolotl-tiny-llama.yaml",
        "--against",
        "unsloth",
        "--max-steps",
        "8",
        "-q",
        "-o",
        out.path().to_str().unwrap(),
    ]);
    let stdout = text(&res.stdout);
    assert_eq!(
        res.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&res.stderr)
    );
    assert!(stdout.contains("verdict: DIFFERS"), "{stdout}");
    assert!(
        stdout.contains("leaves the tolerance band at step 1"),
        "{stdout}"
    );
    for f in [
        "report/curves.png",
        "report/curves.svg",
        "report/report.md",
        "report/report.html",
        "report/port.md",
        "ported/train_unsloth.py",
    ] {
        assert!(out.path().join(f).is_file(), "{f} missing");
    }
    let port = std::fs::read_to_string(out.path().join("report/port.md")).unwrap();
    assert!(
        port.contains("`loss.normalization` | mean_of_microbatch_means | not expressible"),
        "{port}"
    );
}

#[test]
fn a_port_to_the_same_framework_verifies() {
    let out = tempfile::tempdir().unwrap();
    let res = tunebridge(&[
        "verify",
        "golden/runs/torchtune-lora-qwen2/config.yaml",
        "--against",
        "torchtune",
        "--max-steps",
        "6",
        "-q",
        "-o",
        out.path().to_str().unwrap(),
    ]);
    let stdout = text(&res.stdout);
    assert_eq!(
        res.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&res.stderr)
    );
    assert!(
        stdout.contains("verdict: MATCH") || stdout.contains("verdict: PASS"),
        "{stdout}"
    );
}
