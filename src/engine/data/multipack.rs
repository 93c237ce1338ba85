//! Axolotl 0.19's sample packing (`sample_packing: true`, the multipack sampler), reproduced
//! bin for bin.
//!
//! What Axolotl does (`utils/samplers/multipack.py`, `core/trainers/base.py`,
//! `utils/collators/batching.py`, `utils/trainer.py::calculate_total_num_steps`):
//! - **Order.** Each epoch the Trainer's `RandomSampler` (made seedable by accelerate: a
//!   generator seeded with `seed + epoch`) gives `torch.randperm(n)`, as for unpacked runs.
//! - **Bins.** `pack_parallel` cuts that order into groups of `sample_packing_group_size`
//!   (100 000) samples; within a group, `pack_group` puts each sample, *in the random order*
//!   (despite the "first-fit-decreasing" name nothing is sorted), into the first bin with room
//!   for its length and fewer than `sample_packing_bin_size` (200) samples, else opens a bin.
//! - **Batches.** `batch_size` consecutive bins make a micro-batch; an incomplete last
//!   micro-batch is dropped (`drop_last=True`). The epoch is cut to the sampler's `len`
//!   (below), so an epoch never has more micro-batches than that.
//! - **Row shape**, from the attention backend (`multipack_real_batches`, default
//!   `not attn_supports_packing`): eager/sdpa → *real batches*, `micro_batch_size` bins of at
//!   most `sequence_len` tokens, one row each; a varlen backend (flash attention 2/3, flex,
//!   xformers, sage) → one bin of at most `micro_batch_size × sequence_len` tokens, one row.
//! - **Rows.** The V2 collator concatenates a bin's samples (labels unchanged, so the shift
//!   runs across the row: a sample's last token predicts the next one's first label when that
//!   is trained) and restarts `position_ids` at 0 per sample; attention stays inside each
//!   sample (eager/sdpa: `attention_mask` is dropped and transformers builds the block-causal
//!   mask from the restarting positions; varlen kernels: `cu_seqlens`). Rows are padded to a
//!   multiple of `64·⌈sequence_len/64⌉` (`pad_to_sequence_len`, on by default under packing)
//!   with the pad id, label −100 and positions `0, 1, …` (one more document).
//! - **Length** (`MultipackBatchSampler.__len__`, called when the sampler is made): one pass
//!   for statistics, then four more passes, each over a fresh `RandomSampler` order whose
//!   generator is seeded from the *global* torch generator
//!   (`torch.empty((), int64).random_()`); the length is the least batch count of the four.
//!   The Trainer's sampler is made after `Trainer.__init__` ran `set_seed(seed)`, so its
//!   length is a function of the seed ([`sampler_len`]).
//! - **Step estimate** (`max_steps` when the config has none): the same length computed while
//!   the dataset is prepared, before anything seeds torch (a per-process random seed, so Axolotl
//!   itself can land one batch either side from run to run), then
//!   `⌊max(1, len·mbs ∕ (mbs·GA·world))·epochs⌋`, minus `⌈epochs⌉` with `dataloader_drop_last`.
//!   We draw it from a generator seeded with the run seed ([`estimate_steps`]).

use super::format::IGNORE;
use super::order::{torch_randperm, Mt19937};
use super::sample::Sample;
use crate::engine::error::Unsupported;
use crate::ir::{Attention, RunSpec};
use serde_json::Value;

/// Axolotl's defaults (`AxolotlTrainingArguments`).
const DEFAULT_BIN_SIZE: usize = 200;
const DEFAULT_GROUP_SIZE: usize = 100_000;
/// `MultipackBatchSampler(num_count_samples=4)`.
const COUNT_SAMPLES: usize = 4;

/// How a run packs: the sampler's parameters and the collator's padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Multipack {
    /// Tokens a bin holds (`batch_max_len`).
    pub capacity: usize,
    /// Bins a micro-batch holds (`batch_size` of the sampler).
    pub bins_per_batch: usize,
    /// Most samples in a bin (`sample_packing_bin_size`).
    pub bin_size: usize,
    /// Samples packed together (`sample_packing_group_size`).
    pub group_size: usize,
    /// Rows are padded to a multiple of this (none: to the longest row).
    pub pad_multiple: Option<usize>,
    /// `multipack_real_batches`: `micro_batch_size` rows of `sequence_len` (else one row).
    pub real_batches: bool,
}

/// An Axolotl key the IR keeps verbatim (`passthrough`).
fn passthrough<'a>(spec: &'a RunSpec, key: &str) -> Option<&'a Value> {
    spec.passthrough
        .get(&format!("axolotl.{key}"))
        .filter(|v| !v.is_null())
}

/// What of Axolotl's packing a spec asks for that the engine does not reproduce.
pub fn check(spec: &RunSpec) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let on = |key: &str| passthrough(spec, key).and_then(Value::as_bool) == Some(true);
    for (key, what) in [
        (
            "sample_packing_sequentially",
            "sequential packing (bins in dataset order)",
        ),
        ("curriculum_sampling", "a sequential sampler under packing"),
    ] {
        if on(key) {
            out.push(Unsupported::new(
                format!("passthrough.axolotl.{key}"),
                "true",
                format!(
                    "{what} is not reproduced; the engine packs as Axolotl's default multipack \
                     sampler does (random order, first-fit bins)"
                ),
            ));
        }
    }
    out
}

/// Whether the evaluation set is packed too (`eval_sample_packing`, default on).
pub fn packs_eval(spec: &RunSpec) -> bool {
    passthrough(spec, "eval_sample_packing").and_then(Value::as_bool) != Some(false)
}

/// Whether the attention backend packs varlen (`ATTN_IMPLS_SUPPORTING_PACKING`).
pub fn attention_supports_packing(a: Attention) -> bool {
    !matches!(a, Attention::Eager | Attention::Sdpa)
}

impl Multipack {
    /// The sampler and collator Axolotl builds for `spec`.
    pub fn of(spec: &RunSpec) -> Self {
        let seq = spec.data.sequence_len.max(1) as usize;
        let mbs = spec.batch.micro_batch_per_device.max(1) as usize;
        let real_batches = passthrough(spec, "multipack_real_batches")
            .and_then(Value::as_bool)
            .unwrap_or(!attention_supports_packing(spec.model.attention));
        let (bins_per_batch, capacity) = if real_batches {
            (mbs, seq)
        } else {
            (1, mbs * seq)
        };
        let size = |key: &str, default: usize| {
            passthrough(spec, key)
                .and_then(Value::as_u64)
                .map_or(default, |v| v as usize)
        };
        // core/builders/causal.py: pad_to_multiple_of = multiple·⌈sequence_len/multiple⌉
        // with pad_to_sequence_len (which packing turns on when unset), else none.
        let multiple = size("pad_to_multiple_of", 64).max(1);
        let pad_to_len = passthrough(spec, "pad_to_sequence_len")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        Multipack {
            capacity,
            bins_per_batch,
            bin_size: size("sample_packing_bin_size", DEFAULT_BIN_SIZE),
            group_size: size("sample_packing_group_size", DEFAULT_GROUP_SIZE).max(1),
            pad_multiple: pad_to_len.then(|| multiple * seq.div_ceil(multiple)),
            real_batches,
        }
    }

    /// One epoch's micro-batches for the sample `order`: bins of sample indices, dropping an
    /// incomplete last micro-batch (`generate_batches`).
    pub fn batches(&self, order: &[usize], lengths: &[usize]) -> Vec<Vec<Vec<usize>>> {
        let ordered: Vec<usize> = order.iter().map(|&i| lengths[i]).collect();
        let bins: Vec<Vec<usize>> =
            pack_parallel(&ordered, self.capacity, self.group_size, self.bin_size)
                .into_iter()
                .map(|bin| bin.into_iter().map(|p| order[p]).collect())
                .collect();
        let mut batches: Vec<Vec<Vec<usize>>> = bins
            .chunks(self.bins_per_batch)
            .map(<[Vec<usize>]>::to_vec)
            .collect();
        if batches
            .last()
            .is_some_and(|b| b.len() < self.bins_per_batch)
        {
            batches.pop();
        }
        batches
    }

    /// The evaluation set as Axolotl packs it (`eval_sample_packing`, on by default under
    /// packing): a `SequentialSampler`, so the bins of the dataset order (every pass is the
    /// same, so the sampler's length is the batch count), an incomplete last batch dropped.
    /// Micro-batch `k` is rows `k·bins_per_batch …`; the eval loss is the mean of the batches'
    /// token means (each batch has `bins_per_batch` rows).
    pub fn eval_rows(&self, samples: &[Sample], pad_id: i64) -> Vec<Sample> {
        let lengths: Vec<usize> = samples.iter().map(|s| s.input_ids.len()).collect();
        let order: Vec<usize> = (0..samples.len()).collect();
        self.batches(&order, &lengths)
            .iter()
            .flatten()
            .map(|bin| self.row(samples, bin, pad_id))
            .collect()
    }

    /// A bin as one packed row: its samples end to end, padded (pad id, label −100) to the
    /// padding multiple; `doc_lens` are the samples' lengths.
    pub fn row(&self, samples: &[Sample], bin: &[usize], pad_id: i64) -> Sample {
        let mut row = Sample::default();
        for &i in bin {
            let s = &samples[i];
            row.input_ids.extend(&s.input_ids);
            row.labels.extend(&s.labels);
            row.doc_lens.push(s.input_ids.len());
        }
        if let Some(m) = self.pad_multiple {
            let n = row.input_ids.len();
            let padded = n.div_ceil(m) * m;
            row.input_ids
                .extend(std::iter::repeat_n(pad_id, padded - n));
            row.labels.extend(std::iter::repeat_n(IGNORE, padded - n));
        }
        row
    }
}

/// Axolotl `pack_group` (safe mode): each length in the given order goes to the first bin
/// with `remaining ≥ length` and fewer than `bin_size` samples, else to a new bin (at most
/// `lengths.len()` bins). Returns bins of positions in `lengths`, offset by `offset`.
pub fn pack_group(
    lengths: &[usize],
    offset: usize,
    capacity: usize,
    bin_size: usize,
) -> Vec<Vec<usize>> {
    let max_bins = lengths.len();
    let mut remaining: Vec<usize> = Vec::new();
    let mut bins: Vec<Vec<usize>> = Vec::new();
    for (i, &size) in lengths.iter().enumerate() {
        let fit = (0..bins.len()).find(|&b| remaining[b] >= size && bins[b].len() < bin_size);
        match fit {
            Some(b) => {
                remaining[b] -= size;
                bins[b].push(offset + i);
            }
            None if bins.len() >= max_bins => continue,
            None => {
                // a sample longer than a bin still opens one (Axolotl drops those earlier)
                remaining.push(capacity.saturating_sub(size));
                bins.push(vec![offset + i]);
            }
        }
    }
    bins
}

/// Axolotl `pack_parallel`: [`pack_group`] over consecutive groups of `group_size`, the
/// groups' bins in group order (the process pool's `map` keeps it).
pub fn pack_parallel(
    lengths: &[usize],
    capacity: usize,
    group_size: usize,
    bin_size: usize,
) -> Vec<Vec<usize>> {
    lengths
        .chunks(group_size.max(1))
        .enumerate()
        .flat_map(|(g, chunk)| pack_group(chunk, g * group_size, capacity, bin_size))
        .collect()
}

/// `int(torch.empty((), dtype=torch.int64).random_())` on a generator: ATen's
/// `uniform_int_distribution<int64_t>` over `random64()` (two 32-bit draws, the first high),
/// modulo 2⁶³.
fn draw_seed(global: &mut Mt19937) -> u64 {
    let hi = u64::from(global.next_u32());
    let lo = u64::from(global.next_u32());
    ((hi << 32) | lo) % (1u64 << 63)
}

/// `len(MultipackBatchSampler)` with its `RandomSampler` drawing from a global generator seeded
/// with `seed`: one pass for statistics, then the least batch count of four passes.
pub fn sampler_len(mp: &Multipack, lengths: &[usize], seed: u64) -> usize {
    let mut global = Mt19937::new(seed);
    let n = lengths.len();
    let _stats_pass = draw_seed(&mut global);
    (0..COUNT_SAMPLES)
        .map(|_| {
            let order = torch_randperm(n, draw_seed(&mut global));
            mp.batches(&order, lengths).len()
        })
        .min()
        .unwrap_or(0)
}

/// Axolotl's packed step estimate (`calculate_total_num_steps`), the run's `max_steps` when
/// the config sets none. `sampler_len` is the length of the sampler it builds (see the module
/// docs for why its seed is ours); `sample_packing_eff_est`, when set, replaces the sampler.
pub fn estimate_steps(spec: &RunSpec, mp: &Multipack, lengths: &[usize], world: usize) -> u64 {
    let mbs = spec.batch.micro_batch_per_device.max(1) as usize;
    let ga = spec.batch.grad_accum_steps.max(1) as usize;
    let batch_size = mbs * ga * world.max(1);
    let epochs = spec.training.epochs;
    if let Some(eff) = passthrough(spec, "sample_packing_eff_est").and_then(Value::as_f64) {
        // int(floor(0.99·tokens/eff/seq // batch_size) − 1) · num_epochs
        let tokens: usize = lengths.iter().sum();
        let per = (0.99 * tokens as f64 / eff / spec.data.sequence_len as f64 / batch_size as f64)
            .floor();
        return ((per - 1.0) * epochs).max(0.0) as u64;
    }
    let len = sampler_len(mp, lengths, spec.training.seed);
    // the sampler's batches are `bins_per_batch` bins: len·mbs // batch_size micro-batch steps
    let loader_len = (len * mbs / batch_size).max(1);
    let mut steps = (loader_len as f64 * epochs).floor() as i64;
    // `cfg.dataloader_drop_last` itself (the IR's data.drop_last is on for every packed run:
    // the sampler drops; the reader keeps the key verbatim under packing)
    if passthrough(spec, "dataloader_drop_last").and_then(Value::as_bool) == Some(true) {
        steps -= epochs.ceil() as i64;
    }
    steps.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_group_is_first_fit_in_the_given_order() {
        // capacity 10: 6 → bin0 (4 left); 5 → bin1 (5 left); 4 → bin0 (0 left); 3 → bin1 (2);
        // 3 → bin2; 2 → bin1 (0); 1 → bin2 (6 left)
        let bins = pack_group(&[6, 5, 4, 3, 3, 2, 1], 0, 10, 200);
        assert_eq!(bins, vec![vec![0, 2], vec![1, 3, 5], vec![4, 6]]);
        // nothing is sorted: the same lengths in another order pack differently
        let bins = pack_group(&[1, 2, 3, 3, 4, 5, 6], 0, 10, 200);
        assert_eq!(bins, vec![vec![0, 1, 2, 3], vec![4, 5], vec![6]]);
        // an exact fit fills a bin; the per-bin sample cap opens a new one
        assert_eq!(pack_group(&[5, 5], 0, 10, 200), vec![vec![0, 1]]);
        assert_eq!(pack_group(&[1, 1, 1], 0, 10, 2), vec![vec![0, 1], vec![2]]);
        // positions are offset by the group's start
        assert_eq!(pack_group(&[4, 4], 7, 10, 200), vec![vec![7, 8]]);
    }

    #[test]
    fn groups_pack_apart_and_keep_their_order() {
        // groups of 2: [6,3] and [3,6] never share a bin although 3+3 would fit
        let bins = pack_parallel(&[6, 3, 3, 6], 10, 2, 200);
        assert_eq!(bins, vec![vec![0, 1], vec![2, 3]]);
        let one_group = pack_parallel(&[6, 3, 3, 6], 10, 100, 200);
        assert_eq!(one_group, vec![vec![0, 1], vec![2, 3]]);
        let bins = pack_parallel(&[6, 6, 3, 3], 10, 2, 200);
        assert_eq!(bins, vec![vec![0], vec![1], vec![2, 3]]);
    }

    fn mp(capacity: usize, bins_per_batch: usize) -> Multipack {
        Multipack {
            capacity,
            bins_per_batch,
            bin_size: 200,
            group_size: 100_000,
            pad_multiple: Some(capacity),
            real_batches: bins_per_batch > 1,
        }
    }

    #[test]
    fn batches_map_back_to_dataset_indices_and_drop_an_incomplete_last_one() {
        let lengths = [6, 5, 4, 3, 3, 2, 1];
        // order 6,5,…,0 → lengths 1,2,3,3,4,5,6 → bins [6,5,4,3] [2,1] [0]
        let order: Vec<usize> = (0..7).rev().collect();
        let b = mp(10, 2).batches(&order, &lengths);
        assert_eq!(
            b,
            vec![vec![vec![6, 5, 4, 3], vec![2, 1]]],
            "[0] alone is dropped"
        );
        let b = mp(10, 1).batches(&order, &lengths);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn a_row_is_its_samples_end_to_end_padded_to_the_multiple() {
        let s = |ids: Vec<i64>| Sample {
            labels: ids.iter().map(|x| -x).collect(),
            input_ids: ids,
            doc_lens: Vec::new(),
        };
        let samples = [s(vec![1, 2, 3]), s(vec![4, 5])];
        let row = mp(8, 1).row(&samples, &[1, 0], 0);
        assert_eq!(row.input_ids, vec![4, 5, 1, 2, 3, 0, 0, 0]);
        assert_eq!(row.labels, vec![-4, -5, -1, -2, -3, -100, -100, -100]);
        assert_eq!(row.doc_lens, vec![2, 3]);
    }

    #[test]
    fn global_seed_draws_match_torch() {
        // torch 2.11: torch.manual_seed(42);
        // [int(torch.empty((), dtype=torch.int64).random_()) for _ in range(3)]
        let mut g = Mt19937::new(42);
        let got: Vec<u64> = (0..3).map(|_| draw_seed(&mut g)).collect();
        assert_eq!(
            got,
            [
                6_909_045_637_428_952_499,
                8_314_211_556_539_077_902,
                4_279_532_810_384_561_223
            ]
        );
        // and the sampler's generator keeps the low 32 bits of such a seed:
        // g = torch.Generator(); g.manual_seed(4203543404854310044); torch.randperm(10, generator=g)
        assert_eq!(
            torch_randperm(10, 4_203_543_404_854_310_044),
            vec![0, 8, 1, 7, 6, 4, 5, 9, 3, 2]
        );
    }
}
