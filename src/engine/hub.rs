//! The local Hugging Face hub cache: where it is, and which snapshot of a cached repository
//! (model or dataset) to use. Shared by model loading and dataset loading.

use std::path::{Path, PathBuf};

/// Candidate hub caches, in the order huggingface_hub resolves them: `HF_HUB_CACHE`,
/// `HF_HOME/hub`, `XDG_CACHE_HOME/huggingface/hub`, `~/.cache/huggingface/hub`.
/// (`HF_DATASETS_CACHE` holds `datasets`' Arrow conversions, not the hub files.)
pub fn cache_dirs() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut dirs = Vec::new();
    if let Some(d) = env("HF_HUB_CACHE") {
        dirs.push(d);
    }
    if let Some(d) = env("HF_HOME") {
        dirs.push(d.join("hub"));
    }
    if let Some(d) = env("XDG_CACHE_HOME") {
        dirs.push(d.join("huggingface").join("hub"));
    }
    if let Some(d) = env("HOME") {
        dirs.push(d.join(".cache").join("huggingface").join("hub"));
    }
    dirs.dedup();
    dirs
}

/// The snapshot of a cached repository folder (`…/models--org--name`) that `refs/main`
/// names; without it, the newest snapshot. Only snapshots that pass `usable` count (a model
/// needs its `config.json`; a dataset any folder).
pub fn snapshot(repo: &Path, usable: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if let Ok(hash) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let p = repo.join("snapshots").join(hash.trim());
        if usable(&p) {
            return Some(p);
        }
    }
    let mut snaps: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(repo.join("snapshots"))
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| usable(p))
            .map(|p| {
                let t = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (t, p)
            })
            .collect();
    snaps.sort();
    snaps.pop().map(|(_, p)| p)
}
