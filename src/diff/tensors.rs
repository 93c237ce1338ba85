//! Memory-mapped safetensors, streamed tensor by tensor.
//!
//! A file is mapped once; its header is parsed by the `safetensors` crate (which validates
//! the offsets). Data is never copied whole: [`stream_pairs`] walks pairs of tensors in work
//! units of [`UNIT`] elements on a few threads, decodes each unit block by block into small
//! f32 buffers (bf16: the 16 high bits of an f32; f16 through `half`), accumulates the
//! statistics of the difference, and then tells the kernel it may drop the pages of that
//! unit (`MADV_DONTNEED`). So the resident memory stays at a few units per thread however
//! large the checkpoints are. Small tensors (LoRA factors) are read whole with
//! [`TensorSet::read_f64`].
//!
//! Left out: integer and fp8 dtypes (reported as unsupported per tensor).

use memmap2::{Advice, Mmap, UncheckedAdvice};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Elements per work unit: 4 Mi elements (8 MiB of bf16, 16 MiB of f32).
pub const UNIT: usize = 1 << 22;
/// Elements decoded at a time (stays in L1/L2).
const BLOCK: usize = 4096;

/// Errors reading tensor files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    /// The file could not be opened or mapped.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The safetensors header is malformed (or the file is truncated).
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Header { path: PathBuf, message: String },
    /// A tensor has a dtype tunebridge does not compare.
    #[error("{}: tensor `{name}` has dtype {dtype}; tunebridge compares F32, F16, BF16 and F64", path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
}

/// Element types tunebridge decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    F64,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// One tensor's place in its file.
#[derive(Debug, Clone)]
pub struct TensorMeta {
    pub name: String,
    /// `Err(dtype name)` for dtypes tunebridge does not decode.
    pub dtype: Result<Dtype, String>,
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub start: usize,
    pub end: usize,
    /// Index of the file in its [`TensorSet`].
    pub file: usize,
}

impl TensorMeta {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One mapped safetensors file.
pub struct TensorFile {
    pub path: PathBuf,
    map: Mmap,
}

/// The tensors of one checkpoint: one file or all shards of an index.
pub struct TensorSet {
    pub files: Vec<TensorFile>,
    /// In file order, then offset order.
    pub tensors: Vec<TensorMeta>,
}

impl TensorSet {
    /// Map the files and read their headers. Nothing else is read.
    pub fn open(paths: &[PathBuf]) -> Result<TensorSet, TensorError> {
        let mut files = Vec::new();
        let mut tensors = Vec::new();
        for (fi, path) in paths.iter().enumerate() {
            let f = std::fs::File::open(path).map_err(|e| TensorError::Io {
                path: path.clone(),
                source: e,
            })?;
            // SAFETY: the map is read-only; like every mmap reader we assume the file is not
            // truncated or rewritten while we read it.
            let map = unsafe { Mmap::map(&f) }.map_err(|e| TensorError::Io {
                path: path.clone(),
                source: e,
            })?;
            let (n, meta) = safetensors::SafeTensors::read_metadata(&map[..]).map_err(|e| {
                TensorError::Header {
                    path: path.clone(),
                    message: format!("{e:?}"),
                }
            })?;
            let base = 8 + n;
            let mut these: Vec<TensorMeta> = meta
                .tensors()
                .into_iter()
                .map(|(name, info)| TensorMeta {
                    name,
                    dtype: match info.dtype {
                        safetensors::Dtype::F32 => Ok(Dtype::F32),
                        safetensors::Dtype::F16 => Ok(Dtype::F16),
                        safetensors::Dtype::BF16 => Ok(Dtype::BF16),
                        safetensors::Dtype::F64 => Ok(Dtype::F64),
                        other => Err(format!("{other:?}")),
                    },
                    shape: info.shape.clone(),
                    start: base + info.data_offsets.0,
                    end: base + info.data_offsets.1,
                    file: fi,
                })
                .collect();
            these.sort_by_key(|t| t.start);
            tensors.extend(these);
            let _ = map.advise(Advice::Sequential);
            files.push(TensorFile {
                path: path.clone(),
                map,
            });
        }
        Ok(TensorSet { files, tensors })
    }

    /// Total bytes of tensor data.
    pub fn data_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| (t.end - t.start) as u64).sum()
    }

    fn bytes(&self, t: &TensorMeta) -> &[u8] {
        &self.files[t.file].map[t.start..t.end]
    }

    /// Decode a whole (small) tensor to f64.
    pub fn read_f64(&self, t: &TensorMeta) -> Result<Vec<f64>, TensorError> {
        let dtype = t.dtype.clone().map_err(|d| TensorError::Dtype {
            path: self.files[t.file].path.clone(),
            name: t.name.clone(),
            dtype: d,
        })?;
        let bytes = self.bytes(t);
        let mut out = Vec::with_capacity(t.numel());
        let mut buf = vec![0f32; BLOCK];
        if dtype == Dtype::F64 {
            out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
            );
        } else {
            for chunk in bytes.chunks(BLOCK * dtype.size()) {
                let n = chunk.len() / dtype.size();
                decode(dtype, chunk, &mut buf[..n]);
                out.extend(buf[..n].iter().map(|&x| x as f64));
            }
        }
        Ok(out)
    }

    /// Let the kernel drop the pages of a byte range we are done with.
    fn release(&self, t: &TensorMeta, lo_byte: usize, hi_byte: usize) {
        let map = &self.files[t.file].map;
        // SAFETY: MADV_DONTNEED on a read-only file mapping only discards the resident
        // pages; the next access reads the same bytes from the file again.
        let _ = unsafe {
            map.unchecked_advise_range(
                UncheckedAdvice::DontNeed,
                t.start + lo_byte,
                hi_byte - lo_byte,
            )
        };
    }

    fn prefetch(&self, t: &TensorMeta, lo_byte: usize, hi_byte: usize) {
        let map = &self.files[t.file].map;
        let _ = map.advise_range(Advice::WillNeed, t.start + lo_byte, hi_byte - lo_byte);
    }
}

/// Decode little-endian elements into f32.
#[inline(always)]
fn decode(dtype: Dtype, bytes: &[u8], out: &mut [f32]) {
    // Fast paths when the bytes happen to be aligned (the usual case: safetensors writers pad
    // the header to 8 bytes): reinterpret as u16/f32 so the loop vectorises.
    #[cfg(target_endian = "little")]
    match dtype {
        Dtype::BF16 => {
            // SAFETY: every bit pattern is a valid u16; align_to only takes the aligned middle.
            let (pre, mid, post) = unsafe { bytes.align_to::<u16>() };
            if pre.is_empty() && post.is_empty() {
                for (o, &x) in out.iter_mut().zip(mid) {
                    *o = f32::from_bits((x as u32) << 16);
                }
                return;
            }
        }
        Dtype::F32 => {
            // SAFETY: every bit pattern is a valid f32.
            let (pre, mid, post) = unsafe { bytes.align_to::<f32>() };
            if pre.is_empty() && post.is_empty() {
                out[..mid.len()].copy_from_slice(mid);
                return;
            }
        }
        _ => {}
    }
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::BF16 => {
            // bf16 is the high half of an f32.
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        Dtype::F64 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32;
            }
        }
    }
}

/// Sums over the elements of a pair of equally shaped tensors a, b.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PairStats {
    pub n: u64,
    /// Σ (a−b)²
    pub sum_d2: f64,
    /// Σ a²
    pub sum_a2: f64,
    /// Σ b²
    pub sum_b2: f64,
    /// Σ a·b
    pub dot: f64,
    /// max |a−b|
    pub max_abs: f64,
    /// Elements where a or b is NaN or infinite.
    pub non_finite: u64,
}

impl PairStats {
    fn merge(&mut self, o: &PairStats) {
        self.n += o.n;
        self.sum_d2 += o.sum_d2;
        self.sum_a2 += o.sum_a2;
        self.sum_b2 += o.sum_b2;
        self.dot += o.dot;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.non_finite += o.non_finite;
    }

    /// ‖a−b‖ / max(‖a‖, ‖b‖); 0 when both are zero.
    pub fn rel(&self) -> f64 {
        let denom = self.sum_a2.max(self.sum_b2).sqrt();
        if denom == 0.0 {
            if self.sum_d2 == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            self.sum_d2.sqrt() / denom
        }
    }

    /// ⟨a,b⟩ / (‖a‖‖b‖); None when either is zero.
    pub fn cos(&self) -> Option<f64> {
        let d = (self.sum_a2 * self.sum_b2).sqrt();
        (d > 0.0).then(|| (self.dot / d).clamp(-1.0, 1.0))
    }
}

/// Accumulate one block of f32 pairs; 8 lanes so the compiler vectorises it.
#[inline(always)]
fn accumulate(a: &[f32], b: &[f32], s: &mut PairStats) {
    let mut d2 = [0f32; 8];
    let mut a2 = [0f32; 8];
    let mut b2 = [0f32; 8];
    let mut ab = [0f32; 8];
    let mut mx = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            d2[i] += d * d;
            a2[i] += x[i] * x[i];
            b2[i] += y[i] * y[i];
            ab[i] += x[i] * y[i];
            mx[i] = mx[i].max(d.abs());
        }
    }
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        d2[0] += d * d;
        a2[0] += x * x;
        b2[0] += y * y;
        ab[0] += x * y;
        mx[0] = mx[0].max(d.abs());
    }
    let sum = |v: [f32; 8]| v.iter().map(|&x| x as f64).sum::<f64>();
    let (sd2, sa2, sb2, sab) = (sum(d2), sum(a2), sum(b2), sum(ab));
    if sd2.is_finite() && sa2.is_finite() && sb2.is_finite() && sab.is_finite() {
        s.n += a.len() as u64;
        s.sum_d2 += sd2;
        s.sum_a2 += sa2;
        s.sum_b2 += sb2;
        s.dot += sab;
        s.max_abs = s.max_abs.max(mx.iter().fold(0f32, |m, &x| m.max(x)) as f64);
        return;
    }
    // Rare: a NaN or infinity in the block. Count those elements and leave them out of the
    // sums, so one bad value does not hide the size of the rest of the difference.
    for (&x, &y) in a.iter().zip(b) {
        s.n += 1;
        if !(x.is_finite() && y.is_finite()) {
            s.non_finite += 1;
            continue;
        }
        let (x, y) = (x as f64, y as f64);
        s.sum_d2 += (x - y) * (x - y);
        s.sum_a2 += x * x;
        s.sum_b2 += y * y;
        s.dot += x * y;
        s.max_abs = s.max_abs.max((x - y).abs());
    }
}

/// One work unit: the same element range of two tensors.
struct Unit<'a> {
    da: Dtype,
    db: Dtype,
    bytes_a: &'a [u8],
    bytes_b: &'a [u8],
}

impl Unit<'_> {
    /// Decode and accumulate block by block; with AVX2+FMA when the CPU has them.
    fn run(&self, ba: &mut [f32], bb: &mut [f32], acc: &mut PairStats) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected at run time.
            unsafe { self.run_avx2(ba, bb, acc) };
            return;
        }
        self.run_generic(ba, bb, acc);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, ba: &mut [f32], bb: &mut [f32], acc: &mut PairStats) {
        self.run_generic(ba, bb, acc);
    }

    #[inline(always)]
    fn run_generic(&self, ba: &mut [f32], bb: &mut [f32], acc: &mut PairStats) {
        let n = self.bytes_a.len() / self.da.size();
        let mut i = 0;
        while i < n {
            let j = (i + BLOCK).min(n);
            let m = j - i;
            decode(
                self.da,
                &self.bytes_a[i * self.da.size()..j * self.da.size()],
                &mut ba[..m],
            );
            decode(
                self.db,
                &self.bytes_b[i * self.db.size()..j * self.db.size()],
                &mut bb[..m],
            );
            accumulate(&ba[..m], &bb[..m], acc);
            i = j;
        }
    }
}

/// Statistics of `pairs` (index into `a.tensors`, index into `b.tensors`; equal element
/// counts, checked by the caller), computed on `threads` threads. Returns one entry per pair.
pub fn stream_pairs(
    a: &TensorSet,
    b: &TensorSet,
    pairs: &[(usize, usize)],
    threads: usize,
) -> Vec<PairStats> {
    // Work units: (pair, first element, last element), largest tensors split in UNITs.
    let mut units: Vec<(usize, usize, usize)> = Vec::new();
    for (pi, &(ia, _)) in pairs.iter().enumerate() {
        let n = a.tensors[ia].numel();
        let mut lo = 0;
        while lo < n {
            let hi = (lo + UNIT).min(n);
            units.push((pi, lo, hi));
            lo = hi;
        }
    }
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, 64).min(units.len().max(1));
    let per_thread: Vec<Vec<PairStats>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (next, units) = (&next, &units);
                scope.spawn(move || {
                    let mut acc = vec![PairStats::default(); pairs.len()];
                    let mut ba = vec![0f32; BLOCK];
                    let mut bb = vec![0f32; BLOCK];
                    loop {
                        let u = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(pi, lo, hi)) = units.get(u) else {
                            break;
                        };
                        let (ta, tb) = (&a.tensors[pairs[pi].0], &b.tensors[pairs[pi].1]);
                        let (Ok(da), Ok(db)) = (ta.dtype.clone(), tb.dtype.clone()) else {
                            continue;
                        };
                        // Ask for the next unit of this thread's likely successor early.
                        if let Some(&(npi, nlo, nhi)) = units.get(u + threads) {
                            let (na, nb) = (&a.tensors[pairs[npi].0], &b.tensors[pairs[npi].1]);
                            if let (Ok(x), Ok(y)) = (&na.dtype, &nb.dtype) {
                                a.prefetch(na, nlo * x.size(), nhi * x.size());
                                b.prefetch(nb, nlo * y.size(), nhi * y.size());
                            }
                        }
                        let unit = Unit {
                            da,
                            db,
                            bytes_a: &a.bytes(ta)[lo * da.size()..hi * da.size()],
                            bytes_b: &b.bytes(tb)[lo * db.size()..hi * db.size()],
                        };
                        unit.run(&mut ba, &mut bb, &mut acc[pi]);
                        a.release(ta, lo * da.size(), hi * da.size());
                        b.release(tb, lo * db.size(), hi * db.size());
                    }
                    acc
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut out = vec![PairStats::default(); pairs.len()];
    for t in &per_thread {
        for (o, s) in out.iter_mut().zip(t) {
            o.merge(s);
        }
    }
    out
}

/// The number of worker threads to use by default: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Write a safetensors file from f32 tensors (tests and fixtures).
pub fn write_f32(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> std::io::Result<()> {
    write_raw(
        path,
        tensors
            .iter()
            .map(|(n, s, d)| {
                (
                    n.to_string(),
                    "F32",
                    s.clone(),
                    d.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect(),
    )
}

/// Write a safetensors file from raw little-endian bytes: (name, dtype, shape, bytes).
pub fn write_raw(
    path: &Path,
    tensors: Vec<(String, &str, Vec<usize>, Vec<u8>)>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (name, dtype, shape, bytes) in &tensors {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [off, off + bytes.len()]}),
        );
        off += bytes.len();
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&(h.len() as u64).to_le_bytes())?;
    f.write_all(&h)?;
    for (_, _, _, bytes) in &tensors {
        f.write_all(bytes)?;
    }
    f.flush()
}

#[cfg(test)]
mod tests;
