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
//! Layout: [`model`] (the Llama family in one file), [`lora`], [`data`] (tokenizer, prompt
//! formats, sample order, collation), [`optim`] (AdamW, clipping), [`schedule`], [`train`]
//! (the recipe: setup → train → save), [`io`] (safetensors), [`checkpoint`], [`quant`] (NF4),
//! [`hub`] (the local Hugging Face cache), [`mod@bench`].
//!
//! Numerics follow PyTorch because the engine is libtorch: the same kernels, and
//! `tch::manual_seed` drives the same CPU generator as `torch.manual_seed`. Memory:
//! [`recompute`] (layer-wise activation recomputation, chunked lm_head + cross-entropy).
//! Left out for now: Axolotl multipack and TRL packing (TorchTune packing is in), multi-GPU,
//! CPU offload of saved activations, fused kernels.

pub mod bench;
pub mod checkpoint;
pub mod cuda_mem;
pub mod data;
pub mod error;
pub mod hub;
pub mod io;
pub mod lora;
pub mod model;
pub mod optim;
pub mod quant;
pub mod recompute;
pub mod schedule;
pub mod train;

pub use error::{EngineError, Result};
pub use train::{run, RunOptions, RunSummary};

use crate::ir::{LrReported, Origin, Resolved};
use crate::translate::Framework;

/// Whose semantics a run follows where the frameworks differ and the IR does not (yet) spell
/// the difference out: prompt framing and tokenization, the sample-order pipeline, the token
/// count of TorchTune's loss normalisation, the last partial accumulation window, and which
/// parameters get weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// TorchTune 0.6.1 recipes.
    TorchTune,
    /// Axolotl (HF Trainer + PEFT, Axolotl's own data pipeline).
    Axolotl,
    /// Unsloth notebooks (HF Trainer/TRL SFTTrainer + PEFT, TRL's data pipeline).
    Unsloth,
}

impl Flavour {
    pub fn from_framework(fw: Framework) -> Option<Flavour> {
        match fw {
            Framework::Torchtune => Some(Flavour::TorchTune),
            Framework::Axolotl => Some(Flavour::Axolotl),
            Framework::Unsloth => Some(Flavour::Unsloth),
            Framework::Ir => None,
        }
    }

    pub fn parse(name: &str) -> Option<Flavour> {
        match name {
            "torchtune" => Some(Flavour::TorchTune),
            "axolotl" => Some(Flavour::Axolotl),
            "unsloth" => Some(Flavour::Unsloth),
            _ => None,
        }
    }

    /// The flavour of a spec read from `run.toml`: the framework its provenance names most
    /// often (a ported spec records whose defaults it took), else TorchTune when the LR is
    /// logged after the scheduler step, else Axolotl.
    pub fn of_spec(resolved: &Resolved) -> Flavour {
        let mut counts = [0usize; 3];
        for origin in resolved.provenance.0.values() {
            if let Origin::Default { framework, .. } = origin {
                if let Some(f) = Flavour::parse(framework) {
                    counts[f as usize] += 1;
                }
            }
        }
        let best = counts.iter().enumerate().max_by_key(|(_, c)| **c);
        match best {
            Some((i, &c)) if c > 0 => [Flavour::TorchTune, Flavour::Axolotl, Flavour::Unsloth][i],
            _ if resolved.spec.logging.lr_reported == LrReported::Next => Flavour::TorchTune,
            _ => Flavour::Axolotl,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavour::TorchTune => "torchtune",
            Flavour::Axolotl => "axolotl",
            Flavour::Unsloth => "unsloth",
        }
    }
}

/// The libtorch device for a parsed `--device`; for CUDA, make sure libtorch's CUDA backend
/// is loaded and the GPU exists.
pub fn resolve_device(device: crate::device::Device) -> Result<tch::Device> {
    let index = match device {
        crate::device::Device::Cpu => return Ok(tch::Device::Cpu),
        crate::device::Device::Cuda(n) => n,
    };
    load_cuda_backend()?;
    let n = tch::Cuda::device_count();
    if (index as i64) < n {
        Ok(tch::Device::Cuda(index))
    } else {
        Err(EngineError::unsupported(
            "--device",
            device,
            format!("libtorch sees {n} CUDA device(s)"),
        ))
    }
}

/// The binary links libtorch's CPU libraries only (rustc's `--as-needed` drops
/// `libtorch_cuda.so`, whose backend registers itself from static initialisers; see
/// docs/ENGINE-BUILD.md, section 3). Loading it with `RTLD_GLOBAL` registers the CUDA backend, so one binary
/// runs on machines with and without GPUs. `TUNEBRIDGE_LIBTORCH_CUDA` names the file; by
/// default the loader's search path (`LD_LIBRARY_PATH` = torch/lib) finds it.
fn load_cuda_backend() -> Result<()> {
    // tch maps a C++ exception to -1, which `Cuda::is_available()` reads as true: count instead.
    // No CUDA query may come before the dlopen: libtorch caches its CUDA hooks on first use.
    let usable = || tch::Cuda::device_count() > 0;
    let name =
        std::env::var("TUNEBRIDGE_LIBTORCH_CUDA").unwrap_or_else(|_| "libtorch_cuda.so".into());
    let c_name = std::ffi::CString::new(name.clone()).map_err(|_| {
        EngineError::unsupported("TUNEBRIDGE_LIBTORCH_CUDA", &name, "contains a NUL byte")
    })?;
    // SAFETY: dlopen with a valid C string; the handle is kept for the life of the process.
    let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() && !usable() {
        // SAFETY: dlerror returns a thread-local C string or null.
        let why = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(EngineError::unsupported(
            "--device",
            "cuda",
            format!(
                "cannot load {name}: {why} (put torch/lib and the CUDA libs on LD_LIBRARY_PATH)"
            ),
        ));
    }
    if !usable() {
        return Err(EngineError::unsupported(
            "--device",
            "cuda",
            format!("{name} loaded but libtorch reports no usable CUDA device"),
        ));
    }
    Ok(())
}
