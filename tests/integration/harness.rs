//! Shared helpers: repository paths, golden comparison with readable diffs, and running the
//! binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files of a fixture folder with one of the extensions, sorted.
pub fn fixtures(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.retain(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e))
    });
    out.sort();
    out
}

pub fn blessing() -> bool {
    std::env::var_os("TUNEBRIDGE_BLESS").is_some()
}

/// Compare `got` with the golden file (or write it when blessing). Returns a failure message.
pub fn check_golden(golden: &Path, got: &str) -> Result<(), String> {
    if blessing() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(golden, got).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(golden).map_err(|_| {
        format!(
            "missing golden {} (run with TUNEBRIDGE_BLESS=1 to create it)",
            golden.display()
        )
    })?;
    if expected == got {
        return Ok(());
    }
    let first = expected
        .lines()
        .zip(got.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.lines().count().min(got.lines().count()));
    Err(format!(
        "{} differs from the golden at line {}:\n```expected\n{}\n```\n```got\n{}\n```",
        golden.display(),
        first + 1,
        expected
            .lines()
            .skip(first.saturating_sub(2))
            .take(6)
            .collect::<Vec<_>>()
            .join("\n"),
        got.lines()
            .skip(first.saturating_sub(2))
            .take(6)
            .collect::<Vec<_>>()
            .join("\n"),
    ))
}

/// Run the `tunebridge` binary in the repository root.
pub fn tunebridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tunebridge"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the binary runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
