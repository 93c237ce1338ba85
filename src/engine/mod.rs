//! The native training engine: runs a [`RunSpec`](crate::ir::RunSpec) on libtorch (through `tch`) the way the
//! framework it came from would, so that its loss curve and adapter can be compared with the
//! real framework's.
//!
//! Shape letters used in every comment of this module tree:
//!
//! | letter | meaning |
//! |---|---|
//! | B | micro-batch size (sequences) |
//! | T | sequence length of the padded micro-batch |
//! | C | hidden size (`hidden_size`) |
//! | H | attention (query) heads |
//! | KV | key/value heads (GQA: H is a multiple of KV) |
//! | D | head dimension |
//! | I | MLP intermediate size |
//! | V | vocabulary size |
//! | L | decoder layers |
//! | R | LoRA rank |
//!
//! Layout: [`model`] (the Llama family in one file), [`layers`] (the linear layer and LoRA
//! dropout the model and [`lora`] share), [`lora`], [`dora`] (DoRA's magnitude on top of LoRA), [`data`] (tokenizer, prompt formats, sample
//! order, collation), [`optim`] (AdamW, bitsandbytes AdamW, clipping), [`schedule`], [`train`] (the recipe: setup →
//! train → save), [`io`] (safetensors), [`checkpoint`], [`quant`] (NF4, LLM.int8), [`hub`] (the local
//! Hugging Face cache), [`flavour`] (whose semantics a run follows), [`support`] (every feature
//! check on a spec, shared by a run and `run --check`), [`device`], [`bench`](mod@bench).
//! This file only declares and re-exports: children import from the module that defines an
//! item, never through here.
//!
//! Numerics follow PyTorch because the engine is libtorch: the same kernels, and
//! `tch::manual_seed` drives the same CPU generator as `torch.manual_seed`. Memory:
//! [`recompute`] (layer-wise activation recomputation, chunked lm_head + cross-entropy).
//! Left out for now: Axolotl multipack (TorchTune and TRL bfd packing are in), multi-GPU,
//! CPU offload of saved activations, fused kernels.

pub mod bench;
pub mod checkpoint;
pub mod cuda_mem;
pub mod data;
pub mod device;
pub mod dist;
pub mod dora;
pub mod error;
pub mod flavour;
pub mod hub;
pub mod io;
pub mod layers;
pub mod lora;
pub mod model;
pub mod optim;
pub mod quant;
pub mod recompute;
pub mod schedule;
pub mod support;
pub mod train;

pub use device::resolve_device;
pub use error::{EngineError, Result};
pub use flavour::Flavour;
pub use train::{run, BatchOverRanks, RunOptions, RunSummary};
