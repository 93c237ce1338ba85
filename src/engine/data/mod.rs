//! Data: files → rows → tokenized samples → the per-epoch order → padded micro-batches.
//!
//! Each step follows the framework the run reproduces ([`Flavour`]): prompt framing and
//! masking in [`format`], the shuffles in [`order`], padding and label layout in [`collate`].
//! Left out (for now): Parquet files, hub datasets, packing, validation splits.

pub mod format;
pub mod order;
pub mod template;
pub mod tokenizer;

use super::error::{read_to_string, EngineError, Result};
use super::Flavour;
use crate::ir::RunSpec;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub use tokenizer::Tokenizer;

/// One training sequence. `labels[i]` is the target *at* position i (unshifted; the loss
/// predicts labels[i+1] from position i); -100 = no loss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub input_ids: Vec<i64>,
    pub labels: Vec<i64>,
}

/// Rows of a JSON array file or a JSON Lines file.
pub fn read_rows(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text = read_to_string(path)?;
    let bad = |m: String| EngineError::bad_file(path, m);
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('[') {
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(format!("line {}: {e}", i + 1))))
            .collect::<Result<_>>()?
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(m) => Ok(m),
            _ => Err(bad(format!("row {} is not a JSON object", i + 1))),
        })
        .collect()
}

/// The files a dataset entry names: `data_files`, else `path` (a file, or a folder of
/// .json/.jsonl files).
pub fn dataset_files(ds: &crate::ir::Dataset) -> Result<Vec<PathBuf>> {
    if !ds.data_files.is_empty() {
        return Ok(ds.data_files.iter().map(PathBuf::from).collect());
    }
    let p = PathBuf::from(&ds.path);
    if p.is_file() {
        return Ok(vec![p]);
    }
    if p.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
            .map_err(|e| EngineError::io(&p, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                matches!(
                    f.extension().and_then(|e| e.to_str()),
                    Some("json" | "jsonl")
                )
            })
            .collect();
        files.sort();
        return Ok(files);
    }
    Err(EngineError::Data(format!(
        "dataset `{}` is not a local file or folder (hub datasets are not fetched; save it as JSON/JSONL)",
        ds.path
    )))
}

/// Every dataset of the spec tokenized, in the order the framework's sampler sees them
/// (before the per-epoch shuffle).
pub fn build_samples(spec: &RunSpec, flavour: Flavour, tok: &Tokenizer) -> Result<Vec<Sample>> {
    let chat = match &tok.chat_template {
        Some(t) => Some(template::ChatTemplate::new(
            t,
            tok.bos.as_ref().map_or("", |b| b.text.as_str()),
            &tok.eos.text,
        )?),
        None => None,
    };
    let d = &spec.data;
    if d.packing {
        return Err(EngineError::unsupported(
            "data.packing",
            "true",
            "packing is not implemented in the engine yet",
        ));
    }
    if !matches!(d.overlong.as_str(), "drop" | "truncate") {
        return Err(EngineError::unsupported(
            "data.overlong",
            &d.overlong,
            "the engine drops or truncates",
        ));
    }
    let mut all: Vec<Option<Sample>> = Vec::new();
    for ds in &d.datasets {
        let ctx = format::FormatCtx {
            flavour,
            tok,
            train_on_inputs: d.train_on_inputs,
            sequence_len: d.sequence_len as usize,
            overlong: &d.overlong,
            add_eos: d.add_eos,
            alpaca: if matches!(ds.format.as_str(), "alpaca" | "instruct") {
                format::AlpacaStrings::resolve(&ds.prompt_style, &ds.templates, flavour)?
            } else {
                format::AlpacaStrings {
                    with_input: String::new(),
                    no_input: String::new(),
                }
            },
            columns: &ds.columns,
            roles_to_train: &ds.roles_to_train,
            chat: chat.as_ref(),
            family: &spec.model.family,
            chat_framed: ds.prompt_style.ends_with("_chat_template"),
        };
        for file in dataset_files(ds)? {
            for (i, row) in read_rows(&file)?.iter().enumerate() {
                let s = format::format_row(&ctx, &ds.format, row).map_err(|e| match e {
                    EngineError::Data(m) => {
                        EngineError::bad_file(&file, format!("row {}: {m}", i + 1))
                    }
                    other => other,
                })?;
                all.push(s);
            }
        }
    }
    // Axolotl shuffles the merged, tokenized dataset once (`Dataset.shuffle(seed)`), then
    // drops the samples that are too long.
    if flavour == Flavour::Axolotl && d.shuffle {
        let perm = order::numpy_permutation(all.len(), d.shuffle_seed);
        all = perm.into_iter().map(|i| all[i].take()).collect();
    }
    let mut samples: Vec<Sample> = all.into_iter().flatten().collect();
    if d.drop_fully_masked {
        samples.retain(|s| s.labels.iter().skip(1).any(|&l| l != format::IGNORE));
    }
    if samples.is_empty() {
        return Err(EngineError::Data(
            "no samples left after tokenization".into(),
        ));
    }
    Ok(samples)
}

/// The sample order of one epoch: `torch.randperm(n)` from a generator seeded with
/// `seed + epoch` (TorchTune's DistributedSampler with its fixed seed 0; the HF Trainer's
/// seedable sampler with the run seed — both come in as `data.shuffle_seed`).
pub fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    if shuffle {
        order::torch_randperm(n, seed + epoch)
    } else {
        (0..n).collect()
    }
}

/// A padded micro-batch on the device.
pub struct Batch {
    pub input_ids: Tensor, // (B, T) int64
    pub labels: Tensor,    // (B, T) int64, unshifted, -100 = ignored
    /// Σ labels ≠ -100 before the shift (TorchTune's count).
    pub label_tokens_unshifted: i64,
    /// Σ labels[1:] ≠ -100 (HF's `num_items_in_batch` contribution, the loss's count).
    pub label_tokens_shifted: i64,
    /// Real (unpadded) tokens.
    pub tokens: i64,
}

/// Right-pad to the longest sample: input_ids with `pad_id`, labels with -100
/// (TorchTune `padded_collate_sft`, HF `DataCollatorForSeq2Seq` without pad_to_multiple_of).
pub fn collate(samples: &[&Sample], pad_id: i64, device: Device) -> Batch {
    let b = samples.len() as i64;
    let t = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(samples.len() * t);
    let mut labels = Vec::with_capacity(samples.len() * t);
    let (mut unshifted, mut shifted, mut tokens) = (0, 0, 0);
    for s in samples {
        let n = s.input_ids.len();
        ids.extend(&s.input_ids);
        ids.extend(std::iter::repeat_n(pad_id, t - n));
        labels.extend(&s.labels);
        labels.extend(std::iter::repeat_n(format::IGNORE, t - n));
        unshifted += s.labels.iter().filter(|&&l| l != format::IGNORE).count() as i64;
        shifted += s
            .labels
            .iter()
            .skip(1)
            .filter(|&&l| l != format::IGNORE)
            .count() as i64;
        tokens += n as i64;
    }
    let to = |v: Vec<i64>| {
        Tensor::from_slice(&v)
            .to_kind(Kind::Int64)
            .view([b, t as i64])
            .to_device(device)
    };
    Batch {
        input_ids: to(ids),
        labels: to(labels),
        label_tokens_unshifted: unshifted,
        label_tokens_shifted: shifted,
        tokens,
    }
}
