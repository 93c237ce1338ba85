//! Every fixture parses, matches its golden IR and translations, and round-trips through
//! every other format: A → IR → B → IR equals the first IR except the fields the report
//! lists as approximated or not expressible.

use crate::harness::{check_golden, fixtures, repo};
use std::path::Path;
use tunebridge::diag::{Severity, Source};
use tunebridge::ir::tree::Flat;
use tunebridge::translate::{self, Framework, Status, WriteOptions};

/// Writers that exist so far; the others are skipped as targets.
pub const WRITERS: &[Framework] = &[Framework::Axolotl, Framework::Torchtune, Framework::Unsloth];

fn fixture_sets() -> Vec<(Framework, Vec<std::path::PathBuf>)> {
    vec![
        (
            Framework::Axolotl,
            fixtures("fixtures/configs/axolotl", &["yaml", "yml"]),
        ),
        (
            Framework::Torchtune,
            fixtures("fixtures/configs/torchtune", &["yaml", "yml"]),
        ),
        (
            Framework::Unsloth,
            fixtures("fixtures/configs/unsloth", &["py"]),
        ),
    ]
}

fn ext(fw: Framework) -> &'static str {
    if fw == Framework::Unsloth {
        "py"
    } else {
        "yaml"
    }
}

fn read(fw: Framework, path: &Path) -> translate::Parsed {
    let text = std::fs::read_to_string(path).unwrap();
    let source = Source::new(
        path.strip_prefix(repo())
            .unwrap_or(path)
            .display()
            .to_string(),
        text,
    );
    match translate::read(fw, &source) {
        Ok(p) => p,
        Err(e) => {
            let rendered: String = e
                .diagnostics()
                .iter()
                .map(|d| d.render(Some(&source)))
                .collect();
            panic!("{} does not read as {fw}:\n{rendered}", source.name)
        }
    }
}

/// Every fixture reads without errors and matches its golden IR.
#[test]
fn fixtures_parse_and_match_golden_ir() {
    let mut failures = Vec::new();
    for (fw, files) in fixture_sets() {
        for path in files {
            let parsed = read(fw, &path);
            let unknown: Vec<_> = parsed
                .diagnostics
                .iter()
                .filter(|d| d.severity >= Severity::Warning && d.id == "unknown-key")
                .collect();
            if !unknown.is_empty() {
                failures.push(format!(
                    "{}: unknown keys in a fixture: {:?}",
                    path.display(),
                    unknown.iter().map(|d| &d.message).collect::<Vec<_>>()
                ));
            }
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let golden = repo()
                .join("golden/port")
                .join(fw.name())
                .join(stem)
                .join("ir.toml");
            if let Err(e) = check_golden(&golden, &parsed.resolved.to_toml(true)) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Each translation matches its golden text.
#[test]
fn translations_match_golden() {
    let mut failures = Vec::new();
    for (fw, files) in fixture_sets() {
        for path in files {
            let parsed = read(fw, &path);
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let name = format!(
                "fixtures/configs/{}/{}",
                fw.name(),
                path.file_name().unwrap().to_str().unwrap()
            );
            for &to in WRITERS {
                let opts = WriteOptions {
                    strict: false,
                    source_name: name.clone(),
                };
                let written = translate::write(to, &parsed.resolved, fw.name(), &opts);
                let golden = repo()
                    .join("golden/port")
                    .join(fw.name())
                    .join(stem)
                    .join(format!("to-{}.{}", to.name(), ext(to)));
                if let Err(e) = check_golden(&golden, &written.text) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A → IR → B → IR keeps every field the report did not flag.
#[test]
fn every_pair_round_trips() {
    let mut failures = Vec::new();
    for (fw, files) in fixture_sets() {
        for path in files {
            let first = read(fw, &path).resolved;
            for &to in WRITERS {
                let opts = WriteOptions {
                    strict: false,
                    source_name: path.display().to_string(),
                };
                let written = translate::write(to, &first, fw.name(), &opts);
                let source =
                    Source::new(format!("{} → {}", path.display(), to), written.text.clone());
                let second = match translate::read(to, &source) {
                    Ok(p) => p.resolved,
                    Err(e) => {
                        let r: String = e
                            .diagnostics()
                            .iter()
                            .map(|d| d.render(Some(&source)))
                            .collect();
                        failures.push(format!(
                            "{} → {to} does not read back:\n{r}\n{}",
                            path.display(),
                            written.text
                        ));
                        continue;
                    }
                };
                let lossy: Vec<&str> = written
                    .report
                    .entries
                    .iter()
                    .filter(|e| matches!(e.status, Status::Approximated | Status::NotExpressible))
                    .map(|e| e.field.as_str())
                    .collect();
                let diffs = differences(&first.spec.flat(), &second.spec.flat(), &lossy);
                if !diffs.is_empty() {
                    failures.push(format!(
                        "{} → {to} → IR changed:\n  {}",
                        path.display(),
                        diffs.join("\n  ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn differences(a: &Flat, b: &Flat, allowed: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        if allowed
            .iter()
            .any(|p| k == p || k.starts_with(&format!("{p}.")))
            || k.starts_with("passthrough.")
        {
            continue;
        }
        let (x, y) = (a.get(k), b.get(k));
        let same = match (x, y) {
            (Some(x), Some(y)) => translate::emitter::values_equal(x, y),
            _ => false,
        };
        if !same {
            out.push(format!("{k}: {} ≠ {}", show(x), show(y)));
        }
    }
    out
}

fn show(v: Option<&serde_json::Value>) -> String {
    v.map_or("(absent)".into(), |v| v.to_string())
}
