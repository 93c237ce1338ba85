//! The census: what `tunebridge run` accepts of the upstream example sets
//! (`fixtures/upstream/{axolotl,torchtune,unsloth}`), checked as `run --check` checks a config
//! (every feature but the presence of the weights, the architecture judged from the model
//! family). The table, the totals and the tally of refusal reasons are kept in
//! docs/UPSTREAM.md, section "Census: what `run` accepts"; `TUNEBRIDGE_BLESS=1` rewrites it.
//! `scripts/census.sh DIR...` runs the same check over any folder through the binary.
//!
//! In scope (issue 10): the engine's target families, Llama 2/3.x, Mistral, Qwen2/2.5/3 dense,
//! Gemma 2/3 and Phi-3/4, of the configs `port` reads (RL, vision and other out-of-scope
//! examples are refused when read and count only in the overall share).

// ReadError carries whole diagnostics, as in the library (see src/lib.rs).
#![allow(clippy::result_large_err)]

use crate::harness::{fixtures, repo, text, tunebridge};
use crate::upstream::check_section;
use std::collections::BTreeMap;
use std::path::Path;
use tunebridge::diag::Source;
use tunebridge::engine::error::Unsupported;
use tunebridge::engine::support::{self, Architecture};
use tunebridge::engine::Flavour;
use tunebridge::ir::{RunSpec, Strategy};
use tunebridge::translate::{self, Framework, ReadError};

const SETS: [(Framework, &str); 3] = [
    (Framework::Axolotl, "axolotl"),
    (Framework::Torchtune, "torchtune"),
    (Framework::Unsloth, "unsloth"),
];

/// Families (`translators/families.toml` names) the engine is to run (issue 10). Gemma 1
/// (`gemma`) is not among them; Gemma 3 is its own family (`gemma3`).
const IN_SCOPE_FAMILIES: [&str; 15] = [
    "llama",
    "llama2",
    "code_llama2",
    "llama3",
    "llama3_1",
    "llama3_2",
    "llama3_3",
    "mistral",
    "qwen2",
    "qwen2_5",
    "qwen3",
    "gemma2",
    "gemma3",
    "phi3",
    "phi4",
];

fn in_scope(spec: &RunSpec) -> bool {
    let base = spec.model.base.to_ascii_lowercase();
    let moe = ["mixtral", "moe", "-a3b", "-a22b"]
        .iter()
        .any(|p| base.contains(p));
    !moe && IN_SCOPE_FAMILIES.contains(&spec.model.family.as_str())
}

/// One config's census line.
struct Row {
    file: String,
    family: String,
    in_scope: bool,
    /// Empty: accepted.
    reasons: Vec<Unsupported>,
    /// Refused when read (`port` refuses it too): the diagnostic.
    read_error: Option<String>,
    /// Planned for several devices (`parallel.strategy` ≠ single, or `batch.devices` > 1).
    parallel: bool,
}

impl Row {
    fn accepted(&self) -> bool {
        self.read_error.is_none() && self.reasons.is_empty()
    }
}

fn census_of(fw: Framework, folder: &str, path: &Path) -> Row {
    let file = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
    let text = std::fs::read_to_string(path).unwrap();
    let source = Source::new(format!("fixtures/upstream/{file}"), text);
    let parsed = match translate::read(fw, &source) {
        Ok(p) => p,
        Err(e) => {
            let first = e.diagnostics().first().map_or("error".to_string(), |d| {
                let m = d.message.trim_start_matches("not supported: ");
                format!("{}: {m}", d.id)
            });
            let first = if matches!(e, ReadError::NotSupported(_)) {
                first
            } else {
                format!("read error: {first}")
            };
            return Row {
                file,
                family: "–".into(),
                in_scope: false,
                reasons: Vec::new(),
                read_error: Some(first),
                parallel: false,
            };
        }
    };
    let spec = &parsed.resolved.spec;
    let flavour = Flavour::from_framework(fw).unwrap_or_else(|| Flavour::of_spec(&parsed.resolved));
    Row {
        file,
        family: spec.model.family.clone(),
        in_scope: in_scope(spec),
        reasons: support::check(spec, flavour, Architecture::FromFamily),
        read_error: None,
        parallel: spec.parallel.strategy != Strategy::Single || spec.batch.devices > 1,
    }
}

/// The tally key of a reason: the field (dataset index as `*`) and value; for `model.base`,
/// whose value is each config's own model, the kind of model; a family refused for TorchTune's
/// message framing (not its architecture) says so.
fn tally_key(u: &Unsupported) -> String {
    let field = match u.field.strip_prefix("data.datasets.") {
        Some(rest) => format!(
            "data.datasets.*.{}",
            rest.split_once('.').map_or(rest, |(_, f)| f)
        ),
        None => u.field.clone(),
    };
    if field == "model.base" {
        let kind = u.reason.split(';').next().unwrap_or(&u.reason);
        return format!("`model.base`: {kind}");
    }
    if field == "model.family" && u.reason.starts_with("TorchTune message framing") {
        return format!("`model.family` = `{}` (TorchTune message framing)", u.value);
    }
    format!("`{field}` = `{}`", u.value)
}

fn share(n: usize, d: usize) -> String {
    format!("{n} of {d} ({:.0}%)", 100.0 * n as f64 / d.max(1) as f64)
}

fn section(rows: &[Row]) -> String {
    let scoped: Vec<&Row> = rows.iter().filter(|r| r.in_scope).collect();
    let ok_scoped = scoped.iter().filter(|r| r.accepted()).count();
    let ok_all = rows.iter().filter(|r| r.accepted()).count();
    let mut s = String::from("## Census: what `run` accepts\n\n");
    s.push_str(
        "`tunebridge run --check CONFIG` over every upstream example, as `tests/integration/census.rs` \
         runs it (`TUNEBRIDGE_BLESS=1 cargo test --features engine --test integration census` \
         rewrites this section; `scripts/census.sh DIR...` runs the same check through the binary \
         over any folder). The check is a dry run: everything a run checks but the presence of \
         the weights, tokenizer and data, the architecture judged from `model.family`. In scope: \
         configs `port` reads whose family is one the engine is to run (Llama 2/3.x, Mistral, \
         Qwen2/2.5/3 dense, Gemma 2/3, Phi-3/4); the overall share counts every file, including \
         those refused when read (RL, vision, …).\n\n",
    );
    s.push_str(&format!(
        "- **In-scope families: {} accepted.**\n- Overall: {} accepted.\n\n",
        share(ok_scoped, scoped.len()),
        share(ok_all, rows.len())
    ));
    let parallel = rows.iter().filter(|r| r.accepted() && r.parallel).count();
    s.push_str(&format!(
        "{parallel} of the accepted configs are planned for several GPUs (`parallel.strategy` \
         other than `single`, or `batch.devices` > 1); the engine runs them on one device, with \
         the per-device micro-batch and accumulation, so their global batch is not the planned \
         one until the engine scales out.\n\n"
    ));
    // tally: every reason of every config that was read, most common first
    let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in rows {
        for u in &r.reasons {
            let e = tally.entry(tally_key(u)).or_default();
            e.1 += 1;
            if r.in_scope {
                e.0 += 1;
            }
        }
    }
    let mut tally: Vec<(String, (usize, usize))> = tally.into_iter().collect();
    tally.sort_by(|a, b| {
        b.1 .1
            .cmp(&a.1 .1)
            .then(b.1 .0.cmp(&a.1 .0))
            .then(a.0.cmp(&b.0))
    });
    s.push_str("Refusal reasons, most common first (a config may have several):\n\n");
    s.push_str("| reason | in-scope configs | all configs |\n|---|---|---|\n");
    for (key, (scoped, all)) in &tally {
        s.push_str(&format!("| {key} | {scoped} | {all} |\n"));
    }
    s.push_str("\n| file | family | in scope | verdict | first reason |\n|---|---|---|---|---|\n");
    for r in rows {
        let (verdict, first) = match (&r.read_error, r.reasons.first()) {
            (Some(e), _) => ("refused when read".to_string(), e.clone()),
            (None, None) => ("accepted".to_string(), String::new()),
            (None, Some(u)) => (format!("refused ({})", r.reasons.len()), u.to_string()),
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {verdict} | {} |\n",
            r.file,
            r.family,
            if r.in_scope { "yes" } else { "no" },
            first.replace('|', "\\|")
        ));
    }
    s
}

fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for (fw, folder) in SETS {
        let dir = format!("fixtures/upstream/{folder}");
        for p in fixtures(&dir, &["yaml", "yml", "py"]) {
            rows.push(census_of(fw, folder, &p));
        }
    }
    rows
}

/// The census section of docs/UPSTREAM.md is up to date, and every refusal has a reason.
#[test]
fn census_of_the_upstream_examples() {
    let rows = rows();
    assert!(
        rows.len() >= 95,
        "expected ~98 upstream configs, found {}",
        rows.len()
    );
    for r in &rows {
        for u in &r.reasons {
            assert!(
                !u.reason.is_empty() && !u.field.is_empty(),
                "{}: {u:?}",
                r.file
            );
        }
    }
    if let Err(e) = check_section("Census: what `run` accepts", &section(&rows)) {
        panic!("{e}");
    }
}

/// `run --check` agrees with the census on a sample of each verdict: exit 0 when accepted,
/// 3 with the first reason's field otherwise.
#[test]
fn the_binary_agrees_with_the_census() {
    let rows = rows();
    let accepted = rows
        .iter()
        .find(|r| r.accepted())
        .expect("one accepted config");
    let refused = rows
        .iter()
        .find(|r| !r.reasons.is_empty())
        .expect("one refused config");
    for r in [accepted, refused] {
        let path = format!("fixtures/upstream/{}", r.file);
        let out = tunebridge(&["run", "--check", "-q", &path]);
        let code = out.status.code();
        if r.accepted() {
            assert_eq!(code, Some(0), "{path}: {}", text(&out.stderr));
        } else {
            assert_eq!(code, Some(3), "{path}: {}", text(&out.stderr));
            let want = format!("cannot run `{}`", r.reasons[0].field);
            assert!(
                text(&out.stderr).contains(&want),
                "{path}: {}",
                text(&out.stderr)
            );
        }
    }
    assert!(repo().join("scripts/census.sh").is_file());
}

/// `run --check` on the bundled default: every feature runs, exit 0, nothing loaded.
#[test]
fn run_check_accepts_the_default_config() {
    let out = tunebridge(&["run", "--check", "fixtures/default/axolotl-tiny-llama.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok: the engine runs every feature this config uses\n"
    );
}

/// `run --check` on the default with an unimplemented optimizer (8-bit Lion) and an FP4 base: exit 3, both reasons,
/// each at its key with the supported values as help.
#[test]
fn run_check_lists_every_reason_at_its_key() {
    let default = std::fs::read_to_string(repo().join("fixtures/default/axolotl-tiny-llama.yaml"))
        .unwrap()
        .replace("optimizer: adamw_torch", "optimizer: lion_8bit")
        .replace(
            "adapter: lora",
            "adapter: qlora\nload_in_4bit: true\nbnb_config_kwargs:\n  bnb_4bit_quant_type: fp4",
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, default).unwrap();
    let out = tunebridge(&["run", "--check", "-q", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(out.stdout.is_empty());
    for want in [
        "error[not-supported]: cannot run `quantization.base_weights` = `fp4`",
        "bnb_config_kwargs:",
        "help: the engine quantises base weights as NF4 only",
        "error[not-supported]: cannot run `optimizer.name` = `lion_8bit`",
        "optimizer: lion_8bit",
        "help: the engine implements torch AdamW (adamw, adamw_torch, adamw_torch_fused, adamw_fused), bitsandbytes AdamW (adamw_8bit",
        "2 unsupported features",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
