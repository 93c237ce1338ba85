//! Real configs shipped by the frameworks (`fixtures/upstream/<framework>/`, see SOURCES.md
//! there) port without panics: in-scope ones to every implemented writer, and out-of-scope
//! ones (RL, distillation, vision, evaluation, generation, quantisation) are refused with a
//! `not-supported` error, exit code 3. The per-file results are kept in docs/UPSTREAM.md, one
//! section per framework; `TUNEBRIDGE_BLESS=1` rewrites a section.

// ReadError carries whole diagnostics, as in the library (see src/lib.rs).
#![allow(clippy::result_large_err)]

use crate::harness::{blessing, fixtures, repo, text, tunebridge};
use crate::port::WRITERS;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use tunebridge::diag::Source;
use tunebridge::translate::{self, Framework, ReadError, Status, WriteOptions};

/// What happened to one upstream file.
struct Outcome {
    file: String,
    /// `None`: read; `Some(id)`: refused or failed with this diagnostic id.
    read: Result<String, String>,
    /// Per writer: "ok", "ok (N lossy)", or why not.
    targets: Vec<(Framework, String, bool)>,
}

impl Outcome {
    fn ported(&self) -> bool {
        self.read.is_ok() && self.targets.iter().all(|(_, _, ok)| *ok)
    }
}

fn port_file(from: Framework, path: &Path) -> Outcome {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let source = Source::new(format!("fixtures/upstream/{}/{file}", from.name()), text);
    let read = catch_unwind(AssertUnwindSafe(|| translate::read(from, &source)));
    let parsed = match read {
        Err(_) => {
            return Outcome {
                file,
                read: Err("PANIC".into()),
                targets: Vec::new(),
            }
        }
        Ok(Err(ReadError::NotSupported(d))) => {
            return Outcome {
                file,
                read: Err(format!(
                    "not-supported: {}",
                    d.message.trim_start_matches("not supported: ")
                )),
                targets: Vec::new(),
            }
        }
        Ok(Err(e)) => {
            let first = e
                .diagnostics()
                .first()
                .map(|d| format!("{}: {}", d.id, d.message));
            return Outcome {
                file,
                read: Err(first.unwrap_or_else(|| "error".into())),
                targets: Vec::new(),
            };
        }
        Ok(Ok(p)) => p,
    };
    let mut targets = Vec::new();
    for &to in WRITERS {
        let opts = WriteOptions {
            strict: false,
            source_name: source.name.clone(),
        };
        let written = catch_unwind(AssertUnwindSafe(|| {
            translate::write(to, &parsed.resolved, from.name(), &opts)
        }));
        let Ok(written) = written else {
            targets.push((to, "PANIC while writing".into(), false));
            continue;
        };
        // The written config must read back in its own format.
        let back = Source::new(format!("{file} → {to}"), written.text.clone());
        let reread = catch_unwind(AssertUnwindSafe(|| translate::read(to, &back)));
        let lossy = written
            .report
            .entries
            .iter()
            .filter(|e| matches!(e.status, Status::Approximated | Status::NotExpressible))
            .count();
        match reread {
            Ok(Ok(_)) => targets.push((to, format!("ok ({lossy} lossy)"), true)),
            Ok(Err(e)) => {
                let id = e.diagnostics().first().map_or("error", |d| d.id);
                targets.push((to, format!("written; reads back with {id}"), false))
            }
            Err(_) => targets.push((to, "PANIC reading back".into(), false)),
        }
    }
    let read = Ok(translate::torchtune::recipe_for(&parsed.resolved.spec)
        .name
        .clone());
    Outcome {
        file,
        read: if from == Framework::Torchtune {
            read
        } else {
            Ok(String::new())
        },
        targets,
    }
}

/// The markdown section for one framework's upstream files.
fn section(title: &str, intro: &str, outcomes: &[Outcome], in_scope_ok: (usize, usize)) -> String {
    let mut s = format!("## {title}\n\n{intro}\n\n");
    s.push_str(&format!(
        "In scope: {} of {} port to every writer and read back ({:.0}%). Out of scope: refused with `not-supported` (exit code 3).\n\n",
        in_scope_ok.0,
        in_scope_ok.1,
        100.0 * in_scope_ok.0 as f64 / in_scope_ok.1.max(1) as f64
    ));
    s.push_str("| file | read | ");
    s.push_str(
        &WRITERS
            .iter()
            .map(|w| format!("→ {w}"))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    s.push_str(" |\n|---|---|");
    s.push_str(&"---|".repeat(WRITERS.len()));
    s.push('\n');
    for o in outcomes {
        let read = match &o.read {
            Ok(recipe) if recipe.is_empty() => "ok".to_string(),
            Ok(recipe) => format!("ok (`{recipe}`)"),
            Err(e) => e.replace('|', "\\|"),
        };
        s.push_str(&format!("| `{}` | {read} |", o.file));
        for w in WRITERS {
            let cell = o
                .targets
                .iter()
                .find(|(t, _, _)| t == w)
                .map_or("–".to_string(), |(_, c, _)| c.clone());
            s.push_str(&format!(" {cell} |"));
        }
        s.push('\n');
    }
    s
}

/// Replace (when blessing) or check one `## title` section of docs/UPSTREAM.md.
pub fn check_section(title: &str, body: &str) -> Result<(), String> {
    let path = repo().join("docs/UPSTREAM.md");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let heading = format!("## {title}\n");
    let found = current.find(&heading).map(|start| {
        let rest = &current[start + heading.len()..];
        let end = rest
            .find("\n## ")
            .map_or(current.len(), |i| start + heading.len() + i + 1);
        (start, end)
    });
    let existing = found.map(|(s, e)| &current[s..e]);
    if existing == Some(body) {
        return Ok(());
    }
    if !blessing() {
        return Err(format!(
            "docs/UPSTREAM.md section `{title}` is out of date (run with TUNEBRIDGE_BLESS=1):\n{body}"
        ));
    }
    let updated = match found {
        Some((s, e)) => format!("{}{body}{}", &current[..s], &current[e..]),
        None if current.is_empty() => format!(
            "# Upstream configs\n\nReal configs shipped by each framework, ported by `tests/integration/upstream.rs`; the sources are listed in `fixtures/upstream/<framework>/SOURCES.md`.\n\n{body}"
        ),
        // sections follow one another without a blank line (a section runs to the next `## `)
        None => format!("{}{body}", current.trim_end_matches('\n').to_string() + "\n"),
    };
    std::fs::write(&path, updated).unwrap();
    Ok(())
}

/// TorchTune 0.6.1's shipped configs that are not supervised text fine-tunes.
const TORCHTUNE_OUT_OF_SCOPE: [&str; 9] = [
    "dev__11B_lora_multi_dataset.yaml",
    "eleuther_evaluation.yaml",
    "generation.yaml",
    "llama2__7B_lora_dpo_single_device.yaml",
    "llama3_2__8B_to_1B_KD_lora_single_device.yaml",
    "llama3_2_vision__11B_lora_single_device.yaml",
    "llama3__8B_qat_full.yaml",
    "mistral__7B_full_ppo_low_memory.yaml",
    "quantization.yaml",
];

#[test]
fn torchtune_upstream_configs_port() {
    let files = fixtures("fixtures/upstream/torchtune", &["yaml", "yml"]);
    assert!(
        files.len() >= 25,
        "expected ~30 upstream TorchTune configs, found {}",
        files.len()
    );
    let outcomes: Vec<Outcome> = files
        .iter()
        .map(|p| port_file(Framework::Torchtune, p))
        .collect();
    let mut failures = Vec::new();
    let (mut ok, mut in_scope) = (0, 0);
    for o in &outcomes {
        let panicked = matches!(&o.read, Err(e) if e == "PANIC")
            || o.targets.iter().any(|(_, c, _)| c.contains("PANIC"));
        if panicked {
            failures.push(format!("{}: panicked", o.file));
        }
        if TORCHTUNE_OUT_OF_SCOPE.contains(&o.file.as_str()) {
            if !matches!(&o.read, Err(e) if e.starts_with("not-supported")) {
                failures.push(format!(
                    "{}: out of scope but not refused as not-supported: {:?}",
                    o.file, o.read
                ));
            }
        } else {
            in_scope += 1;
            if o.ported() {
                ok += 1;
            }
        }
    }
    let rate = ok as f64 / in_scope.max(1) as f64;
    if rate < 0.95 {
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| !TORCHTUNE_OUT_OF_SCOPE.contains(&o.file.as_str()) && !o.ported())
            .map(|o| {
                format!(
                    "{}: {:?} {:?}",
                    o.file,
                    o.read,
                    o.targets.iter().map(|t| &t.1).collect::<Vec<_>>()
                )
            })
            .collect();
        failures.push(format!(
            "only {ok}/{in_scope} in-scope configs port:\n  {}",
            failed.join("\n  ")
        ));
    }
    let intro = "TorchTune 0.6.1's shipped `recipes/configs/` (see `fixtures/upstream/torchtune/SOURCES.md`). \
                 `read` names the recipe tunebridge infers; each target cell says whether the written config reads back \
                 in that format and how many IR fields the port report marks approximated or not expressible.";
    if let Err(e) = check_section(
        "TorchTune",
        &section("TorchTune", intro, &outcomes, (ok, in_scope)),
    ) {
        failures.push(e);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The command line refuses an out-of-scope TorchTune config with exit code 3.
#[test]
fn torchtune_out_of_scope_exits_3() {
    for file in ["llama2__7B_lora_dpo_single_device.yaml", "generation.yaml"] {
        let path = format!("fixtures/upstream/torchtune/{file}");
        let out = tunebridge(&["port", &path, "--to", "axolotl"]);
        assert_eq!(out.status.code(), Some(3), "{file}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("error[not-supported]"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// One upstream set whose `scope.toml` lists the out-of-scope files: at least 95 % of the
/// in-scope ones port to every writer and read back, the out-of-scope ones are refused with
/// `not-supported`, nothing panics, and the docs/UPSTREAM.md section is up to date.
fn check_scoped_set(
    from: Framework,
    folder: &str,
    exts: &[&str],
    min_files: usize,
    noun: &str,
    intro: &str,
) {
    let title = match from {
        Framework::Axolotl => "Axolotl",
        Framework::Unsloth => "Unsloth",
        _ => from.name(),
    };
    let dir = repo().join(folder);
    let scope: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("scope.toml")).unwrap()).unwrap();
    let out_of_scope: Vec<String> = scope["out_of_scope"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let files = fixtures(folder, exts);
    assert!(
        files.len() >= min_files,
        "expected at least {min_files} upstream {title} {noun}, found {}",
        files.len()
    );
    for f in &out_of_scope {
        assert!(
            dir.join(f).exists(),
            "scope.toml lists {f}, which is not in {folder}"
        );
    }
    let outcomes: Vec<Outcome> = files.iter().map(|p| port_file(from, p)).collect();
    let mut failures = Vec::new();
    let (mut ok, mut in_scope) = (0, 0);
    for o in &outcomes {
        let panicked = matches!(&o.read, Err(e) if e == "PANIC")
            || o.targets.iter().any(|(_, c, _)| c.contains("PANIC"));
        if panicked {
            failures.push(format!("{}: panicked", o.file));
        }
        if out_of_scope.contains(&o.file) {
            if !matches!(&o.read, Err(e) if e.starts_with("not-supported")) {
                failures.push(format!(
                    "{}: out of scope but not refused as not-supported: {:?}",
                    o.file, o.read
                ));
            }
        } else {
            in_scope += 1;
            if o.ported() {
                ok += 1;
            }
        }
    }
    if (ok as f64) < 0.95 * in_scope as f64 {
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| !out_of_scope.contains(&o.file) && !o.ported())
            .map(|o| {
                format!(
                    "{}: {:?} {:?}",
                    o.file,
                    o.read,
                    o.targets.iter().map(|t| &t.1).collect::<Vec<_>>()
                )
            })
            .collect();
        failures.push(format!(
            "only {ok}/{in_scope} in-scope {title} {noun} port:\n  {}",
            failed.join("\n  ")
        ));
    }
    if let Err(e) = check_section(title, &section(title, intro, &outcomes, (ok, in_scope))) {
        failures.push(e);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Axolotl's example configs (`fixtures/upstream/axolotl/`): at least 95 % of the in-scope ones
/// port to every writer and read back; the ones `scope.toml` lists (RL, reward models, vision,
/// QAT) are refused with `not-supported`; nothing panics.
#[test]
fn axolotl_examples_port() {
    let intro = "Example configs from Axolotl's `examples/` (see `fixtures/upstream/axolotl/SOURCES.md`; \
                 `scope.toml` lists the out-of-scope ones). Each target cell says whether the written config \
                 reads back in that format and how many IR fields the port report marks approximated or not expressible.";

    check_scoped_set(
        Framework::Axolotl,
        "fixtures/upstream/axolotl",
        &["yaml", "yml"],
        40,
        "examples",
        intro,
    );
}

/// Unsloth's notebook exports (`fixtures/upstream/unsloth/`): at least 95 % of the in-scope
/// ones (supervised text fine-tunes) port to every writer and read back; the ones `scope.toml`
/// lists (GRPO, DPO, vision, text-to-speech) are refused with `not-supported`; nothing panics.
#[test]
fn unsloth_notebooks_port() {
    let intro = "Notebook exports from `unslothai/notebooks` `python_scripts/` (see \
                 `fixtures/upstream/unsloth/SOURCES.md`; `scope.toml` lists the out-of-scope ones). \
                 Each target cell says whether the written config reads back in that format and how \
                 many IR fields the port report marks approximated or not expressible. A script whose \
                 dataset is built by code tunebridge would have to run (pandas frames) is reported, \
                 not guessed.";

    check_scoped_set(
        Framework::Unsloth,
        "fixtures/upstream/unsloth",
        &["py"],
        20,
        "notebooks",
        intro,
    );
}

/// The command line refuses out-of-scope Unsloth notebooks with exit code 3.
#[test]
fn unsloth_out_of_scope_exits_3() {
    for file in ["Qwen3_(4B)-GRPO.py", "Llama3.2_(11B)-Vision.py"] {
        let path = format!("fixtures/upstream/unsloth/{file}");
        let out = tunebridge(&["port", &path, "--to", "axolotl"]);
        assert_eq!(out.status.code(), Some(3), "{file}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("error[not-supported]"),
            "{}",
            text(&out.stderr)
        );
    }
}
