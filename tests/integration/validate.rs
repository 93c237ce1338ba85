//! The real frameworks accept what tunebridge writes. Every fixture of every source framework
//! is translated; the Axolotl translations must pass Axolotl's own config validation
//! (`scripts/validate/axolotl_validate.py`: pydantic `validate_config`, no model or data
//! loading), and the TorchTune translations must load with OmegaConf with every `_component_`
//! importable and the recipe shipped (`scripts/validate/torchtune_validate.py`). The six
//! configs of a `tunebridge gen` rank × learning-rate sweep are checked the same way.
//!
//! These need Python environments with the frameworks installed: set
//! `TUNEBRIDGE_AXOLOTL_PYTHON` and `TUNEBRIDGE_TORCHTUNE_PYTHON` to their interpreters (see
//! docs/PORTING.md, "Checking translations with the real frameworks"). Without them each test
//! prints how to enable it and passes.

use crate::harness::{fixtures, repo};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use tunebridge::diag::Source;
use tunebridge::gen;
use tunebridge::translate::{self, Framework, WriteOptions};

/// Every fixture of every framework, translated to `to` and written into `dir`. Returns the
/// written files and the fixtures that could not be translated (reader or writer missing).
fn translate_all(to: Framework, dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let sets = [
        (
            Framework::Axolotl,
            "fixtures/configs/axolotl",
            &["yaml", "yml"][..],
        ),
        (
            Framework::Torchtune,
            "fixtures/configs/torchtune",
            &["yaml", "yml"][..],
        ),
        (Framework::Unsloth, "fixtures/configs/unsloth", &["py"][..]),
    ];
    let (mut written, mut skipped) = (Vec::new(), Vec::new());
    for (from, folder, exts) in sets {
        for path in fixtures(folder, exts) {
            let name = path
                .strip_prefix(repo())
                .unwrap_or(&path)
                .display()
                .to_string();
            let source = Source::new(name.clone(), std::fs::read_to_string(&path).unwrap());
            let out = catch_unwind(AssertUnwindSafe(|| {
                let parsed = translate::read(from, &source).ok()?;
                let opts = WriteOptions {
                    strict: false,
                    source_name: name.clone(),
                };
                Some(translate::write(to, &parsed.resolved, from.name(), &opts))
            }));
            match out {
                Ok(Some(w)) => {
                    let stem = path.file_stem().unwrap().to_string_lossy();
                    let file = dir.join(format!("{}__{stem}.yaml", from.name()));
                    std::fs::write(&file, &w.text).unwrap();
                    written.push(file);
                }
                _ => skipped.push(format!("{name} (does not read or write yet)")),
            }
        }
    }
    // The configs `tunebridge gen` writes for a rank × learning-rate sweep must pass too.
    let template = gen::Template::load(&repo().join("fixtures/templates/sweep-lora.yaml.j2"), None)
        .expect("the sweep template loads");
    let points = gen::grid::expand(
        &["devices=1".into(), "global_batch=16".into()],
        &["rank=8,16,32".into(), "lr=1e-4,2e-4".into()],
        &[],
    )
    .expect("the sweep expands");
    let gen_dir = dir.join("gen");
    for r in gen::generate(&template, &points, &[to], &gen_dir).expect("the sweep is written") {
        match r.status.as_str() {
            "ok" => written.push(gen_dir.join(&r.path)),
            why => skipped.push(format!("gen {} ({why})", r.name)),
        }
    }
    (written, skipped)
}

/// Run a validator script over the files; one JSON result per file.
fn run_validator(python: &str, script: &str, files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(python)
        .arg(repo().join(script))
        .args(files)
        .env("AXOLOTL_DO_NOT_TRACK", "1")
        .env("DO_NOT_TRACK", "1")
        .env("HF_HUB_OFFLINE", "1")
        .env("CUDA_VISIBLE_DEVICES", "")
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(
        results.len(),
        files.len(),
        "{script} reported {} of {} files; it crashed?\nstderr:\n{}",
        results.len(),
        files.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

fn label(v: &Value) -> String {
    let f = v["file"].as_str().unwrap_or("");
    Path::new(f)
        .file_name()
        .map_or(f.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The interpreter named by `var`, or None (after saying how to enable the test).
fn python(var: &str, env: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            println!(
                "skipped: set {var}=$HOME/.cache/tunebridge/ref/{env}/bin/python (a Python with the framework installed; see docs/PORTING.md)"
            );
            None
        }
    }
}

#[test]
fn axolotl_accepts_every_translation() {
    let Some(python) = python("TUNEBRIDGE_AXOLOTL_PYTHON", "ax") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (files, skipped) = translate_all(Framework::Axolotl, dir.path());
    assert!(
        files.len() >= 13,
        "expected the Axolotl fixtures at least, got {}",
        files.len()
    );
    let results = run_validator(&python, "scripts/validate/axolotl_validate.py", &files);
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != Value::Bool(true))
        .map(|r| format!("{}: {}", label(r), r["error"].as_str().unwrap_or("")))
        .collect();
    println!(
        "Axolotl validated {} of {} translations{}",
        results.len() - failures.len(),
        results.len(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; not translated: {}", skipped.join(", "))
        }
    );
    assert!(
        failures.is_empty(),
        "Axolotl rejects:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn torchtune_resolves_every_translation() {
    let Some(python) = python("TUNEBRIDGE_TORCHTUNE_PYTHON", "tt") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (files, skipped) = translate_all(Framework::Torchtune, dir.path());
    assert!(!files.is_empty(), "no TorchTune translation was written");
    let results = run_validator(&python, "scripts/validate/torchtune_validate.py", &files);
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != Value::Bool(true))
        .map(|r| format!("{}: {}", label(r), r["error"].as_str().unwrap_or("")))
        .collect();
    let unverified: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r["unverified"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |u| format!("{}: {}", label(r), u.as_str().unwrap_or("")))
        })
        .collect();
    println!(
        "TorchTune resolved {} of {} translations{}{}",
        results.len() - failures.len(),
        results.len(),
        if unverified.is_empty() {
            String::new()
        } else {
            format!(
                "; unverified (optional package missing): {}",
                unverified.len()
            )
        },
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; not translated: {}", skipped.join(", "))
        }
    );
    assert!(
        failures.is_empty(),
        "TorchTune rejects:\n{}",
        failures.join("\n\n")
    );
}
