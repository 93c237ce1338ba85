//! The device a run asks for (`--device`), checked against what libtorch sees.

use super::error::{EngineError, Result};

/// The libtorch device for a parsed `--device`; for CUDA, make sure libtorch's CUDA backend
/// is loaded and the GPU exists.
pub fn resolve_device(
    device: crate::device::Device,
    local_rank: Option<usize>,
) -> Result<tch::Device> {
    use crate::device::Device;
    let index = match (device, local_rank) {
        (Device::Cpu, _) => return Ok(tch::Device::Cpu),
        (Device::CudaLocal, rank) => rank.unwrap_or(0),
        (Device::Cuda(n), None) => n,
        (Device::Cuda(_), Some(_)) => {
            return Err(EngineError::unsupported(
                "--device",
                device,
                "a fixed device would put every rank of a multi-process run on one GPU; use \
                 --device cuda (each rank takes the GPU of its LOCAL_RANK; choose the GPUs \
                 with CUDA_VISIBLE_DEVICES)",
            ))
        }
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
