//! Safe wrappers over libtorch's c10d through the shim ([`super::ffi`]): the TCPStore
//! rendezvous ([`Store`]) and a process group ([`ProcessGroup`]) with the collectives data and
//! sharded parallelism need. Collectives return a [`Work`] so a caller can overlap them with
//! compute and wait later, as torch's `async_op=True` does.

use super::ffi::{self, GroupHandle, StoreHandle, WorkHandle};
use std::ffi::CString;
use std::time::Duration;
use tch::Tensor;

/// A failed c10d call: what was being done, and libtorch's message.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct DistError {
    pub what: String,
    pub message: String,
}

fn check(what: impl FnOnce() -> String, e: *mut std::ffi::c_char) -> Result<(), DistError> {
    ffi::take_error(e).map_err(|message| DistError {
        what: what(),
        message,
    })
}

fn c_string(s: &str) -> CString {
    CString::new(s).expect("c10d names and keys hold no NUL")
}

/// A key-value store every rank reaches: libtorch's `TCPStore` at `host:port` (the server
/// lives in rank 0, or in torchrun's agent), seen through a `PrefixStore` so our keys cannot
/// collide with the agent's.
pub struct Store {
    raw: *mut StoreHandle,
}

// The C++ TCPStore serialises its own socket use; the handle may move between threads.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

impl Store {
    /// Connect to (and, with `is_server`, host) the store. Blocks until the server answers or
    /// `timeout` passes.
    pub fn connect(
        host: &str,
        port: u16,
        world_size: usize,
        is_server: bool,
        timeout: Duration,
        prefix: &str,
    ) -> Result<Store, DistError> {
        let (h, p) = (c_string(host), c_string(prefix));
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid C strings for the call; `raw` is written on success only.
        let e = unsafe {
            ffi::tb_c10d_store_new(
                h.as_ptr(),
                port,
                world_size as i32,
                is_server,
                timeout.as_millis() as i64,
                p.as_ptr(),
                &mut raw,
            )
        };
        check(|| format!("rendezvous at {host}:{port}"), e)?;
        Ok(Store { raw })
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), DistError> {
        let k = c_string(key);
        // SAFETY: `value` outlives the call, which copies it.
        let e =
            unsafe { ffi::tb_c10d_store_set(self.raw, k.as_ptr(), value.as_ptr(), value.len()) };
        check(|| format!("store set `{key}`"), e)
    }

    /// The value of `key`, waiting until some rank sets it (or the store's timeout).
    pub fn get(&self, key: &str) -> Result<Vec<u8>, DistError> {
        let k = c_string(key);
        let mut buf = vec![0u8; 256];
        loop {
            let mut len = 0usize;
            // SAFETY: the shim copies at most `buf.len()` bytes and reports the full length.
            let e = unsafe {
                ffi::tb_c10d_store_get(self.raw, k.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut len)
            };
            check(|| format!("store get `{key}`"), e)?;
            if len <= buf.len() {
                buf.truncate(len);
                return Ok(buf);
            }
            buf = vec![0u8; len];
        }
    }

    /// Atomically add `delta` to the integer at `key`; returns the new value.
    pub fn add(&self, key: &str, delta: i64) -> Result<i64, DistError> {
        let k = c_string(key);
        let mut value = 0i64;
        // SAFETY: plain values.
        let e = unsafe { ffi::tb_c10d_store_add(self.raw, k.as_ptr(), delta, &mut value) };
        check(|| format!("store add `{key}`"), e)?;
        Ok(value)
    }

    fn raw(&self) -> *mut StoreHandle {
        self.raw
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by tb_c10d_store_new, freed once.
        unsafe { ffi::tb_c10d_store_free(self.raw) }
    }
}

/// A reduction of [`ProcessGroup::all_reduce`] and [`ProcessGroup::reduce_scatter_into`]
/// (c10d `ReduceOp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Avg = 1,
    Max = 2,
}

/// The communication backend of a process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `ProcessGroupGloo`: CPU tensors over TCP (what torch uses for CPU ranks).
    Gloo,
    /// `ProcessGroupNCCL`: CUDA tensors (what torch uses for GPU ranks), from
    /// `libtb_c10d_nccl.so`.
    Nccl,
}

/// One collective in flight. [`Work::wait`] blocks until it is done; dropping it without
/// waiting lets it finish in the background (its tensors are kept alive by libtorch).
#[must_use = "a collective is only done once waited on"]
pub struct Work {
    raw: *mut WorkHandle,
    what: &'static str,
}

impl Work {
    pub fn wait(self) -> Result<(), DistError> {
        // SAFETY: a live handle; freed by Drop below.
        let e = unsafe { ffi::tb_c10d_work_wait(self.raw) };
        check(|| self.what.to_string(), e)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        // SAFETY: created by a collective call, freed once.
        unsafe { ffi::tb_c10d_work_free(self.raw) }
    }
}

/// The ranks of one job and the collectives between them (c10d `Backend`).
pub struct ProcessGroup {
    raw: *mut GroupHandle,
    rank: usize,
    size: usize,
    backend: Backend,
}

// c10d process groups are used from one thread at a time here, but may move between threads.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// A gloo group of `size` ranks meeting in `store`; blocks until every rank has joined.
    pub fn gloo(
        store: &Store,
        rank: usize,
        size: usize,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: a live store; `raw` is written on success only.
        let e = unsafe {
            ffi::tb_c10d_gloo_new(
                store.raw(),
                rank as i32,
                size as i32,
                timeout.as_millis() as i64,
                &mut raw,
            )
        };
        check(|| format!("gloo process group (rank {rank} of {size})"), e)?;
        Ok(ProcessGroup {
            raw,
            rank,
            size,
            backend: Backend::Gloo,
        })
    }

    /// An NCCL group of `size` ranks meeting in `store`, for CUDA tensors. Needs
    /// libtorch_cuda.so loaded (the engine does so for any CUDA device) and
    /// `libtb_c10d_nccl.so` (`nccl_shim`); the NCCL communicator itself is created on the
    /// first collective, on the device of its tensor.
    pub fn nccl(
        store: &Store,
        rank: usize,
        size: usize,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        let new = nccl_shim()?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: `new` is tb_c10d_nccl_new (dlsym'd by name, signature `ffi::NcclNew`); a live
        // store; `raw` is written on success only.
        let e = unsafe {
            new(
                store.raw(),
                rank as i32,
                size as i32,
                timeout.as_millis() as i64,
                &mut raw,
            )
        };
        check(|| format!("NCCL process group (rank {rank} of {size})"), e)?;
        Ok(ProcessGroup {
            raw,
            rank,
            size,
            backend: Backend::Nccl,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn work(
        &self,
        what: &'static str,
        call: impl FnOnce(*mut *mut WorkHandle) -> *mut std::ffi::c_char,
    ) -> Result<Work, DistError> {
        let mut raw = std::ptr::null_mut();
        check(|| what.to_string(), call(&mut raw))?;
        Ok(Work { raw, what })
    }

    /// In place: every rank's `t` becomes the reduction of all ranks' `t`.
    pub fn all_reduce(&self, t: &Tensor, op: ReduceOp) -> Result<Work, DistError> {
        // SAFETY: `t` is a live tensor; the shim takes its own reference.
        self.work("all_reduce", |out| unsafe {
            ffi::tb_c10d_allreduce(self.raw, ffi::tensor_ptr(t), op as i32, out)
        })
    }

    /// In place: every rank's `t` becomes rank `root`'s.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<Work, DistError> {
        // SAFETY: as above.
        self.work("broadcast", |out| unsafe {
            ffi::tb_c10d_broadcast(self.raw, ffi::tensor_ptr(t), root as i32, out)
        })
    }

    /// `output` (world · n elements, contiguous) gets rank r's `input` (n) at [r·n, (r+1)·n).
    pub fn all_gather_into(&self, output: &Tensor, input: &Tensor) -> Result<Work, DistError> {
        // SAFETY: as above.
        self.work("all_gather", |out| unsafe {
            ffi::tb_c10d_all_gather(
                self.raw,
                ffi::tensor_ptr(output),
                ffi::tensor_ptr(input),
                out,
            )
        })
    }

    /// `output` (n) gets the reduction over ranks of their `input` slice [r·n, (r+1)·n).
    pub fn reduce_scatter_into(
        &self,
        output: &Tensor,
        input: &Tensor,
        op: ReduceOp,
    ) -> Result<Work, DistError> {
        // SAFETY: as above.
        self.work("reduce_scatter", |out| unsafe {
            ffi::tb_c10d_reduce_scatter(
                self.raw,
                ffi::tensor_ptr(output),
                ffi::tensor_ptr(input),
                op as i32,
                out,
            )
        })
    }

    /// Block until every rank has reached this call.
    pub fn barrier(&self) -> Result<(), DistError> {
        // SAFETY: a live group.
        self.work("barrier", |out| unsafe {
            ffi::tb_c10d_barrier(self.raw, out)
        })?
        .wait()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by tb_c10d_gloo_new, freed once.
        unsafe { ffi::tb_c10d_group_free(self.raw) }
    }
}

/// Where `libtb_c10d_nccl.so` is looked for: `TUNEBRIDGE_NCCL_SHIM`, else beside the binary
/// (or one folder up, for test binaries in `target/<profile>/deps`).
fn nccl_shim_candidates() -> Vec<std::path::PathBuf> {
    const NAME: &str = "libtb_c10d_nccl.so";
    if let Some(p) = std::env::var_os("TUNEBRIDGE_NCCL_SHIM") {
        return vec![p.into()];
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.to_path_buf()));
    exe_dir
        .map(|d| vec![d.join(NAME), d.join("..").join(NAME)])
        .unwrap_or_default()
}

/// Load `libtb_c10d_nccl.so` once and return its constructor; the error says what was looked
/// for, where, and why it failed (a missing file, or libnccl.so.2 / libtorch_cuda.so not found).
fn nccl_shim() -> Result<ffi::NcclNew, DistError> {
    static LOADED: std::sync::OnceLock<Result<usize, String>> = std::sync::OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        let candidates = nccl_shim_candidates();
        let mut tried = Vec::new();
        for path in &candidates {
            if !path.is_file() {
                tried.push(format!("{}: no such file", path.display()));
                continue;
            }
            let c_path = CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| format!("{}: path holds a NUL byte", path.display()))?;
            // SAFETY: dlopen/dlsym with valid C strings; the handle lives for the process.
            unsafe {
                let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
                if handle.is_null() {
                    tried.push(format!("{}: {}", path.display(), dl_error()));
                    continue;
                }
                let sym = libc::dlsym(handle, c"tb_c10d_nccl_new".as_ptr());
                if sym.is_null() {
                    tried.push(format!("{}: {}", path.display(), dl_error()));
                    continue;
                }
                return Ok(sym as usize);
            }
        }
        Err(format!(
            "looked for libtb_c10d_nccl.so (TUNEBRIDGE_NCCL_SHIM, else beside the binary): {}. \
             Build it with TUNEBRIDGE_NCCL_INCLUDE set (docs/ENGINE-BUILD.md, \"NCCL\"); it needs \
             libtorch_cuda.so and libnccl.so.2 on LD_LIBRARY_PATH",
            tried.join("; ")
        ))
    });
    match loaded {
        // SAFETY: the address of tb_c10d_nccl_new, whose C signature is `ffi::NcclNew`.
        Ok(addr) => Ok(unsafe { std::mem::transmute::<usize, ffi::NcclNew>(*addr) }),
        Err(message) => Err(DistError {
            what: "NCCL for CUDA ranks".into(),
            message: message.clone(),
        }),
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns a thread-local C string or null.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown dlopen error".into()
        } else {
            std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A free TCP port on loopback (bind to 0, read it back, release it).
    pub(crate) fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Run `f(rank, group)` on `n` threads, one gloo rank each, and collect the results in
    /// rank order.
    fn on_ranks<T: Send + 'static>(
        n: usize,
        f: impl Fn(&ProcessGroup) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let port = free_port();
        let f = std::sync::Arc::new(f);
        let handles: Vec<_> = (0..n)
            .map(|rank| {
                let f = f.clone();
                std::thread::spawn(move || {
                    let t = Duration::from_secs(30);
                    let store =
                        Store::connect("127.0.0.1", port, n, rank == 0, t, "test/").unwrap();
                    let pg = ProcessGroup::gloo(&store, rank, n, t).unwrap();
                    f(&pg)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn all_reduce_sums_and_averages_over_ranks() {
        let got = on_ranks(3, |pg| {
            let t = Tensor::from_slice(&[1.0f32, 2.0]) * (pg.rank() as f64 + 1.0);
            pg.all_reduce(&t, ReduceOp::Sum).unwrap().wait().unwrap();
            let a = Tensor::from_slice(&[pg.rank() as f32]);
            pg.all_reduce(&a, ReduceOp::Avg).unwrap().wait().unwrap();
            (values(&t), values(&a))
        });
        for (sum, avg) in got {
            assert_eq!(sum, vec![6.0, 12.0]);
            assert_eq!(avg, vec![1.0]);
        }
    }

    #[test]
    fn gather_scatter_and_broadcast_place_each_rank_slice() {
        let got = on_ranks(2, |pg| {
            let r = pg.rank() as f32;
            let input = Tensor::from_slice(&[r, r + 10.0]);
            let gathered = Tensor::zeros([4], (tch::Kind::Float, tch::Device::Cpu));
            pg.all_gather_into(&gathered, &input)
                .unwrap()
                .wait()
                .unwrap();
            let full = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]) * (r as f64 + 1.0);
            let mine = Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu));
            pg.reduce_scatter_into(&mine, &full, ReduceOp::Sum)
                .unwrap()
                .wait()
                .unwrap();
            let b = Tensor::from_slice(&[r + 5.0]);
            pg.broadcast(&b, 1).unwrap().wait().unwrap();
            pg.barrier().unwrap();
            (values(&gathered), values(&mine), values(&b))
        });
        assert_eq!(got[0].0, vec![0.0, 10.0, 1.0, 11.0]);
        assert_eq!(got[1].0, got[0].0);
        // Σ_r (r+1)·[1,2,3,4] = 3·[1,2,3,4]; rank 0 keeps [3,6], rank 1 [9,12]
        assert_eq!(got[0].1, vec![3.0, 6.0]);
        assert_eq!(got[1].1, vec![9.0, 12.0]);
        assert_eq!((got[0].2.clone(), got[1].2.clone()), (vec![6.0], vec![6.0]));
    }

    #[test]
    fn the_store_shares_values_and_counters() {
        let got = on_ranks(2, |pg| {
            // the group's own store is internal; a second store on a fresh port
            pg.barrier().unwrap();
            pg.rank()
        });
        assert_eq!(got, vec![0, 1]);
        let port = free_port();
        let t = Duration::from_secs(10);
        let server = Store::connect("127.0.0.1", port, 2, true, t, "p/").unwrap();
        let client = Store::connect("127.0.0.1", port, 2, false, t, "p/").unwrap();
        server.set("k", b"value").unwrap();
        assert_eq!(client.get("k").unwrap(), b"value");
        assert_eq!(client.add("n", 2).unwrap(), 2);
        assert_eq!(server.add("n", 3).unwrap(), 5);
        let long = vec![7u8; 1000];
        client.set("long", &long).unwrap();
        assert_eq!(server.get("long").unwrap(), long);
    }

    #[test]
    fn a_missing_server_is_a_rendezvous_error_naming_the_address() {
        let port = free_port();
        let e = Store::connect(
            "127.0.0.1",
            port,
            2,
            false,
            Duration::from_millis(1500),
            "x/",
        )
        .err()
        .expect("no server");
        assert!(
            e.to_string()
                .contains(&format!("rendezvous at 127.0.0.1:{port}")),
            "{e}"
        );
    }
}
