//! Attention masks: causal, sliding-window, and the per-row document layout of packed batches.
//!
//! Every mask is bool with `true` = masked (the key is not seen), as `masked_fill` takes it.

use tch::{Kind, Tensor};

/// Packed rows (TorchTune `PackedDataset`): per row, documents laid end to end. Positions
/// restart at 0 in each document and attention is causal within it (`packed_block_causal_mask`);
/// the rest of a row after its documents is one more document (TorchTune's padding block).
pub struct DocLayout {
    pub(super) positions: Tensor, // (B, T) int64
    pub(super) mask: Tensor,      // (B, 1, T, T) bool, true = masked
}

impl DocLayout {
    /// `doc_lens[b]` = the document lengths of row b (summing to at most `t`).
    pub fn new(doc_lens: &[Vec<usize>], t: i64, device: tch::Device) -> Self {
        let b = doc_lens.len() as i64;
        let (mut ids, mut pos) = (Vec::new(), Vec::new());
        for row in doc_lens {
            let mut used = 0i64;
            let tail = t - row.iter().sum::<usize>() as i64;
            for (d, &len) in row
                .iter()
                .chain(std::iter::once(&(tail.max(0) as usize)))
                .enumerate()
            {
                for p in 0..len as i64 {
                    ids.push(d as i64);
                    pos.push(p);
                }
                used += len as i64;
            }
            assert_eq!(used, t, "documents of a packed row fill it");
        }
        let to = |v: Vec<i64>| Tensor::from_slice(&v).view([b, t]).to_device(device);
        let ids = to(ids);
        let other_doc = ids.unsqueeze(2).ne_tensor(&ids.unsqueeze(1)); // (B, T, T)
        let mask = other_doc.logical_or(&causal_mask(t, device)).unsqueeze(1); // (B, 1, T, T)
        DocLayout {
            positions: to(pos),
            mask,
        }
    }
}

/// (T, T) bool, true where query i must not see key j (j > i).
pub(super) fn causal_mask(t: i64, device: tch::Device) -> Tensor {
    Tensor::ones([t, t], (Kind::Bool, device)).triu(1)
}

/// (T, T) bool, true where masked: the future, and keys more than `w − 1` positions back.
pub(super) fn sliding_window_mask(t: i64, w: i64, device: tch::Device) -> Tensor {
    let future = Tensor::ones([t, t], (Kind::Bool, device)).triu(1);
    let too_old = Tensor::ones([t, t], (Kind::Bool, device)).tril(-w);
    future.logical_or(&too_old)
}
