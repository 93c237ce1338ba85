//! bitsandbytes' blockwise 8-bit quantisation of optimizer states, as its CPU kernel does it
//! (bitsandbytes 0.50.2: `functional.py::create_dynamic_map`, `csrc/cpu_ops.cpp`
//! `quantize_cpu_impl` / `avx2_quantize_8bit_block` / `build_quantize_lut`,
//! `dequantizeBlockwise8bitCpu`).
//!
//! A state tensor of n elements is cut into blocks of [`BLOCK`] = 256 (the last one shorter).
//! Per block b with values x:
//!
//!   absmax_b = max |x|                                   (f32, exact)
//!   inv      = 1 / absmax_b                              (f32)
//!   v        = clamp(x · inv, −1, 1)
//!   t        = ((v + 1) · 0.5) · 65535 + 0.5            (four f32 roundings, no FMA)
//!   q        = LUT[trunc(t)]                             (a byte: an index into the code)
//!
//! and a block whose absmax is 0 stores q = 0. Dequantisation is `code[q] · absmax_b` (one f32
//! product). The LUT is not an exact nearest-code search: it maps 65 536 evenly spaced bins of
//! [−1, 1] to the code nearest each bin's left edge, val_i = −1 + 2i/65535, by the midpoints
//! `½(code[j] + code[j+1])`. So a value near 0 lands on the code nearest 1.5·10⁻⁵ (index 131 of
//! the signed map, 2.125·10⁻⁵), not on 0 — bitsandbytes does this, and so do we.
//!
//! The codes are the "dynamic" maps: signed (state1, the first moment) and unsigned (state2,
//! the second moment), each 256 sorted f32 values built from `torch.linspace` in f32.
//! Left out: other block sizes, bf16/fp16 inputs, NaN sanitising (a NaN state has already
//! ended the run).

use tch::{Device, Kind, Tensor};

/// Block size of bitsandbytes' 8-bit optimizer states (`blocksize = 256` in its kernels).
pub const BLOCK: usize = 256;
/// Bins of the quantisation look-up table (`kLUTSize`).
const LUT_SIZE: usize = 65536;

/// `create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)`:
///
/// for i in 0..7: boundaries = linspace(0.1, 1, 2^i + 1) (signed) or 2^(i+1) + 1 (unsigned),
/// `means = (b[:-1] + b[1:]) / 2`, entries 10^(i−6)·means (and their negatives when signed);
/// then 0 and 1.0, sorted. 254 + 2 = 256 entries either way.
pub fn dynamic_map(signed: bool) -> Vec<f32> {
    let _guard = tch::no_grad_guard();
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..7i32 {
        let items = if signed {
            (1 << i) + 1
        } else {
            (1 << (i + 1)) + 1
        };
        let boundaries = Tensor::linspace(0.1, 1.0, items, (Kind::Float, Device::Cpu));
        let means = (boundaries.narrow(0, 0, items - 1) + boundaries.narrow(0, 1, items - 1)) / 2.0;
        // Python `10 ** (i - 6)`: a float (C pow) for i < 6, the int 1 for i = 6; either way
        // the scalar is cast to f32 by `mul`
        let scale = 10f64.powf(f64::from(i - 6));
        let pos = Vec::<f32>::try_from(&means * scale).expect("a float tensor");
        if signed {
            let neg = Vec::<f32>::try_from(&means * -scale).expect("a float tensor");
            data.extend(pos);
            data.extend(neg);
        } else {
            data.extend(pos);
        }
    }
    data.push(0.0);
    data.push(1.0);
    debug_assert_eq!(data.len(), 256);
    data.sort_by(f32::total_cmp);
    data
}

/// One code with its look-up table (`build_quantize_lut`).
pub struct Codebook {
    pub code: Vec<f32>,
    lut: Vec<u8>,
}

impl Codebook {
    pub fn new(code: Vec<f32>) -> Codebook {
        // midpoints[j] = 0.5 · (code[j] + code[j+1])
        let midpoints: Vec<f32> = code.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
        let mut lut = vec![0u8; LUT_SIZE];
        let mut j = 0usize;
        for (i, slot) in lut.iter_mut().enumerate() {
            // val = −1 + (2·i) / 65535, in f32
            let val = -1.0f32 + (2.0f32 * i as f32) / (LUT_SIZE - 1) as f32;
            while j < code.len() - 1 && midpoints[j] < val {
                j += 1;
            }
            *slot = j as u8;
        }
        Codebook { code, lut }
    }

    pub fn signed() -> Codebook {
        Codebook::new(dynamic_map(true))
    }

    pub fn unsigned() -> Codebook {
        Codebook::new(dynamic_map(false))
    }

    /// Quantise `x` into `q` (same length) and `absmax` (one per block).
    pub fn quantize(&self, x: &[f32], q: &mut [u8], absmax: &mut [f32]) {
        for (b, (xs, qs)) in x.chunks(BLOCK).zip(q.chunks_mut(BLOCK)).enumerate() {
            let am = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            absmax[b] = am;
            if am == 0.0 {
                qs.fill(0);
                continue;
            }
            let inv = 1.0f32 / am;
            for (xv, qv) in xs.iter().zip(qs.iter_mut()) {
                let v = (xv * inv).clamp(-1.0, 1.0);
                let t = ((v + 1.0) * 0.5) * (LUT_SIZE - 1) as f32 + 0.5;
                *qv = self.lut[t as usize];
            }
        }
    }

    /// `code[q] · absmax` of q's block, into `out`.
    pub fn dequantize(&self, q: &[u8], absmax: &[f32], out: &mut [f32]) {
        for ((qs, os), am) in q.chunks(BLOCK).zip(out.chunks_mut(BLOCK)).zip(absmax) {
            for (qv, ov) in qs.iter().zip(os.iter_mut()) {
                *ov = self.code[*qv as usize] * am;
            }
        }
    }
}

/// Blocks of a tensor of `n` elements: ⌈n / 256⌉.
pub fn blocks(n: usize) -> usize {
    n.div_ceil(BLOCK)
}
