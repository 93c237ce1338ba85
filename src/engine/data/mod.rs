//! Data: files → rows → tokenized samples → the per-epoch order → padded micro-batches.
//!
//! Each step follows the framework the run reproduces ([`Flavour`]): prompt framing and
//! masking in [`format`](mod@format), the shuffles in [`order`], padding and label layout in [`collate`].
//! Files come from [`files`]: JSON, JSON Lines, Parquet, or a hub dataset in the local cache.
//! Packing follows TorchTune's `PackedDataset` ([`pack`]), Axolotl's multipack sampler
//! ([`multipack`]), or under the Unsloth flavour TRL's best-fit-decreasing packing and
//! padding-free batches ([`trl_pack`]).

pub mod files;
pub mod format;
pub mod multipack;
pub mod order;
pub mod sample;
pub mod slice;
pub mod template;
pub mod tokenizer;
pub mod trl_pack;
pub mod tt_framing;

use super::error::{EngineError, Result};
use super::flavour::Flavour;
use super::model::mask::DocLayout;
use crate::ir::{Data, DatasetFormat, Loader, RunSpec};
use serde_json::{Map, Value};
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub use files::dataset_files;
pub use sample::Sample;
pub use tokenizer::Tokenizer;

/// Rows of a JSON array, JSON Lines or (by its extension) Parquet file.
pub fn read_rows(path: &Path) -> Result<Vec<Map<String, Value>>> {
    files::read_rows_as(path, Loader::Hub)
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
///
/// Packing and the overlong policy are taken as given: `support::check` refuses, before a run
/// loads anything, the ones the engine does not reproduce (packing other than TorchTune's).
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
    let all = tokenize_datasets(spec, flavour, tok, chat.as_ref())?;
    let (mut train, mut val) = split_val(all, flavour, d)?;
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
    // Axolotl packs per epoch, in the plan (`multipack`)
    if d.packing && flavour == Flavour::Unsloth {
        train = trl_pack::pack_bfd(&train, d.sequence_len as usize);
    } else if d.packing && flavour == Flavour::TorchTune {
        train = pack(&train, d.sequence_len as usize, PACK_PAD_ID)?;
    }
    Ok(Split { train, val })
}

/// Every row of every dataset, formatted and tokenized as the flavour does, in dataset and
/// file order; `None` where a sample was dropped as too long.
fn tokenize_datasets(
    spec: &RunSpec,
    flavour: Flavour,
    tok: &Tokenizer,
    chat: Option<&template::ChatTemplate>,
) -> Result<Vec<Option<Sample>>> {
    let d = &spec.data;
    let mut all: Vec<Option<Sample>> = Vec::new();
    for ds in &d.datasets {
        let ctx = format::FormatCtx {
            flavour,
            tok,
            train_on_inputs: d.train_on_inputs,
            sequence_len: d.sequence_len as usize,
            overlong: d.overlong,
            add_eos: d.add_eos,
            alpaca: if matches!(ds.format, DatasetFormat::Alpaca | DatasetFormat::Instruct) {
                format::AlpacaStrings::resolve(&ds.prompt_style, &ds.templates, flavour)?
            } else {
                format::AlpacaStrings {
                    with_input: String::new(),
                    no_input: String::new(),
                }
            },
            columns: &ds.columns,
            roles_to_train: &ds.roles_to_train,
            chat,
            family: &spec.model.family,
            chat_framed: ds.prompt_style.ends_with("_chat_template"),
        };
        for r in files::dataset_rows(ds)? {
            let s = format::format_row(&ctx, ds.format, &r.row).map_err(|e| match e {
                EngineError::Data(m) => {
                    EngineError::bad_file(r.file.as_path(), format!("row {}: {m}", r.index + 1))
                }
                other => other,
            })?;
            all.extend(s);
        }
    }
    Ok(all)
}

/// Hold out the validation rows (see [`build_split`]); returns (train, val).
fn split_val(
    mut all: Vec<Option<Sample>>,
    flavour: Flavour,
    d: &Data,
) -> Result<(Vec<Sample>, Vec<Sample>)> {
    // Axolotl shuffles the merged, tokenized dataset once (`Dataset.shuffle(seed)`), then
    // drops the samples that are too long.
    if flavour == Flavour::Axolotl && d.shuffle {
        let perm = order::numpy_permutation(all.len(), d.shuffle_seed);
        all = perm.into_iter().map(|i| all[i].take()).collect();
    }
    Ok(if flavour == Flavour::Axolotl {
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
    })
}

/// TorchTune `PackedDataset`'s `padding_idx` (the recipes keep the default 0).
pub const PACK_PAD_ID: i64 = 0;

/// TorchTune 0.6.1 `PackedDataset(split_across_pack=False)`: samples in order are appended to
/// the current pack; when it grows past `max_len`, everything before the last sample becomes a
/// pack (padded to `max_len` with `pad_id` and label −100) and the last sample starts the next
/// one; the final partial pack is kept. Samples are never split; one longer than `max_len` is
/// an error, as in TorchTune. Each pack is one row of exactly `max_len` tokens whose
/// `doc_lens` are its samples' lengths: positions restart and attention is block-causal per
/// sample. Labels are not re-shifted per sample: the recipe's shift runs across the row, so a
/// sample's last position predicts the next sample's first label when that one is trained
/// (TorchTune 0.6.1, fixed after it in #2613).
pub fn pack(samples: &[Sample], max_len: usize, pad_id: i64) -> Result<Vec<Sample>> {
    let mut packs = Vec::new();
    let mut cur = Sample::default();
    let close = |cur: &mut Sample, packs: &mut Vec<Sample>| {
        let n = cur.input_ids.len();
        cur.input_ids
            .extend(std::iter::repeat_n(pad_id, max_len - n));
        cur.labels
            .extend(std::iter::repeat_n(format::IGNORE, max_len - n));
        packs.push(std::mem::take(cur));
    };
    for (i, s) in samples.iter().enumerate() {
        let n = s.input_ids.len();
        if n > max_len {
            return Err(EngineError::Data(format!(
                "sample {} is too long to pack ({n} > sequence_len {max_len})",
                i + 1
            )));
        }
        if cur.input_ids.len() + n > max_len && !cur.input_ids.is_empty() {
            close(&mut cur, &mut packs);
        }
        cur.input_ids.extend(&s.input_ids);
        cur.labels.extend(&s.labels);
        cur.doc_lens.push(n);
    }
    if !cur.input_ids.is_empty() {
        close(&mut cur, &mut packs);
    }
    Ok(packs)
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
    /// Σ labels\[1:\] ≠ -100 (HF's `num_items_in_batch` contribution, the loss's count).
    pub label_tokens_shifted: i64,
    /// Real (unpadded) tokens.
    pub tokens: i64,
    /// Packed rows: their document layout, for the model's forward.
    pub docs: Option<DocLayout>,
}

/// Whether the flavour's collator flattens each micro-batch into one row: TRL's
/// `padding_free` (Unsloth's default), which bfd packing implies ([`trl_pack`]).
pub fn flattens(d: &Data, flavour: Flavour) -> bool {
    flavour == Flavour::Unsloth && (d.padding_free || d.packing)
}

/// A micro-batch as the flavour's collator builds it: TRL's one padding-free row where
/// [`flattens`], else [`collate`].
pub fn collate_as(flat: bool, samples: &[&Sample], pad_id: i64, device: Device) -> Batch {
    if !flat {
        return collate(samples, pad_id, device);
    }
    let f = trl_pack::flatten(samples);
    let t = f.input_ids.len() as i64;
    let trained = |v: &[i64]| v.iter().filter(|&&l| l != format::IGNORE).count() as i64;
    let to = |v: &[i64]| {
        Tensor::from_slice(v)
            .to_kind(Kind::Int64)
            .view([1, t])
            .to_device(device)
    };
    Batch {
        input_ids: to(&f.input_ids),
        labels: to(&f.labels),
        // the first label is a document start, so both counts agree
        label_tokens_unshifted: trained(&f.labels),
        label_tokens_shifted: trained(f.labels.get(1..).unwrap_or(&[])),
        tokens: t,
        docs: Some(DocLayout::new(&[f.doc_lens], t, device)),
    }
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
        tokens += if s.doc_lens.is_empty() {
            n as i64
        } else {
            s.doc_lens.iter().sum::<usize>() as i64
        };
    }
    let docs = samples.iter().any(|s| !s.doc_lens.is_empty()).then(|| {
        let lens: Vec<Vec<usize>> = samples
            .iter()
            .map(|s| {
                if s.doc_lens.is_empty() {
                    vec![s.input_ids.len()]
                } else {
                    s.doc_lens.clone()
                }
            })
            .collect();
        DocLayout::new(&lens, t as i64, device)
    });
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
        docs,
    }
}

#[cfg(test)]
mod tests {
    // By full path: import tracing reads `super` here as this file's parent.
    use crate::engine::data::*;

    fn s(n: usize, first: i64) -> Sample {
        Sample {
            input_ids: (first..first + n as i64).collect(),
            labels: (first..first + n as i64).map(|x| -x).collect(),
            doc_lens: Vec::new(),
        }
    }

    #[test]
    fn packing_is_greedy_whole_samples_padded_rows() {
        let samples = [s(3, 1), s(4, 10), s(2, 20), s(5, 30), s(1, 40)];
        let packs = pack(&samples, 8, 0).unwrap();
        let lens: Vec<Vec<usize>> = packs.iter().map(|p| p.doc_lens.clone()).collect();
        // 3+4 = 7 (+2 would be 9 > 8) | 2+5+1 = 8 exactly
        assert_eq!(lens, vec![vec![3, 4], vec![2, 5, 1]]);
        assert!(packs
            .iter()
            .all(|p| p.input_ids.len() == 8 && p.labels.len() == 8));
        assert_eq!(packs[0].input_ids, vec![1, 2, 3, 10, 11, 12, 13, 0]);
        assert_eq!(packs[0].labels, vec![-1, -2, -3, -10, -11, -12, -13, -100]);
        assert_eq!(packs[1].input_ids, vec![20, 21, 30, 31, 32, 33, 34, 40]);
        // a sample longer than a row is an error, as in TorchTune (split_across_pack=False)
        assert!(pack(&[s(9, 1)], 8, 0).is_err());
    }

    #[test]
    fn val_counts_follow_train_test_split() {
        assert_eq!(val_count(64, 0.0).unwrap(), 0);
        assert_eq!(val_count(64, 0.1).unwrap(), 7); // ⌈6.4⌉
        assert_eq!(val_count(64, 0.125).unwrap(), 8);
        assert_eq!(val_count(64, 5.0).unwrap(), 5);
        assert!(val_count(64, 64.0).is_err());
        assert!(val_count(1, 0.5).is_err());
    }
}
