//! torchao's blockwise quantisation of optimizer states (torchao 0.17 `optim/quant_utils.py`,
//! `subclass_8bit.py`, `subclass_4bit.py`): the 8-bit and 4-bit maps, and the quantise /
//! dequantise of one state tensor.
//!
//! A state of n elements (n a multiple of the block size B) is cut into n / B blocks. Per
//! block b with values x (`scale_tensor`):
//!
//!   s_b = max(max |x|, 10⁻¹²)                          (`abs().amax(-1).clip(1e-12)`)
//!   y   = x / s_b                                       (a true f32 division)
//!   q   = nearest code of y in the map, by a branchless binary search on `y ≥ map[·]` and a
//!         rounding step `y − map[q] ≥ (map[q+1] − map[q]) · 0.5` (`quantize_{8,4}bit_with_qmap`)
//!
//! and dequantisation is `map[q] · s_b` (one f32 product, `dequant_with_qmap`). Unlike
//! bitsandbytes (see [`super::blockwise`]) this is an exact nearest-code search (ties go up),
//! and the stored scale is clipped, never 0. 4-bit codes are packed two per byte, the even
//! element in the high nibble: `(q[2i] << 4) | q[2i+1]`.
//!
//! The maps (`create_dynamic_map(signed, max_exponent_bits, total_bits)` without
//! bitsandbytes' zero padding):
//!
//! | state | 8-bit (`subclass_8bit.py`) | 4-bit (`subclass_4bit.py`) |
//! |---|---|---|
//! | `exp_avg` (signed) | dynamic map (signed, 7, 8): 256 values | dynamic map (signed, 3, 4): 16 values |
//! | `exp_avg_sq` (unsigned) | dynamic map (unsigned, 7, 8): 256 values | `linspace(0, 1, 17)[1:]`: 16 values, no zero |

use tch::{Device, Kind, Tensor};

/// Smallest stored scale (`clip(1e-12)` in `scale_tensor`).
const MIN_SCALE: f32 = 1e-12;

/// `create_dynamic_map(signed, max_exponent_bits, total_bits)` of torchao's `quant_utils.py`:
///
/// with s = total_bits − 1 non-sign bits, for i in 0..max_exponent_bits:
/// `boundaries = linspace(0.1, 1, k)` (f32) with k = 2^(i+s−e) + 1 (signed) or 2^(i+s−e+1) + 1
/// (unsigned), `means = (b[:-1] + b[1:]) / 2`, entries `10^(i−(e−1)) · means` and, when signed,
/// their negatives; then 2^(s−e) − 1 extra linear items when that is positive (never for the
/// maps used here), 0 and 1.0; sorted. `10 ** k` is a Python float for k < 0 and the int 1 for
/// k = 0; either way `mul` casts it to f32.
pub fn dynamic_map(signed: bool, max_exponent_bits: u32, total_bits: u32) -> Vec<f32> {
    let _guard = tch::no_grad_guard();
    let non_sign_bits = total_bits - 1;
    debug_assert!(non_sign_bits >= max_exponent_bits, "no extra linear items");
    let mut data: Vec<f32> = Vec::with_capacity(1 << total_bits);
    for i in 0..max_exponent_bits {
        let shift = i + non_sign_bits - max_exponent_bits + u32::from(!signed);
        let items = (1i64 << shift) + 1;
        let boundaries = Tensor::linspace(0.1, 1.0, items, (Kind::Float, Device::Cpu));
        let means = (boundaries.narrow(0, 0, items - 1) + boundaries.narrow(0, 1, items - 1)) / 2.0;
        let scale = 10f64.powf(f64::from(i as i32 - (max_exponent_bits as i32 - 1)));
        data.extend(Vec::<f32>::try_from(&means * scale).expect("a float tensor"));
        if signed {
            data.extend(Vec::<f32>::try_from(&means * -scale).expect("a float tensor"));
        }
    }
    let extra = (1u32 << (non_sign_bits - max_exponent_bits)) - 1;
    assert_eq!(
        extra, 0,
        "maps with extra linear items are not used by torchao's optimizers"
    );
    data.push(0.0);
    data.push(1.0);
    assert_eq!(data.len(), 1 << total_bits);
    data.sort_by(f32::total_cmp);
    data
}

/// The 4-bit unsigned map: `torch.linspace(0, 1, 17)[1:]` (f32), no zero.
pub fn linear_map_4bit() -> Vec<f32> {
    let v = Tensor::linspace(0.0, 1.0, 17, (Kind::Float, Device::Cpu));
    Vec::<f32>::try_from(v.narrow(0, 1, 16)).expect("a float tensor")
}

/// Code width of a quantised state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bits {
    Eight,
    Four,
}

impl Bits {
    pub fn count(self) -> u32 {
        match self {
            Bits::Eight => 8,
            Bits::Four => 4,
        }
    }

    /// Bytes holding `n` codes.
    pub fn code_bytes(self, n: usize) -> usize {
        match self {
            Bits::Eight => n,
            Bits::Four => n / 2,
        }
    }
}

/// A quantisation map (`qmap`) of 2^bits sorted values.
#[derive(Debug, Clone)]
pub struct QMap {
    pub values: Vec<f32>,
    pub bits: Bits,
}

impl QMap {
    /// The map of `exp_avg` (signed) or `exp_avg_sq` (unsigned) for `bits`.
    pub fn for_state(bits: Bits, signed: bool) -> QMap {
        let values = match (bits, signed) {
            (Bits::Eight, s) => dynamic_map(s, 7, 8),
            (Bits::Four, true) => dynamic_map(true, 3, 4),
            (Bits::Four, false) => linear_map_4bit(),
        };
        QMap { values, bits }
    }

    /// `quantize_{8,4}bit_with_qmap` of one scaled value: the binary search
    /// `q += (y ≥ map[q + h]) · h` for h = 2^(bits−1) … 1, then round up when
    /// `y − map[q] ≥ (map[q+1] − map[q]) · 0.5` (q+1 clipped to the last code).
    #[inline]
    pub fn code(&self, y: f32) -> u8 {
        let q = &self.values;
        let top = q.len();
        let mut c = 0usize;
        let mut h = top / 2;
        while h >= 1 {
            if y >= q[c + h] {
                c += h;
            }
            h /= 2;
        }
        let up = (c + 1).min(top - 1);
        let down = q[c];
        if y - down >= (q[up] - down) * 0.5 {
            up as u8
        } else {
            c as u8
        }
    }

    /// Quantise `x` (a multiple of `block` long) into packed `codes` and one scale per block.
    pub fn quantize(&self, x: &[f32], block: usize, codes: &mut [u8], scale: &mut [f32]) {
        let mut unpacked = vec![0u8; block];
        for (b, xs) in x.chunks(block).enumerate() {
            // max_propagate_nan over |x|, then clip(1e-12)
            let am = xs.iter().fold(0.0f32, |m, v| {
                let a = v.abs();
                if a.is_nan() || a > m {
                    a
                } else {
                    m
                }
            });
            let s = if am.is_nan() { am } else { am.max(MIN_SCALE) };
            scale[b] = s;
            for (xv, qv) in xs.iter().zip(unpacked.iter_mut()) {
                *qv = self.code(xv / s);
            }
            match self.bits {
                Bits::Eight => codes[b * block..(b + 1) * block].copy_from_slice(&unpacked),
                Bits::Four => {
                    let out = &mut codes[b * block / 2..(b + 1) * block / 2];
                    for (o, pair) in out.iter_mut().zip(unpacked.chunks(2)) {
                        *o = (pair[0] << 4) | pair[1];
                    }
                }
            }
        }
    }

    /// `map[q] · s_b` of every element, into `out` (a multiple of `block` long).
    pub fn dequantize(&self, codes: &[u8], scale: &[f32], block: usize, out: &mut [f32]) {
        for (b, os) in out.chunks_mut(block).enumerate() {
            let s = scale[b];
            match self.bits {
                Bits::Eight => {
                    for (o, c) in os.iter_mut().zip(&codes[b * block..(b + 1) * block]) {
                        *o = self.values[*c as usize] * s;
                    }
                }
                Bits::Four => {
                    let packed = &codes[b * block / 2..(b + 1) * block / 2];
                    for (pair, c) in os.chunks_mut(2).zip(packed) {
                        pair[0] = self.values[(c >> 4) as usize] * s;
                        pair[1] = self.values[(c & 0x0f) as usize] * s;
                    }
                }
            }
        }
    }
}
