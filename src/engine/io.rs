//! Weights on disk: safetensors files (single or sharded with an index), read through a
//! memory map into libtorch tensors, and written back from them.
//!
//! tch's own `read_safetensors` reads whole files into RAM with an old safetensors crate; here
//! each file is mapped once and each tensor copied straight from the map into a CPU tensor.
//! Left out: pickled `.bin` checkpoints (never executed, never read) and GGUF.

use super::error::{EngineError, Result};
use indexmap::IndexMap;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Map a safetensors dtype to a libtorch kind.
fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::BOOL => Kind::Bool,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        _ => return None,
    })
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Bool => Dtype::BOOL,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Int16 => Dtype::I16,
        Kind::Int => Dtype::I32,
        Kind::Int64 => Dtype::I64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        _ => return None,
    })
}

/// Read every tensor of one safetensors file into CPU tensors, in file order.
pub fn read_safetensors(path: &Path) -> Result<IndexMap<String, Tensor>> {
    let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    // SAFETY: the map is read-only and dropped before this function returns; the file is
    // not expected to change while a run starts (same contract as PyTorch's safe_open).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| EngineError::io(path, e))?;
    let st = SafeTensors::deserialize(&map)
        .map_err(|e| EngineError::bad_file(path, format!("not a safetensors file: {e}")))?;
    let mut entries: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
    // Keep the header order stable: by data offset, as the writer laid them out.
    entries.sort_by_key(|(_, v)| v.data().as_ptr() as usize);
    let mut out = IndexMap::new();
    for (name, view) in entries {
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            EngineError::tensor(&name, format!("unsupported dtype {:?}", view.dtype()))
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| EngineError::tensor(&name, e.to_string()))?;
        out.insert(name, t);
    }
    Ok(out)
}

/// The weight files of a Hugging Face model folder: `model.safetensors`, or the shards listed
/// by `model.safetensors.index.json`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: IndexMap<String, String>,
        }
        let idx: Index = super::error::read_json(&index)?;
        let mut files: Vec<PathBuf> = Vec::new();
        for f in idx.weight_map.values() {
            let p = dir.join(f);
            if !files.contains(&p) {
                files.push(p);
            }
        }
        return Ok(files);
    }
    Err(EngineError::bad_file(
        dir,
        "no model.safetensors or model.safetensors.index.json (pickled .bin weights are not read)",
    ))
}

/// All weights of a model folder, by checkpoint name.
pub fn read_model_weights(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let mut all = HashMap::new();
    for f in weight_files(dir)? {
        all.extend(read_safetensors(&f)?);
    }
    Ok(all)
}

/// A CPU copy of a tensor, laid out for the safetensors writer.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_host(name: &str, t: &Tensor) -> Result<HostTensor> {
    let t = t.detach().to_device(tch::Device::Cpu).contiguous();
    let kind = t.kind();
    let dtype = dtype_of(kind)
        .ok_or_else(|| EngineError::tensor(name, format!("cannot save dtype {kind:?}")))?;
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
    t.f_copy_data_u8(&mut bytes, numel)
        .map_err(|e| EngineError::tensor(name, e.to_string()))?;
    Ok(HostTensor {
        dtype,
        shape: t.size().iter().map(|&d| d as usize).collect(),
        bytes,
    })
}

/// Write tensors to a safetensors file with `{"format": "pt"}` metadata, as
/// `safetensors.torch.save_file` does (PEFT and transformers check for it).
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut host = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        host.push((name.clone(), to_host(name, t)?));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(
        host.iter().map(|(n, h)| (n.as_str(), h)),
        Some(meta),
        path,
    )
    .map_err(|e| EngineError::bad_file(path, format!("cannot write safetensors: {e}")))
}
