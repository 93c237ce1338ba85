//! TRL 1.9 packing (`SFTConfig(packing=True)`, strategy `"bfd"`) and padding-free batches
//! (`padding_free=True`, which Unsloth turns on by itself), as `trl/data_utils.py` and
//! `DataCollatorForLanguageModeling` do them.
//!
//! Packing: `pack_dataset(dataset, max_length, "bfd")` runs as a batched `Dataset.map`, so over
//! consecutive chunks of [`MAP_BATCH`] samples, each packed on its own (`_pack_bfd`):
//! 1. empty samples are dropped and every sample is cut to its first `max_length` tokens (the
//!    overflow is discarded: `on_seq_length_overflow="truncate"`);
//! 2. the samples are sorted by length, longest first; ties keep dataset order (Arrow's sort
//!    is stable);
//! 3. best fit: each sample goes to the open bin whose free space is the smallest that still
//!    holds it (a segment tree over free-space values in TRL); among bins with that same free
//!    space, the one that reached it first (a FIFO per value); if none fits, a new bin opens;
//! 4. the packed rows are the bins in the order they were opened, their samples in the order
//!    they went in, with `seq_lengths` = those samples' lengths. Rows are not padded.
//!
//! Padding-free: the collator concatenates a micro-batch's rows into ONE row, gives every
//! document positions 0, 1, … (`get_position_ids_from_packed_seq_lengths`; an unpacked sample is
//! one document) and no attention mask, and sets the label of every position 0 to −100, so no
//! document's last token is trained to predict the next document's first one. transformers
//! 5.16 (`masking_utils.find_packed_sequence_indices`) reads the restarting positions as
//! document boundaries and masks attention block-diagonally (checked on the real CPU run:
//! golden/runs/hf-trl-packing-llama/log.txt, `contamination check`), as Unsloth's varlen
//! attention does on a GPU. So a padding-free micro-batch is one row with a `DocLayout` of
//! its documents, and its loss equals the padded batch's up to float order.
//!
//! Loss: HF's `num_items_in_batch` = Σ labels\[1:\] ≠ −100 over the step's flattened rows
//! (the masked document starts are not counted), as for any TRL run.

use super::format::IGNORE;
use super::sample::Sample;
use crate::engine::error::Unsupported;
use crate::ir::Data;
use std::collections::{BTreeMap, VecDeque};

/// `datasets.Dataset.map(batched=True)`'s default `batch_size`: TRL packs each chunk of this
/// many samples separately.
pub const MAP_BATCH: usize = 1000;

/// What of TRL packing the engine does not reproduce (`support::check`, Unsloth flavour):
/// TRL packs the evaluation split too (`eval_packing` defaults to `packing`), and Unsloth's
/// `train_on_responses_only` masks the already packed rows.
pub fn check(d: &Data) -> Vec<Unsupported> {
    let mut out = Vec::new();
    if d.val_size > 0.0 {
        out.push(Unsupported::new(
            "data.val_size",
            d.val_size,
            "with packing, TRL packs the evaluation split too (eval_packing); the engine packs \
             the training split only",
        ));
    }
    if d.drop_fully_masked {
        out.push(Unsupported::new(
            "data.drop_fully_masked",
            "true",
            "with packing, Unsloth's train_on_responses_only masks and filters the packed rows; \
             the engine masks each sample before packing",
        ));
    }
    out
}

/// TRL `pack_dataset(…, seq_length, strategy="bfd")` over `samples` in dataset order.
pub fn pack_bfd(samples: &[Sample], seq_length: usize) -> Vec<Sample> {
    samples
        .chunks(MAP_BATCH)
        .flat_map(|chunk| pack_bfd_chunk(chunk, seq_length))
        .collect()
}

/// Which samples (indices into `lens`) each bin holds, in bin and insertion order: TRL's
/// `_pack_bfd` binning. `lens` are the (already truncated, non-zero) lengths.
pub fn bfd_bins(lens: &[usize], seq_length: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a])); // stable: ties keep dataset order
    let mut bins: Vec<(Vec<usize>, usize)> = Vec::new(); // (ids, free space)
                                                         // free space (< seq_length) → the bins with exactly that space, first come first served
    let mut by_space: BTreeMap<usize, VecDeque<usize>> = BTreeMap::new();
    for idx in order {
        let len = lens[idx];
        // the smallest free space that holds `len`; a new bin (space seq_length) otherwise
        let fit = by_space.range(len..).next().map(|(&s, _)| s);
        let b = match fit {
            Some(space) => {
                let q = by_space.get_mut(&space).expect("listed space");
                let b = q.pop_front().expect("non-empty queue");
                if q.is_empty() {
                    by_space.remove(&space);
                }
                b
            }
            None => {
                bins.push((Vec::new(), seq_length));
                bins.len() - 1
            }
        };
        bins[b].0.push(idx);
        bins[b].1 -= len;
        let space = bins[b].1;
        if space > 0 {
            by_space.entry(space).or_default().push_back(b);
        }
    }
    bins.into_iter().map(|(ids, _)| ids).collect()
}

fn pack_bfd_chunk(chunk: &[Sample], seq_length: usize) -> Vec<Sample> {
    let kept: Vec<Sample> = chunk
        .iter()
        .filter(|s| !s.input_ids.is_empty())
        .map(|s| {
            let n = s.input_ids.len().min(seq_length);
            Sample {
                input_ids: s.input_ids[..n].to_vec(),
                labels: s.labels[..n].to_vec(),
                doc_lens: Vec::new(),
            }
        })
        .collect();
    let lens: Vec<usize> = kept.iter().map(|s| s.input_ids.len()).collect();
    bfd_bins(&lens, seq_length)
        .into_iter()
        .map(|ids| {
            let mut row = Sample::default();
            for i in ids {
                row.input_ids.extend(&kept[i].input_ids);
                row.labels.extend(&kept[i].labels);
                row.doc_lens.push(lens[i]);
            }
            row
        })
        .collect()
}

/// A micro-batch as TRL's padding-free collator lays it out, before it becomes tensors
/// (`data::collate_as`).
#[derive(Debug, Clone, PartialEq)]
pub struct Flat {
    /// Every row's tokens, one after the other.
    pub input_ids: Vec<i64>,
    /// Their labels, −100 at every document start (`labels[position_ids == 0] = -100`).
    pub labels: Vec<i64>,
    /// The documents' lengths (an unpacked sample is one document): positions restart and
    /// attention is confined per document.
    pub doc_lens: Vec<usize>,
}

/// TRL's padding-free collator: the micro-batch as one row of all its documents.
pub fn flatten(samples: &[&Sample]) -> Flat {
    let mut f = Flat {
        input_ids: Vec::new(),
        labels: Vec::new(),
        doc_lens: Vec::new(),
    };
    for s in samples {
        f.input_ids.extend(&s.input_ids);
        let lens = if s.doc_lens.is_empty() {
            vec![s.input_ids.len()]
        } else {
            s.doc_lens.clone()
        };
        let mut at = 0;
        for &n in &lens {
            f.labels.extend(&s.labels[at..at + n]);
            if n > 0 {
                let start = f.labels.len() - n;
                f.labels[start] = IGNORE;
            }
            at += n;
        }
        f.doc_lens.extend(lens);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: usize, id: i64) -> Sample {
        Sample {
            input_ids: vec![id; n],
            labels: vec![id; n],
            doc_lens: Vec::new(),
        }
    }

    #[test]
    fn bfd_matches_trl_pack_dataset() {
        // trl 1.9 `pack_dataset(Dataset.from_dict({"input_ids": [[i] * l …]}), 32, "bfd")` on
        // 40 lengths drawn by random.seed(1); `seq_lengths` and sample ids as TRL returned them
        let lens = [
            8, 36, 4, 16, 7, 31, 28, 30, 24, 13, 6, 31, 1, 24, 27, 38, 0, 28, 17, 14, 37, 6, 20, 1,
            1, 1, 34, 0, 24, 13, 27, 1, 33, 14, 28, 31, 35, 14, 22, 14,
        ];
        let samples: Vec<Sample> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| s(l, i as i64))
            .collect();
        let packed = pack_bfd(&samples, 32);
        let seq: Vec<Vec<usize>> = packed.iter().map(|p| p.doc_lens.clone()).collect();
        let want_seq: Vec<Vec<usize>> = vec![
            vec![32],
            vec![32],
            vec![32],
            vec![32],
            vec![32],
            vec![32],
            vec![31, 1],
            vec![31, 1],
            vec![31, 1],
            vec![30],
            vec![28, 4],
            vec![28],
            vec![28],
            vec![27],
            vec![27],
            vec![24, 8],
            vec![24, 7, 1],
            vec![24, 6],
            vec![22],
            vec![20],
            vec![17, 14, 1],
            vec![16, 14],
            vec![14, 14],
            vec![13, 13, 6],
        ];
        assert_eq!(seq, want_seq);
        let ids: Vec<Vec<i64>> = packed
            .iter()
            .map(|p| {
                let mut at = 0;
                p.doc_lens
                    .iter()
                    .map(|&n| {
                        at += n;
                        p.input_ids[at - n]
                    })
                    .collect()
            })
            .collect();
        let want_ids: Vec<Vec<i64>> = vec![
            vec![1],
            vec![15],
            vec![20],
            vec![26],
            vec![32],
            vec![36],
            vec![5, 12],
            vec![11, 23],
            vec![35, 24],
            vec![7],
            vec![6, 2],
            vec![17],
            vec![34],
            vec![14],
            vec![30],
            vec![8, 0],
            vec![13, 4, 31],
            vec![28, 21],
            vec![38],
            vec![22],
            vec![18, 19, 25],
            vec![3, 33],
            vec![37, 39],
            vec![9, 29, 10],
        ];
        assert_eq!(ids, want_ids);
        // overflow is cut off (36 → 32 tokens), never split into another row; rows unpadded
        assert_eq!(packed[0].input_ids, vec![1; 32]);
        assert!(packed.iter().all(|p| p.input_ids.len() <= 32));
        assert_eq!(
            packed.iter().map(|p| p.input_ids.len()).sum::<usize>(),
            lens.iter().map(|&l| l.min(32)).sum::<usize>()
        );
    }

    #[test]
    fn bfd_packs_each_map_batch_on_its_own() {
        // 1001 samples of 1 token: the first 1000 fill bins of 4, the last one gets its own
        let samples: Vec<Sample> = (0..1001).map(|i| s(1, i)).collect();
        let packed = pack_bfd(&samples, 4);
        assert_eq!(packed.len(), 251);
        assert_eq!(packed[250].input_ids, vec![1000]);
        assert_eq!(packed[0].input_ids, vec![0, 1, 2, 3]);
    }

    #[test]
    fn padding_free_flattens_with_document_starts_masked() {
        let a = Sample {
            input_ids: vec![1, 2, 3, 4, 5],
            labels: vec![1, 2, 3, 4, 5],
            doc_lens: vec![3, 2],
        };
        let b = Sample {
            input_ids: vec![6, 7],
            labels: vec![-100, 7],
            doc_lens: Vec::new(),
        };
        let f = flatten(&[&a, &b]);
        assert_eq!(f.input_ids, vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(f.labels, vec![-100, 2, 3, -100, 5, -100, 7]);
        assert_eq!(f.doc_lens, vec![3, 2, 2]);
    }
}
