//! Data: files → rows → tokenized samples → the per-epoch order → padded micro-batches.
//!
//! Each step follows the framework the run reproduces ([`Flavour`]): prompt framing and
//! masking in [`format`], the shuffles in [`order`], padding and label layout in [`collate`].
//! Files come from [`files`]: JSON, JSON Lines, Parquet, or a hub dataset in the local cache.
//! Left out (for now): packing.

pub mod files;
pub mod format;
pub mod order;
pub mod template;
pub mod tokenizer;

use super::error::{EngineError, Result};
use super::Flavour;
use crate::ir::RunSpec;
use serde_json::{Map, Value};
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub use files::dataset_files;
pub use tokenizer::Tokenizer;

/// One training sequence. `labels[i]` is the target *at* position i (unshifted; the loss
/// predicts labels[i+1] from position i); -100 = no loss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub input_ids: Vec<i64>,
    pub labels: Vec<i64>,
}

/// Rows of a JSON array, JSON Lines or (by its extension) Parquet file.
pub fn read_rows(path: &Path) -> Result<Vec<Map<String, Value>>> {
    files::read_rows_as(path, "")
}

/// Every dataset of the spec tokenized, in the order the framework's sampler sees them
/// (before the per-epoch shuffle), without the rows held out for validation.
pub fn build_samples(spec: &RunSpec, flavour: Flavour, tok: &Tokenizer) -> Result<Vec<Sample>> {
    Ok(build_split(spec, flavour, tok)?.train)
}

/// The training samples and the held-out validation samples (`data.val_size`).
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
}

/// How many of `n` rows `val_size` holds out, as HF `train_test_split(test_size)` counts:
/// a fraction (≤ 1) → ⌈f·n⌉, a count (> 1) → that many rows. 0 → none.
pub fn val_count(n: usize, val_size: f64) -> Result<usize> {
    if val_size <= 0.0 {
        return Ok(0);
    }
    let k = if val_size <= 1.0 {
        (val_size * n as f64).ceil() as usize
    } else {
        val_size as usize
    };
    if k >= n {
        return Err(EngineError::Data(format!(
            "data.val_size = {val_size} holds out {k} of {n} samples and leaves none to train on"
        )));
    }
    Ok(k)
}

/// [`build_samples`] with the validation split.
///
/// - Axolotl: `train_test_split(test_size=val_set_size, shuffle=False)` on the merged,
///   shuffled dataset after the long samples are dropped: the validation set is the tail.
/// - TorchTune / Unsloth / TRL (a script's `dataset.train_test_split(test_size, seed)`):
///   `shuffle=True` with `seed = data.shuffle_seed` on the rows: numpy
///   `default_rng(seed).permutation(n)`, test = its first k entries, train = the rest in
///   permutation order.
pub fn build_split(spec: &RunSpec, flavour: Flavour, tok: &Tokenizer) -> Result<Split> {
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
            for (i, row) in files::read_rows_as(&file, &ds.loader)?.iter().enumerate() {
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
    let (mut train, mut val): (Vec<Sample>, Vec<Sample>) = if flavour == Flavour::Axolotl {
        let mut kept: Vec<Sample> = all.into_iter().flatten().collect();
        let k = val_count(kept.len(), d.val_size)?;
        let val = kept.split_off(kept.len() - k);
        (kept, val)
    } else {
        let k = val_count(all.len(), d.val_size)?;
        if k == 0 {
            (all.into_iter().flatten().collect(), Vec::new())
        } else {
            let perm = order::numpy_permutation(all.len(), d.shuffle_seed);
            let mut pick = |idx: &[usize]| -> Vec<Sample> {
                idx.iter().filter_map(|&i| all[i].take()).collect()
            };
            let val = pick(&perm[..k]);
            (pick(&perm[k..]), val)
        }
    };
    if d.drop_fully_masked {
        let keep = |s: &Sample| s.labels.iter().skip(1).any(|&l| l != format::IGNORE);
        train.retain(keep);
        val.retain(keep);
    }
    if train.is_empty() {
        return Err(EngineError::Data(
            "no samples left after tokenization".into(),
        ));
    }
    Ok(Split { train, val })
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
