//! Where each framework puts its files: format detection, and locating the curve, the
//! weights, the adapter config, the precision and the attention shape of a run.
//!
//! Layouts (see docs/VERIFY.md for the full table):
//! - tunebridge: `run.toml`, `metrics.jsonl`, `adapter_model.safetensors` (PEFT names).
//! - HF Trainer (Axolotl, Unsloth, TRL): `trainer_state.json` only inside `checkpoint-N/`
//!   (Axolotl never calls `save_state`), adapter or model files at the root and in checkpoints.
//! - TorchTune 0.6: `logs/log_<ts>.txt`, `epoch_N/` (zero-based) with `adapter_model.pt`
//!   (TorchTune names), `adapter_model.safetensors` (PEFT names), `adapter_config.json`,
//!   `model-0000i-of-0000n.safetensors` + index. The golden runs in this repository keep the
//!   same files flattened (`log.txt`, `adapter_model_torchtune.safetensors`).

use super::curves;
use super::error::IngestError;
use super::run::{AdapterConfig, Format, ModelShape, Precision, Run, WeightOrigin, WeightSource};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::path::{Path, PathBuf};

/// Guess the layout of a folder or file from the files present.
pub fn detect(path: &Path) -> Result<Format, IngestError> {
    if path.is_file() || (!path.is_dir() && path.extension().is_some()) {
        return detect_file(path);
    }
    if path.join("run.toml").is_file() {
        return Ok(Format::Tunebridge);
    }
    if find_trainer_state(path).is_some() {
        return Ok(Format::Hf);
    }
    if find_torchtune_log(path)?.is_some()
        || newest_numbered(path, "epoch_").is_some()
        || path.join("torchtune_config.yaml").is_file()
    {
        return Ok(Format::Torchtune);
    }
    if path.join("metrics.jsonl").is_file() {
        return Ok(Format::Jsonl);
    }
    if path.join("metrics.csv").is_file() {
        return Ok(Format::Csv);
    }
    if find_weight_files(path).is_some() {
        return Ok(Format::Weights);
    }
    Err(IngestError::UnknownFormat {
        path: path.into(),
        looked_for:
            "run.toml, trainer_state.json (also in checkpoint-*/), logs/log_*.txt, epoch_N/, \
                     metrics.jsonl, metrics.csv, *.safetensors"
                .into(),
    })
}

fn detect_file(path: &Path) -> Result<Format, IngestError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "safetensors" => Format::Weights,
        "json" if name.ends_with(".safetensors.index.json") => Format::Weights,
        "json" => Format::Hf,
        "jsonl" => Format::Jsonl,
        "csv" => Format::Csv,
        "txt" | "log" => Format::Torchtune,
        "pt" | "pth" | "bin" => return Err(unsupported_pickle(path)),
        _ => {
            return Err(IngestError::UnknownFormat {
                path: path.into(),
                looked_for: ".safetensors, .safetensors.index.json, trainer_state .json, .jsonl, .csv, TorchTune .txt log"
                    .into(),
            })
        }
    })
}

fn unsupported_pickle(path: &Path) -> IngestError {
    IngestError::Unsupported {
        path: path.into(),
        message: "a pickled PyTorch file; tunebridge reads safetensors only. TorchTune writes \
                  adapter_model.safetensors next to adapter_model.pt; for other files convert with \
                  `safetensors.torch.save_file(torch.load(f), out)`"
            .into(),
    }
}

/// Read a run in the given layout.
pub(crate) fn read(path: &Path, format: Format) -> Result<Run, IngestError> {
    let mut run = Run {
        root: path.to_path_buf(),
        format,
        curve: None,
        precision: Precision::Unknown,
        precision_source: None,
        weights: None,
        notes: Vec::new(),
    };
    if path.is_file() {
        read_file(path, format, &mut run)?;
    } else {
        match format {
            Format::Tunebridge => read_tunebridge(path, &mut run)?,
            Format::Hf => read_hf(path, &mut run)?,
            Format::Torchtune => read_torchtune(path, &mut run)?,
            Format::Jsonl => run.curve = Some(curves::jsonl(&require(path, "metrics.jsonl")?)?),
            Format::Csv => run.curve = Some(curves::csv(&require(path, "metrics.csv")?)?),
            Format::Weights => {
                run.weights = Some(
                    weights_in(path, WeightOrigin::Peft, &mut run.notes)?.ok_or_else(|| {
                        IngestError::NotFound {
                            path: path.into(),
                            what: "*.safetensors weights".into(),
                        }
                    })?,
                );
            }
        }
    }
    if let Some(c) = &run.curve {
        run.notes.extend(curves::duplicate_or_gap_notes(c));
    }
    Ok(run)
}

fn require(dir: &Path, name: &str) -> Result<PathBuf, IngestError> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(IngestError::NotFound {
            path: p,
            what: name.to_string(),
        })
    }
}

/// A single file given on the command line.
fn read_file(path: &Path, format: Format, run: &mut Run) -> Result<(), IngestError> {
    match format {
        Format::Weights => {
            let files = if path.to_string_lossy().ends_with(".index.json") {
                shards_of_index(path)?
            } else {
                vec![path.to_path_buf()]
            };
            let dir = path.parent().unwrap_or(Path::new("."));
            let adapter_config = read_adapter_config(dir)?;
            let origin = origin_from_name(path);
            run.weights = Some(WeightSource {
                files,
                origin,
                adapter_config,
                model: None,
            });
        }
        Format::Hf => run.curve = Some(curves::trainer_state(path)?),
        Format::Jsonl | Format::Tunebridge => run.curve = Some(curves::jsonl(path)?),
        Format::Csv => run.curve = Some(curves::csv(path)?),
        Format::Torchtune => run.curve = Some(curves::torchtune_log(path)?),
    }
    Ok(())
}

fn origin_from_name(path: &Path) -> WeightOrigin {
    if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("torchtune"))
    {
        WeightOrigin::TorchtuneNative
    } else {
        WeightOrigin::Peft
    }
}

// --- tunebridge -------------------------------------------------------------------------

fn read_tunebridge(dir: &Path, run: &mut Run) -> Result<(), IngestError> {
    let metrics = require(dir, "metrics.jsonl")?;
    run.curve = Some(curves::jsonl(&metrics)?);
    let toml_path = dir.join("run.toml");
    if toml_path.is_file() {
        let text = curves::read_text(&toml_path)?;
        let doc: toml::Value = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            IngestError::parse(&toml_path, line, e.message().to_string())
        })?;
        if let Some(p) = find_toml_precision(&doc) {
            run.precision = p;
            run.precision_source = Some(format!("{}", toml_path.display()));
        }
    }
    run.weights = weights_in(dir, WeightOrigin::Peft, &mut run.notes)?;
    Ok(())
}

/// The run's precision: the IR's `[precision] compute_dtype` (with `tf32 = true` turning fp32
/// into tf32), else the first `precision`/`dtype` string anywhere in the document.
fn find_toml_precision(v: &toml::Value) -> Option<Precision> {
    if let Some(p) = v.get("precision").and_then(|p| p.as_table()) {
        if let Some(d) = p
            .get("compute_dtype")
            .and_then(|x| x.as_str())
            .and_then(Precision::parse)
        {
            let tf32 = p.get("tf32").and_then(|x| x.as_bool()).unwrap_or(false);
            return Some(if d == Precision::Fp32 && tf32 {
                Precision::Tf32
            } else {
                d
            });
        }
    }
    let table = v.as_table()?;
    for key in ["precision", "dtype", "compute_dtype", "param_dtype"] {
        if let Some(p) = table
            .get(key)
            .and_then(|x| x.as_str())
            .and_then(Precision::parse)
        {
            return Some(p);
        }
    }
    table.values().find_map(|x| {
        if x.is_table() {
            find_toml_precision(x)
        } else {
            None
        }
    })
}

// --- Hugging Face Trainer ---------------------------------------------------------------

/// `trainer_state.json` at the root (TRL `save_state`) or in the newest `checkpoint-N/`.
fn find_trainer_state(dir: &Path) -> Option<PathBuf> {
    let root = dir.join("trainer_state.json");
    if root.is_file() {
        return Some(root);
    }
    newest_numbered(dir, "checkpoint-")
        .map(|c| c.join("trainer_state.json"))
        .filter(|p| p.is_file())
}

fn read_hf(dir: &Path, run: &mut Run) -> Result<(), IngestError> {
    let state = find_trainer_state(dir).ok_or_else(|| IngestError::NotFound {
        path: dir.into(),
        what: "trainer_state.json (in the folder or a checkpoint-*/ folder; Unsloth notebooks write none \
               unless save_steps is reached or trainer.save_state() is called)"
            .into(),
    })?;
    if state.parent() != Some(dir) {
        run.notes.push(format!(
            "curve read from the newest checkpoint: {}",
            state.display()
        ));
    }
    run.curve = Some(curves::trainer_state(&state)?);
    // Axolotl's config (kept next to the run in our goldens; a model card holds it too).
    for cfg in ["config.yaml", "config.yml", "axolotl_config.yaml"] {
        let p = dir.join(cfg);
        if p.is_file() {
            if let Some(prec) = axolotl_precision(&p)? {
                run.precision = prec;
                run.precision_source = Some(p.display().to_string());
                break;
            }
        }
    }
    run.weights = match weights_in(dir, WeightOrigin::Peft, &mut run.notes)? {
        Some(w) => Some(w),
        None => match newest_numbered(dir, "checkpoint-") {
            Some(ck) => weights_in(&ck, WeightOrigin::Peft, &mut run.notes)?,
            None => None,
        },
    };
    Ok(())
}

/// Axolotl precision keys: `bf16: true|auto`, `fp16: true`, `tf32: true`; all three false
/// (or absent with one of them explicitly false) means fp32.
fn axolotl_precision(path: &Path) -> Result<Option<Precision>, IngestError> {
    let Some(doc) = load_yaml(path)? else {
        return Ok(None);
    };
    let flag = |k: &str| {
        doc.get(k)
            .map(|v| v.as_bool().unwrap_or_else(|| v.as_str() == Some("auto")))
    };
    if let Some(p) = doc
        .get("dtype")
        .and_then(Yaml::as_str)
        .and_then(Precision::parse)
    {
        // A TorchTune config read as HF by --format.
        return Ok(Some(p));
    }
    Ok(match (flag("bf16"), flag("fp16"), flag("tf32")) {
        (Some(true), _, _) => Some(Precision::Bf16),
        (_, Some(true), _) => Some(Precision::Fp16),
        (_, _, Some(true)) => Some(Precision::Tf32),
        (Some(false), _, _) | (_, Some(false), _) => Some(Precision::Fp32),
        _ => None,
    })
}

fn load_yaml(path: &Path) -> Result<Option<Yaml>, IngestError> {
    let text = curves::read_text(path)?;
    match serde_yaml::from_str::<Yaml>(&text) {
        Ok(v) if v.is_mapping() => Ok(Some(v)),
        Ok(_) => Ok(None),
        Err(e) => Err(IngestError::parse(
            path,
            e.location().map(|l| l.line()),
            e.to_string(),
        )),
    }
}

// --- TorchTune ---------------------------------------------------------------------------

/// The DiskLogger file: the newest `logs/log_<ts>.txt`, else a `log*.txt` in the folder that
/// has `Step N |` lines.
fn find_torchtune_log(dir: &Path) -> Result<Option<PathBuf>, IngestError> {
    let mut cands: Vec<PathBuf> = Vec::new();
    for sub in [dir.join("logs"), dir.to_path_buf()] {
        let Ok(rd) = std::fs::read_dir(&sub) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("log") && name.ends_with(".txt") && e.path().is_file() {
                cands.push(e.path());
            }
        }
        if !cands.is_empty() {
            break;
        }
    }
    // log_<unix_ts>.txt: the newest run is the largest timestamp.
    cands.sort_by_key(|p| {
        let n = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        (n.trim_start_matches("log_").parse::<u64>().unwrap_or(0), n)
    });
    for c in cands.into_iter().rev() {
        let text = std::fs::read(&c).map_err(|e| IngestError::io(&c, e))?;
        let text = String::from_utf8_lossy(&text);
        if text.lines().any(|l| l.starts_with("Step ")) || text.trim().is_empty() {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn read_torchtune(dir: &Path, run: &mut Run) -> Result<(), IngestError> {
    let log = find_torchtune_log(dir)?.ok_or_else(|| IngestError::NotFound {
        path: dir.join("logs"),
        what: "TorchTune DiskLogger file logs/log_*.txt (metric_logger: DiskLogger)".into(),
    })?;
    run.curve = Some(curves::torchtune_log(&log)?);
    // The config: our goldens keep config.yaml; TorchTune writes torchtune_config.yaml.
    let mut model = None;
    for cfg in ["torchtune_config.yaml", "config.yaml"] {
        let p = dir.join(cfg);
        if !p.is_file() {
            continue;
        }
        if let Some(doc) = load_yaml(&p)? {
            if let Some(prec) = doc
                .get("dtype")
                .and_then(Yaml::as_str)
                .and_then(Precision::parse)
            {
                run.precision = prec;
                run.precision_source = Some(p.display().to_string());
            }
            model = torchtune_model_shape(&doc, &p, dir);
            break;
        }
    }
    // Weights: the flattened golden layout first, then the newest epoch_N/.
    let mut weights = weights_in(dir, WeightOrigin::TorchtunePeftExport, &mut run.notes)?;
    if weights.is_none() {
        if let Some(ep) = newest_numbered(dir, "epoch_") {
            weights = weights_in(&ep, WeightOrigin::TorchtunePeftExport, &mut run.notes)?;
        }
    }
    if let Some(w) = &mut weights {
        w.model = model;
    }
    run.weights = weights;
    Ok(())
}

/// Attention shape from a TorchTune config: explicit builder arguments (`num_heads`,
/// `num_kv_heads`, `embed_dim`, `head_dim`), else the HF `config.json` in the checkpointer's
/// `checkpoint_dir`.
fn torchtune_model_shape(doc: &Yaml, cfg_path: &Path, run_dir: &Path) -> Option<ModelShape> {
    let model = doc.get("model")?;
    let component = model
        .get("_component_")
        .and_then(Yaml::as_str)
        .unwrap_or("");
    let family = component
        .rsplit('.')
        .next()
        .unwrap_or(component)
        .trim_start_matches("lora_")
        .trim_start_matches("qlora_");
    let family_pkg = component.split('.').nth(2).unwrap_or(family).to_string();
    let num = |k: &str| model.get(k).and_then(Yaml::as_u64).map(|v| v as usize);
    if let (Some(h), Some(e)) = (num("num_heads"), num("embed_dim")) {
        let kv = num("num_kv_heads").unwrap_or(h);
        let hd = num("head_dim").unwrap_or(e / h.max(1));
        return Some(ModelShape {
            family: family_pkg,
            num_heads: h,
            num_kv_heads: kv,
            head_dim: hd,
            source: cfg_path.into(),
        });
    }
    let ck = doc.get("checkpointer")?.get("checkpoint_dir")?.as_str()?;
    // Relative checkpoint dirs are relative to where `tune run` was started: try the current
    // directory and the run folder's ancestors.
    let mut bases: Vec<PathBuf> = vec![PathBuf::from(".")];
    bases.extend(run_dir.ancestors().map(Path::to_path_buf));
    for b in bases {
        let p = b.join(ck).join("config.json");
        if p.is_file() {
            if let Some(s) = hf_model_shape(&p) {
                return Some(ModelShape {
                    family: family_pkg,
                    ..s
                });
            }
        }
    }
    None
}

/// Attention shape from an HF `config.json`.
pub(crate) fn hf_model_shape(path: &Path) -> Option<ModelShape> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Json = serde_json::from_str(&text).ok()?;
    let h = v.get("num_attention_heads")?.as_u64()? as usize;
    let kv = v
        .get("num_key_value_heads")
        .and_then(Json::as_u64)
        .map(|x| x as usize)
        .unwrap_or(h);
    let hidden = v.get("hidden_size")?.as_u64()? as usize;
    let hd = v
        .get("head_dim")
        .and_then(Json::as_u64)
        .map(|x| x as usize)
        .unwrap_or(hidden / h.max(1));
    let family = v
        .get("model_type")
        .and_then(Json::as_str)
        .unwrap_or("unknown")
        .to_string();
    Some(ModelShape {
        family,
        num_heads: h,
        num_kv_heads: kv,
        head_dim: hd,
        source: path.into(),
    })
}

// --- weights -----------------------------------------------------------------------------

/// The sub-folder with the largest number after `prefix` (`checkpoint-32`, `epoch_1`).
fn newest_numbered(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let rd = std::fs::read_dir(dir).ok()?;
    rd.flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_prefix(prefix)?
                .parse::<u64>()
                .ok()
                .map(|k| (k, e.path()))
        })
        .max_by_key(|(k, _)| *k)
        .map(|(_, p)| p)
}

/// Weight files in one folder, best first: a TorchTune-named adapter, a PEFT adapter,
/// a sharded model index, a single model file.
fn find_weight_files(dir: &Path) -> Option<(Vec<PathBuf>, Option<WeightOrigin>)> {
    let native = dir.join("adapter_model_torchtune.safetensors");
    if native.is_file() {
        return Some((vec![native], Some(WeightOrigin::TorchtuneNative)));
    }
    let adapter = dir.join("adapter_model.safetensors");
    if adapter.is_file() {
        return Some((vec![adapter], None));
    }
    let rd = std::fs::read_dir(dir).ok()?;
    let mut names: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    if let Some(idx) = names
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".safetensors.index.json"))
    {
        return Some((vec![idx.clone()], None));
    }
    let st: Vec<PathBuf> = names
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    if st.is_empty() {
        None
    } else {
        Some((st, None))
    }
}

fn weights_in(
    dir: &Path,
    default_origin: WeightOrigin,
    notes: &mut Vec<String>,
) -> Result<Option<WeightSource>, IngestError> {
    let Some((mut files, origin)) = find_weight_files(dir) else {
        for pickled in ["adapter_model.pt", "adapter_model.bin", "pytorch_model.bin"] {
            let p = dir.join(pickled);
            if p.is_file() {
                notes.push(format!(
                    "{}: weights not compared: {}",
                    p.display(),
                    match unsupported_pickle(&p) {
                        IngestError::Unsupported { message, .. } => message,
                        other => other.to_string(),
                    }
                ));
            }
        }
        return Ok(None);
    };
    if files.len() == 1 && files[0].to_string_lossy().ends_with(".index.json") {
        files = shards_of_index(&files[0])?;
    }
    let adapter_config = read_adapter_config(dir)?;
    Ok(Some(WeightSource {
        files,
        origin: origin.unwrap_or(default_origin),
        adapter_config,
        model: None,
    }))
}

/// The shard files named by a `model.safetensors.index.json` `weight_map`, in order.
fn shards_of_index(index: &Path) -> Result<Vec<PathBuf>, IngestError> {
    let text = curves::read_text(index)?;
    let v: Json = serde_json::from_str(&text)
        .map_err(|e| IngestError::parse(index, Some(e.line()), e.to_string()))?;
    let map = v
        .get("weight_map")
        .and_then(Json::as_object)
        .ok_or_else(|| IngestError::parse(index, None, "no `weight_map` object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<String> = map
        .values()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    files.sort();
    files.dedup();
    let mut out = Vec::new();
    for f in files {
        let p = dir.join(&f);
        if !p.is_file() {
            return Err(IngestError::NotFound {
                path: p,
                what: format!("shard `{f}` named by the index"),
            });
        }
        out.push(p);
    }
    Ok(out)
}

/// `adapter_config.json`: PEFT's full form or TorchTune's `{r, lora_alpha, target_modules,
/// peft_type}`. Unknown keys are ignored.
pub(crate) fn read_adapter_config(dir: &Path) -> Result<Option<AdapterConfig>, IngestError> {
    let path = dir.join("adapter_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = curves::read_text(&path)?;
    if text.trim().is_empty() {
        return Err(IngestError::Empty {
            path,
            what: "the file is empty".into(),
        });
    }
    let v: Json = serde_json::from_str(&text).map_err(|e| {
        if e.is_eof() {
            IngestError::Truncated {
                path: path.clone(),
                line: e.line(),
            }
        } else {
            IngestError::parse(&path, Some(e.line()), e.to_string())
        }
    })?;
    let r = v
        .get("r")
        .and_then(Json::as_u64)
        .ok_or_else(|| IngestError::parse(&path, None, "no integer `r` (LoRA rank)"))?
        as u32;
    let lora_alpha = v.get("lora_alpha").and_then(Json::as_f64).unwrap_or(8.0); // PEFT default 8
    let target_modules = match v.get("target_modules") {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Json::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let pairs = |k: &str| -> Vec<(String, f64)> {
        v.get(k)
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, x)| x.as_f64().map(|f| (k.clone(), f)))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Some(AdapterConfig {
        source: path.clone(),
        r,
        lora_alpha,
        use_rslora: v.get("use_rslora").and_then(Json::as_bool).unwrap_or(false),
        use_dora: v.get("use_dora").and_then(Json::as_bool).unwrap_or(false),
        target_modules,
        rank_pattern: pairs("rank_pattern")
            .into_iter()
            .map(|(k, f)| (k, f as u32))
            .collect(),
        alpha_pattern: pairs("alpha_pattern"),
    }))
}

#[cfg(test)]
mod tests;
