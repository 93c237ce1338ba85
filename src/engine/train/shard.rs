//! Which micro-batches of an epoch each data-parallel rank trains on, as each framework's
//! data loader splits them (docs/ENGINE.md, "Distributed semantics").
//!
//! - HF Trainer (Axolotl, Unsloth/TRL): every rank draws the same epoch order (the seedable
//!   sampler), cuts it into micro-batches, and accelerate's `BatchSamplerShard`
//!   (`split_batches=False`, `even_batches=True`) gives rank r the micro-batches r, r+W, …;
//!   when they do not share out evenly, the last ones are completed and extended from the
//!   start of the epoch (accelerate 1.13 `data_loader.py`, `_iter_with_no_split`).
//! - TorchTune: `DistributedSampler(drop_last=False)` pads the epoch order to a multiple of W by
//!   repeating its head and gives rank r the samples r, r+W, …; the data loader then cuts them
//!   into micro-batches with `drop_last=True` (torch `utils/data/distributed.py`).
//!
//! With W = 1 both are the plain split of the epoch order.

use crate::engine::flavour::Flavour;

/// A data-parallel rank: `rank` of `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub size: usize,
}

impl Shard {
    pub const SINGLE: Shard = Shard { rank: 0, size: 1 };
}

/// Rank `shard.rank`'s micro-batches of one epoch whose sample order is `order`.
pub fn micro_batches(
    order: &[usize],
    mb: usize,
    flavour: Flavour,
    shard: Shard,
) -> Vec<Vec<usize>> {
    match flavour {
        Flavour::TorchTune => distributed_sampler(order, mb, shard),
        Flavour::Axolotl | Flavour::Unsloth => batch_sampler_shard(order, mb, shard),
    }
}

/// torch `DistributedSampler(num_replicas=W, rank=r, drop_last=False)` then
/// `DataLoader(batch_size=mb, drop_last=True)`.
fn distributed_sampler(order: &[usize], mb: usize, s: Shard) -> Vec<Vec<usize>> {
    let total = order.len().div_ceil(s.size) * s.size;
    let mut padded: Vec<usize> = order.to_vec();
    while padded.len() < total {
        let need = (total - padded.len()).min(order.len());
        padded.extend_from_slice(&order[..need]);
    }
    let mine: Vec<usize> = padded
        .iter()
        .skip(s.rank)
        .step_by(s.size)
        .copied()
        .collect();
    mine.chunks_exact(mb).map(<[usize]>::to_vec).collect()
}

/// accelerate `BatchSamplerShard(BatchSampler(order, mb, drop_last=False), W, r,
/// split_batches=False, even_batches=True)`.
fn batch_sampler_shard(order: &[usize], mb: usize, s: Shard) -> Vec<Vec<usize>> {
    let batches: Vec<&[usize]> = order.chunks(mb).collect();
    if s.size == 1 {
        return batches.into_iter().map(<[usize]>::to_vec).collect();
    }
    let mut out = Vec::new();
    let mut initial: Vec<usize> = Vec::new();
    let mut to_yield: Vec<usize> = Vec::new();
    for (idx, b) in batches.iter().enumerate() {
        if idx < s.size {
            initial.extend_from_slice(b);
        }
        if idx % s.size == s.rank {
            to_yield = b.to_vec();
        }
        if idx % s.size == s.size - 1 && b.len() == mb {
            out.push(std::mem::take(&mut to_yield));
        }
    }
    if initial.is_empty() {
        return out;
    }
    if to_yield.len() == mb {
        out.push(std::mem::take(&mut to_yield));
    }
    while initial.len() < s.size * mb {
        initial.extend(initial.clone());
    }
    // the cycle continues from the last batch seen, completing it when it was short
    let mut idx = batches.len() - 1;
    let mut batch: Vec<usize> = batches[idx].to_vec();
    if batch.len() == mb {
        batch.clear();
        idx += 1;
    }
    let mut cycle = 0usize;
    while idx % s.size != 0 || !batch.is_empty() {
        let end = cycle + mb - batch.len();
        batch.extend_from_slice(&initial[cycle..end]);
        if idx % s.size == s.rank {
            out.push(batch.clone());
        }
        cycle = end;
        batch.clear();
        idx += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ranks(order: &[usize], mb: usize, flavour: Flavour, w: usize) -> Vec<Vec<Vec<usize>>> {
        (0..w)
            .map(|rank| micro_batches(order, mb, flavour, Shard { rank, size: w }))
            .collect()
    }

    #[test]
    fn one_rank_is_the_plain_split() {
        let order: Vec<usize> = (0..7).collect();
        assert_eq!(
            micro_batches(&order, 3, Flavour::Axolotl, Shard::SINGLE),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
        assert_eq!(
            micro_batches(&order, 3, Flavour::TorchTune, Shard::SINGLE),
            vec![vec![0, 1, 2], vec![3, 4, 5]]
        );
    }

    #[test]
    fn accelerate_deals_whole_micro_batches_and_cycles_the_tail() {
        // 10 samples, mb 2, 3 ranks: batches [0,1] [2,3] [4,5] [6,7] [8,9]; ranks get
        // 0,3 / 1,4 / 2, then the sixth batch comes from the start of the epoch: [0,1]
        let order: Vec<usize> = (0..10).collect();
        let got = all_ranks(&order, 2, Flavour::Unsloth, 3);
        assert_eq!(got[0], vec![vec![0, 1], vec![6, 7]]);
        assert_eq!(got[1], vec![vec![2, 3], vec![8, 9]]);
        assert_eq!(got[2], vec![vec![4, 5], vec![0, 1]]);
        // a short last batch is completed from the start: 7 samples, mb 2, 2 ranks
        let order: Vec<usize> = (0..7).collect();
        let got = all_ranks(&order, 2, Flavour::Axolotl, 2);
        assert_eq!(got[0], vec![vec![0, 1], vec![4, 5]]);
        assert_eq!(got[1], vec![vec![2, 3], vec![6, 0]]);
    }

    #[test]
    fn torchtune_strides_samples_over_ranks_and_pads_from_the_head() {
        let order = vec![5, 3, 0, 4, 1, 2, 6];
        // padded to 8 with order[0]; rank 0: 5,0,1,6  rank 1: 3,4,2,5
        let got = all_ranks(&order, 2, Flavour::TorchTune, 2);
        assert_eq!(got[0], vec![vec![5, 0], vec![1, 6]]);
        assert_eq!(got[1], vec![vec![3, 4], vec![2, 5]]);
        // drop_last per rank: 3 samples each at mb 2 → one micro-batch
        let got = all_ranks(&order[..6], 2, Flavour::TorchTune, 2);
        assert_eq!(got[0], vec![vec![5, 0]]);
    }

    #[test]
    fn accelerate_sharding_matches_the_single_process_micro_batches_when_they_divide() {
        // W ranks × ga 1 sees the micro-batches one rank sees with ga W, in the same steps
        let order: Vec<usize> = (0..16).collect();
        let single = micro_batches(&order, 2, Flavour::Axolotl, Shard::SINGLE);
        let ranks = all_ranks(&order, 2, Flavour::Axolotl, 4);
        for step in 0..2 {
            for (r, rank) in ranks.iter().enumerate() {
                assert_eq!(rank[step], single[step * 4 + r]);
            }
        }
    }
}
