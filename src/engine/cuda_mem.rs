//! GPU memory readings that tch does not expose.
//!
//! Two sources, both found at run time with `dlsym` in the libraries libtorch already loaded
//! (nothing extra is linked, so the binary still runs on machines without CUDA):
//!
//! - **libtorch's CUDA caching allocator** — what `torch.cuda.max_memory_allocated()` and
//!   `max_memory_reserved()` read. `c10::GetAllocator(DeviceType::CUDA)` (exported by
//!   libc10.so) returns the registered `c10::DeviceAllocator`; its virtual
//!   `getDeviceStats(DeviceIndex)` returns a `DeviceStats` struct
//!   (c10/core/CachingDeviceAllocator.h). There is no C entry point, so the call is made
//!   through the vtable, as the C++ compiler would make it (Itanium ABI, x86-64):
//!   - vtable slots of `c10::Allocator` (c10/core/Allocator.h, libtorch 2.11): 0–1 the virtual
//!     destructor (complete, deleting), 2 `allocate`, 3 `is_simple_data_ptr`, 4 `raw_deleter`,
//!     5 `copy_data`; then `c10::DeviceAllocator`'s: 6 `initialized`, 7 `emptyCache`,
//!     8 `recordStream`, **9 `getDeviceStats`**, 10 `resetAccumulatedStats`, 11 `resetPeakStats`.
//!   - `DeviceStats` (976 bytes) is returned in memory: the caller passes the result address
//!     first, then `this`, then the `int8_t` device index.
//!   - Layout: 9 `StatArray`s (each 3 `Stat`s — aggregate, small pool, large pool — of 4
//!     int64: current, peak, allocated, freed), in the order allocation, segment, active,
//!     inactive_split, **allocated_bytes** (5th), **reserved_bytes** (6th), …
//!
//!   This depends on libtorch 2.11's class layout (tch 0.24 pins that version);
//!   `TUNEBRIDGE_NO_ALLOCATOR_STATS=1` turns it off.
//! - **The driver's view**: `cudaMemGetInfo` (libcudart, a dependency of libtorch_cpu), free
//!   and total bytes of the whole device. Used − used-before-the-run = what this process
//!   took: the allocator's reserved pool plus cuBLAS/cuDNN workspaces and kernels.

use std::ffi::{c_void, CString};

/// Bytes of libtorch's CUDA caching allocator on one device (aggregate pool).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct AllocatorStats {
    pub allocated_current: i64,
    pub allocated_peak: i64,
    pub reserved_current: i64,
    pub reserved_peak: i64,
}

fn symbol(name: &str) -> Option<*mut c_void> {
    let c = CString::new(name).ok()?;
    // SAFETY: dlsym on the global namespace with a valid C string.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// The CUDA caching allocator's statistics for `device`. Call only after something was
/// allocated on that device (the allocator sizes its per-device state on first use).
pub fn allocator_stats(device: usize) -> Option<AllocatorStats> {
    if std::env::var_os("TUNEBRIDGE_NO_ALLOCATOR_STATS").is_some() {
        return None;
    }
    const DEVICE_TYPE_CUDA: i8 = 1; // c10::DeviceType::CUDA
    const GET_DEVICE_STATS_SLOT: usize = 9;
    const I64_PER_STAT_ARRAY: usize = 3 * 4;
    const ALLOCATED_BYTES: usize = 4 * I64_PER_STAT_ARRAY;
    const RESERVED_BYTES: usize = 5 * I64_PER_STAT_ARRAY;
    type GetAllocator = unsafe extern "C" fn(*const i8) -> *mut c_void;
    type GetDeviceStats = unsafe extern "C" fn(*mut i64, *mut c_void, i8);
    let get = symbol("_ZN3c1012GetAllocatorERKNS_10DeviceTypeE")?;
    // SAFETY: the mangled name is `c10::GetAllocator(c10::DeviceType const&)`, which takes a
    // pointer to the 1-byte enum and returns `c10::Allocator*`.
    let allocator = unsafe {
        let get: GetAllocator = std::mem::transmute(get);
        get(&DEVICE_TYPE_CUDA)
    };
    if allocator.is_null() {
        return None;
    }
    // 4 KiB of zeros ≥ sizeof(DeviceStats); a layout mismatch reads zeros, not garbage.
    let mut stats = vec![0i64; 512];
    // SAFETY: the object's first word is its vtable pointer; slot 9 is `getDeviceStats` (see
    // the module docs), called with (result address, this, device index).
    unsafe {
        let vtable = *(allocator as *const *const usize);
        let f: GetDeviceStats = std::mem::transmute(*vtable.add(GET_DEVICE_STATS_SLOT));
        f(stats.as_mut_ptr(), allocator, device as i8);
    }
    let s = AllocatorStats {
        allocated_current: stats[ALLOCATED_BYTES],
        allocated_peak: stats[ALLOCATED_BYTES + 1],
        reserved_current: stats[RESERVED_BYTES],
        reserved_peak: stats[RESERVED_BYTES + 1],
    };
    let plausible = s.allocated_peak > 0
        && s.allocated_current <= s.allocated_peak
        && s.reserved_current <= s.reserved_peak
        && s.allocated_peak <= s.reserved_peak;
    plausible.then_some(s)
}

/// libtorch's CUDA caching allocator, or `None` when it cannot be reached.
fn cuda_allocator() -> Option<*mut c_void> {
    if std::env::var_os("TUNEBRIDGE_NO_ALLOCATOR_STATS").is_some() {
        return None;
    }
    const DEVICE_TYPE_CUDA: i8 = 1; // c10::DeviceType::CUDA
    type GetAllocator = unsafe extern "C" fn(*const i8) -> *mut c_void;
    let get = symbol("_ZN3c1012GetAllocatorERKNS_10DeviceTypeE")?;
    // SAFETY: see `allocator_stats`.
    let allocator = unsafe {
        let get: GetAllocator = std::mem::transmute(get);
        get(&DEVICE_TYPE_CUDA)
    };
    (!allocator.is_null()).then_some(allocator)
}

/// `resetPeakStats(device)` (vtable slot 11): the peaks restart from the current values, so a
/// benchmark can measure its steps without its setup.
pub fn reset_peak(device: usize) {
    const RESET_PEAK_STATS_SLOT: usize = 11;
    type ResetPeak = unsafe extern "C" fn(*mut c_void, i8);
    if let Some(a) = cuda_allocator() {
        // SAFETY: slot 11 of `c10::DeviceAllocator` is `void resetPeakStats(DeviceIndex)`.
        unsafe {
            let vtable = *(a as *const *const usize);
            let f: ResetPeak = std::mem::transmute(*vtable.add(RESET_PEAK_STATS_SLOT));
            f(a, device as i8);
        }
    }
}

/// `emptyCache({0, 0})` (vtable slot 7): give the cached free blocks back to the driver.
pub fn empty_cache() {
    const EMPTY_CACHE_SLOT: usize = 7;
    // MempoolId_t = std::pair<u64, u64>, trivially copyable: passed in two registers.
    type EmptyCache = unsafe extern "C" fn(*mut c_void, u64, u64);
    if let Some(a) = cuda_allocator() {
        // SAFETY: slot 7 of `c10::DeviceAllocator` is `void emptyCache(MempoolId_t)`.
        unsafe {
            let vtable = *(a as *const *const usize);
            let f: EmptyCache = std::mem::transmute(*vtable.add(EMPTY_CACHE_SLOT));
            f(a, 0, 0);
        }
    }
}

/// (free, total) bytes of the current CUDA device, as the driver reports them.
pub fn device_memory() -> Option<(u64, u64)> {
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> i32;
    let f = symbol("cudaMemGetInfo")?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: `cudaError_t cudaMemGetInfo(size_t* free, size_t* total)`.
    let rc = unsafe {
        let f: MemGetInfo = std::mem::transmute(f);
        f(&mut free, &mut total)
    };
    (rc == 0).then_some((free as u64, total as u64))
}
