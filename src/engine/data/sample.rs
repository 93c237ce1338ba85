//! The unit every data stage hands on: one tokenized training sequence.

/// One training sequence. `labels[i]` is the target *at* position i (unshifted; the loss
/// predicts labels[i+1] from position i); -100 = no loss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub input_ids: Vec<i64>,
    pub labels: Vec<i64>,
    /// A packed row ([`pack`](super::pack)): the lengths of the documents laid end to end in it (the rest of
    /// the row is padding). Empty for an ordinary sample.
    pub doc_lens: Vec<usize>,
}
