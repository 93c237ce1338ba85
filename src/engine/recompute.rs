//! Forward and backward of one training micro-batch, with layer-wise activation recomputation
//! and a chunked `lm_head` + cross-entropy.
//!
//! libtorch keeps every tensor a backward needs until the backward runs. For an 8B model at
//! T = 2048 that is ~30 activations of (B, T, C) or (B, T, I) per layer, and the (B·T, V)
//! logits twice (bf16, then fp32 for the loss). Two cuts, with autograd alone (tch has no
//! custom autograd function and no checkpoint API):
//!
//! - **Recomputation** (`memory.gradient_checkpointing = on | offload`): the forward runs each
//!   decoder layer under `no_grad` and keeps only its input xᵢ (B, T, C). The backward walks
//!   the layers in reverse: re-run layer i with grad from a leaf copy of xᵢ, then inject the
//!   upstream gradient gᵢ₊₁ = ∂loss/∂outᵢ as a vector-Jacobian product,
//!
//!   backward( Σ outᵢ ⊙ gᵢ₊₁ )  ⇒  ∂/∂outᵢ = gᵢ₊₁ exactly (the sum's backward is ones, ·g is exact),
//!
//!   which accumulates the layer's parameter grads (`+=` into `.grad`) and leaves
//!   gᵢ = ∂loss/∂xᵢ in the leaf's `.grad`. Cost: one more forward per layer (hardware FLOPs
//!   ×≈4/3); memory: L·(B, T, C) inputs + one layer's activations. LoRA dropout masks are
//!   recorded in the first pass and replayed (see [`Dropout`]), as `torch.utils.checkpoint`
//!   restores the RNG state. `offload` is run as `on`: the inputs stay on the device.
//! - **Chunked head**: the final norm, `lm_head` and the fp32 cross-entropy run over row
//!   chunks of the flattened (B·T, C) hidden states, each chunk's backward right after its
//!   forward, so at most `CE_CHUNK_ELEMENTS` logits exist at once. The loss is the sum of the
//!   chunks' scaled sums (fp32; one chunk = the unchunked sum, bit for bit).
//!
//! When neither cut applies (no recomputation, logits within one chunk) the micro-batch runs
//! as one graph, exactly as before these cuts existed.
//!
//! Left out: CPU offload of the saved inputs, fused kernels, recomputing only some layers.

use super::error::Result;
use super::layers::Dropout;
use super::model::mask::DocLayout;
use super::model::ModelForCausalLM;
use std::cell::RefCell;
use std::collections::VecDeque;
use tch::{Kind, Reduction, Tensor};

/// Where a decoder layer's frozen weights are between its uses. The layer-wise paths below
/// ask for layer i right before running it, naming the layer that runs next so its weights
/// can be on the way (prefetch), and give it back right after; a full-shard run
/// (`train/full_shard.rs`) gathers and frees them there. [`Resident`]: always in place.
pub trait LayerResidency {
    /// Whether the weights come and go (then every pass goes layer by layer).
    fn is_sharded(&self) -> bool;
    /// Layer `i`'s weights in place; start fetching `next`'s.
    fn acquire(&mut self, i: usize, next: Option<usize>) -> Result<()>;
    /// Layer `i` is done for this pass.
    fn release(&mut self, i: usize) -> Result<()>;
}

/// Every weight stays where the model loaded it.
pub struct Resident;

impl LayerResidency for Resident {
    fn is_sharded(&self) -> bool {
        false
    }
    fn acquire(&mut self, _: usize, _: Option<usize>) -> Result<()> {
        Ok(())
    }
    fn release(&mut self, _: usize) -> Result<()> {
        Ok(())
    }
}

/// The layer after `i` in a pass of `n` layers going forward (`up`) or backward.
fn next_layer(i: usize, n: usize, up: bool) -> Option<usize> {
    match up {
        true => (i + 1 < n).then_some(i + 1),
        false => i.checked_sub(1),
    }
}

/// Most logits (rows × V) one head chunk materialises: 2²⁷ = 128 Mi elements, 512 MiB in fp32.
/// Llama 3 (V = 128256): 1046 rows a chunk.
pub const CE_CHUNK_ELEMENTS: i64 = 1 << 27;

/// How a micro-batch's loss is formed from its fp32 cross-entropy sum (the loss
/// normalisation), applied to each chunk's sum; the gradient flows through it.
pub type ScaleFn<'a> = dyn Fn(Tensor) -> Tensor + 'a;

/// Forward and backward of one micro-batch: input_ids (B, T) (packed rows laid out as `docs`),
/// shifted labels (B, T) with −100 where untrained. Accumulates into the trainable parameters' `.grad` and returns the scaled
/// loss (detached, fp32 scalar).
/// Sharded weights (`res`) go layer by layer as recomputation does.
pub fn forward_backward(
    model: &ModelForCausalLM,
    input_ids: &Tensor,
    docs: Option<&DocLayout>,
    labels: &Tensor,
    recompute: bool,
    scale: &ScaleFn,
    res: &mut dyn LayerResidency,
) -> Result<Tensor> {
    forward_backward_chunked(
        model,
        input_ids,
        docs,
        labels,
        recompute,
        scale,
        CE_CHUNK_ELEMENTS,
        res,
    )
}

/// [`forward_backward`] with the chunk budget given (tests use small ones).
#[allow(clippy::too_many_arguments)]
pub fn forward_backward_chunked(
    model: &ModelForCausalLM,
    input_ids: &Tensor,
    docs: Option<&DocLayout>,
    labels: &Tensor,
    recompute: bool,
    scale: &ScaleFn,
    chunk_elements: i64,
    res: &mut dyn LayerResidency,
) -> Result<Tensor> {
    // a layer's weights exist only while it runs: recompute it for its backward
    let recompute = recompute || res.is_sharded();
    let (b, t) = input_ids.size2()?;
    let v = model.config.vocab_size;
    let rows = b * t;
    let chunk_rows = (chunk_elements / v).max(1);
    if !recompute && rows <= chunk_rows {
        // One graph: logits (B, T, V) → fp32 → Σ CE.
        let logits = model.forward(input_ids, docs, true); // (B, T, V)
        let loss = scale(ce_sum(&logits, labels, rows));
        loss.f_backward()?;
        return Ok(loss.detach());
    }
    let (top, saved) = if recompute {
        let (top, saved) = decoder_forward_saving_inputs(model, input_ids, docs, res)?;
        (top, Some(saved))
    } else {
        (model.decoder(input_ids, docs, &Dropout::Draw), None)
    };
    // Head: leaf = last layer's output; its grad is ∂loss/∂out_{L−1}.
    let leaf = top.detach().set_requires_grad(true); // (B, T, C)
    let (loss, grad) = head_forward_backward(model, &leaf, labels, scale, chunk_rows)?;
    match saved {
        Some(inputs) => decoder_backward_recompute(model, input_ids, docs, inputs, grad, res)?,
        None => inject(&top, &grad)?,
    }
    Ok(loss)
}

/// Σ cross-entropy in fp32 over `rows` positions: logits (…, V), labels (…) with −100 ignored.
fn ce_sum(logits: &Tensor, labels: &Tensor, rows: i64) -> Tensor {
    let v = logits.size()[logits.dim() - 1];
    logits
        .to_kind(Kind::Float)
        .view([rows, v])
        .cross_entropy_loss::<Tensor>(&labels.view([rows]), None, Reduction::Sum, -100, 0.0)
}

/// backward(Σ out ⊙ g): pushes the upstream gradient g = ∂loss/∂out into out's graph.
fn inject(out: &Tensor, grad: &Tensor) -> Result<()> {
    (out * grad).sum(out.kind()).f_backward()?;
    Ok(())
}

/// What the recomputed backward needs of each layer: its input xᵢ (B, T, C) and the LoRA
/// dropout masks its first pass drew.
struct SavedLayer {
    input: Tensor,
    masks: Vec<Tensor>,
}

/// Embedding and every layer under `no_grad`: returns the last layer's output and each
/// layer's input.
fn decoder_forward_saving_inputs(
    model: &ModelForCausalLM,
    input_ids: &Tensor,
    docs: Option<&DocLayout>,
    res: &mut dyn LayerResidency,
) -> Result<(Tensor, Vec<SavedLayer>)> {
    let _guard = tch::no_grad_guard();
    let n = model.num_layers();
    let mut saved = Vec::with_capacity(n);
    let mut xs = model.embed(input_ids); // (B, T, C)
    for i in 0..n {
        let masks = RefCell::new(Vec::new());
        res.acquire(i, next_layer(i, n, true))?;
        let out = model.layer_forward(i, &xs, docs, &Dropout::Record(&masks)); // (B, T, C)
        res.release(i)?;
        saved.push(SavedLayer {
            input: xs,
            masks: masks.into_inner(),
        });
        xs = out;
    }
    Ok((xs, saved))
}

/// Logits (B, T, V) without gradients or dropout, layer by layer through `res` (evaluation
/// of a sharded model; the same ops as [`ModelForCausalLM::forward`]).
pub fn forward_logits(
    model: &ModelForCausalLM,
    input_ids: &Tensor,
    docs: Option<&DocLayout>,
    res: &mut dyn LayerResidency,
) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let n = model.num_layers();
    let mut xs = model.embed(input_ids); // (B, T, C)
    for i in 0..n {
        res.acquire(i, next_layer(i, n, true))?;
        xs = model.layer_forward(i, &xs, docs, &Dropout::Off);
        res.release(i)?;
    }
    Ok(model.lm_head_with(&model.final_norm(&xs), &Dropout::Off))
}

/// The decoder's backward by recomputation, last layer first. `grad` = ∂loss/∂(last output).
fn decoder_backward_recompute(
    model: &ModelForCausalLM,
    input_ids: &Tensor,
    docs: Option<&DocLayout>,
    mut saved: Vec<SavedLayer>,
    mut grad: Tensor,
    res: &mut dyn LayerResidency,
) -> Result<()> {
    let embed_trains = model.embed_requires_grad();
    let n = saved.len();
    for i in (0..n).rev() {
        let SavedLayer { input, masks } = saved.pop().expect("one saved input per layer");
        // Layer 0's input gradient is needed only when the embedding trains.
        let needs_input_grad = i > 0 || embed_trains;
        let x = input.detach().set_requires_grad(needs_input_grad); // (B, T, C)
        drop(input);
        let replay = RefCell::new(VecDeque::from(masks));
        res.acquire(i, next_layer(i, n, false))?;
        let out = model.layer_forward(i, &x, docs, &Dropout::Replay(&replay)); // (B, T, C)
        inject(&out, &grad)?;
        drop(out);
        res.release(i)?;
        if needs_input_grad {
            grad = x.grad(); // ∂loss/∂xᵢ
        }
    }
    if embed_trains {
        let e = model.embed(input_ids); // (B, T, C)
        inject(&e, &grad)?;
    }
    Ok(())
}

/// Final norm + `lm_head` + Σ CE over row chunks of `leaf` (B, T, C), each chunk backpropagated
/// at once. Returns the loss (Σ of the chunks' scaled sums) and ∂loss/∂leaf (B, T, C).
fn head_forward_backward(
    model: &ModelForCausalLM,
    leaf: &Tensor,
    labels: &Tensor,
    scale: &ScaleFn,
    chunk_rows: i64,
) -> Result<(Tensor, Tensor)> {
    let (b, t, c) = leaf.size3()?;
    let rows = b * t;
    if rows <= chunk_rows {
        let logits = model.lm_head_with(&model.final_norm(leaf), &Dropout::Draw); // (B, T, V)
        let loss = scale(ce_sum(&logits, labels, rows));
        loss.f_backward()?;
        return Ok((loss.detach(), leaf.grad()));
    }
    let flat = leaf.detach().view([rows, c]); // (B·T, C)
    let flat_labels = labels.view([rows]); // (B·T)
    let mut loss = Tensor::zeros([], (Kind::Float, leaf.device()));
    let mut grads = Vec::new();
    let mut start = 0;
    while start < rows {
        let n = chunk_rows.min(rows - start);
        let part = flat.narrow(0, start, n).detach().set_requires_grad(true); // (n, C)
        let logits = model.lm_head_with(&model.final_norm(&part), &Dropout::Draw); // (n, V)
        let chunk_loss = scale(ce_sum(&logits, &flat_labels.narrow(0, start, n), n));
        chunk_loss.f_backward()?;
        loss += chunk_loss.detach();
        grads.push(part.grad());
        start += n;
    }
    Ok((loss, Tensor::cat(&grads, 0).view([b, t, c])))
}
