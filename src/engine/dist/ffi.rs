//! The C interface of `native/c10d/shim.cpp` (built by `build.rs`): libtorch's own c10d —
//! `TCPStore` rendezvous under a `PrefixStore`, `ProcessGroupGloo`. Tensors cross as tch's
//! `at::Tensor*`. Every fallible call returns null on success or a `malloc`'d error message,
//! which `take_error` turns into a `String` and frees.

use std::ffi::{c_char, c_int, c_void, CStr};
use tch::Tensor;

/// Opaque handles owned by the shim (`new` / `free` pairs).
#[repr(C)]
pub struct StoreHandle {
    _private: [u8; 0],
}
#[repr(C)]
pub struct GroupHandle {
    _private: [u8; 0],
}
#[repr(C)]
pub struct WorkHandle {
    _private: [u8; 0],
}

/// `at::Tensor*`, as tch's `Tensor::as_mut_ptr` gives it.
pub type TensorPtr = *mut c_void;

/// `tb_c10d_nccl_new` of `libtb_c10d_nccl.so` (native/c10d/nccl.cpp), found with `dlsym`
/// because that library is loaded at run time, on CUDA ranks only.
pub type NcclNew = unsafe extern "C" fn(
    s: *mut StoreHandle,
    rank: c_int,
    size: c_int,
    timeout_ms: i64,
    out: *mut *mut GroupHandle,
) -> *mut c_char;

extern "C" {
    pub fn tb_c10d_free_error(e: *mut c_char);
    pub fn tb_c10d_store_new(
        host: *const c_char,
        port: u16,
        world_size: c_int,
        is_server: bool,
        timeout_ms: i64,
        prefix: *const c_char,
        out: *mut *mut StoreHandle,
    ) -> *mut c_char;
    pub fn tb_c10d_store_free(s: *mut StoreHandle);
    pub fn tb_c10d_store_set(
        s: *mut StoreHandle,
        key: *const c_char,
        data: *const u8,
        len: usize,
    ) -> *mut c_char;
    pub fn tb_c10d_store_get(
        s: *mut StoreHandle,
        key: *const c_char,
        data: *mut u8,
        cap: usize,
        len: *mut usize,
    ) -> *mut c_char;
    pub fn tb_c10d_store_add(
        s: *mut StoreHandle,
        key: *const c_char,
        delta: i64,
        value: *mut i64,
    ) -> *mut c_char;
    pub fn tb_c10d_gloo_new(
        s: *mut StoreHandle,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        out: *mut *mut GroupHandle,
    ) -> *mut c_char;
    pub fn tb_c10d_group_free(g: *mut GroupHandle);
    pub fn tb_c10d_allreduce(
        g: *mut GroupHandle,
        t: TensorPtr,
        op: c_int,
        out: *mut *mut WorkHandle,
    ) -> *mut c_char;
    pub fn tb_c10d_broadcast(
        g: *mut GroupHandle,
        t: TensorPtr,
        root: c_int,
        out: *mut *mut WorkHandle,
    ) -> *mut c_char;
    pub fn tb_c10d_all_gather(
        g: *mut GroupHandle,
        output: TensorPtr,
        input: TensorPtr,
        out: *mut *mut WorkHandle,
    ) -> *mut c_char;
    pub fn tb_c10d_reduce_scatter(
        g: *mut GroupHandle,
        output: TensorPtr,
        input: TensorPtr,
        op: c_int,
        out: *mut *mut WorkHandle,
    ) -> *mut c_char;
    pub fn tb_c10d_barrier(g: *mut GroupHandle, out: *mut *mut WorkHandle) -> *mut c_char;
    pub fn tb_c10d_work_wait(w: *mut WorkHandle) -> *mut c_char;
    pub fn tb_c10d_work_free(w: *mut WorkHandle);
}

/// `Err(message)` for a non-null error from the shim (freed here), `Ok` for null.
pub(crate) fn take_error(e: *mut c_char) -> Result<(), String> {
    if e.is_null() {
        return Ok(());
    }
    // SAFETY: the shim returns a NUL-terminated string from malloc, ours to free once.
    let msg = unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned();
    unsafe { tb_c10d_free_error(e) };
    Err(msg)
}

/// The `at::Tensor*` behind a tch tensor, for the duration of one call.
pub fn tensor_ptr(t: &Tensor) -> TensorPtr {
    t.as_ptr() as TensorPtr
}
