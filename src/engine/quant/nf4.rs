//! NF4 base weights, bit-compatible with bitsandbytes (QLoRA).
//!
//! Follows bitsandbytes 0.50.2 `functional.quantize_4bit(W, blocksize=64,
//! compress_statistics=True, quant_type="nf4")` on the CPU: the pure-torch 4-bit quantizer
//! (`backends/default/ops.py`) and the C++ blockwise 8-bit quantizer of the statistics
//! (`csrc/cpu_ops.cpp`, `quantize_block`). Proven byte for byte against tensors the real
//! library quantized (`golden/nf4/`, made by `scripts/reference/nf4_golden.py`).
//!
//! **Quantize** W (any float dtype; row-major, n elements):
//! 1. x = flatten(W) in fp32, cut into blocks of 64 (the last may be shorter);
//!    absmax_b = max |x| over block b (stored unclamped: an all-zero block keeps 0).
//! 2. scaled = clamp(x · (1 / max(absmax_b, 1e−38)), −1, 1) for full blocks — torch's
//!    `1.0 / t` is `reciprocal(t) · 1.0`, so a reciprocal then a product — and
//!    clamp(x / max(absmax, 1e−38), −1, 1) (a true division) for the short last block.
//! 3. code = bucketize(scaled, midpoints): the number of midpoints m_i = (c_i + c_{i+1}) / 2
//!    (fp32) strictly below the value, i.e. the nearest NF4 value, a tie going down.
//!    An odd n is padded with one 0 (code 7).
//! 4. pack: byte k = code\[2k\] << 4 | code\[2k+1\] (element 2k in the high nibble), shape
//!    \[(n+1)/2, 1\], uint8.
//!
//! **Double quantisation** of the per-64 absmax (a, one per block):
//! 5. offset = mean(a) (fp32, torch's reduction); d = a − offset.
//! 6. d in blocks of 256: absmax2_j = max |d| over block j (fp32 [⌈blocks/256⌉]);
//!    v = d / absmax2_j (a true division); q = an index into the signed 8-bit dynamic map
//!    (`create_dynamic_map(signed=True)`, [`DYNAMIC_MAP`]) chosen as bitsandbytes' C++ CPU
//!    kernel chooses it: a bucket search meant to give the nearest entry, which it misses
//!    near some boundaries ([`DQ_THRESHOLDS`], measured from the library). Stored as uint8.
//!
//! **Dequantize** (bitsandbytes `dequantize_4bit`, fp32 math):
//! a_b = DYNAMIC_MAP\[q_b\] · absmax2_{b/256} + offset; w_i = NF4\[code_i\] · a_{i/64}, cast to
//! the dtype W had, then (in the Linear forward) to the compute dtype.
//!
//! **Pre-quantised checkpoints** (`unsloth/*-bnb-4bit`, any `save_pretrained` of a
//! bitsandbytes 4-bit model): [`Nf4Tensor::from_bnb`] takes the stored `weight` (packed),
//! `weight.absmax`, `weight.nested_absmax`, `weight.quant_map`, `weight.nested_quant_map` and
//! the JSON `weight.quant_state.bitsandbytes__nf4` (`quant_type`, `blocksize`, `dtype`,
//! `shape`, `nested_blocksize`, `nested_offset`) as they are: the same layout this quantiser
//! produces, so such a base dequantises to exactly the weights bitsandbytes gives it.
//!
//! Left out: FP4, block sizes other than 64, a fused dequantize-matmul kernel (the forward
//! dequantizes the whole weight first).

use crate::engine::error::{EngineError, Result};
use tch::{Device, Kind, Tensor};

/// NF4 code table (bitsandbytes `get_4bit_type("nf4")`, `create_normal_map(offset=0.9677083)`),
/// as fp32 bit patterns: −1, −0.6961928, …, 0, 0.0795803, …, 0.7229568, 1.
pub const NF4: [u32; 16] = [
    0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000,
    0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000,
];

/// The signed 8-bit dynamic map (bitsandbytes `create_dynamic_map(signed=True,
/// max_exponent_bits=7, total_bits=8)`, sorted), as fp32 bit patterns: 256 values from
/// −0.99297 to 1.0 with a dynamic exponent (not IEEE FP8).
pub const DYNAMIC_MAP: [u32; 256] = [
    0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
    0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
    0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
];

/// bitsandbytes' CPU double-quantisation decision thresholds (fp32 bit patterns): t_m is the
/// smallest normalised value its kernel maps to index ≥ m (m = 1 … 255), so
/// index(v) = #{m : t_m ≤ v}. Its C++ bucket search is not an exact nearest-value rule (the
/// 168 → 169 boundary is at 0.0381169, the midpoint is 0.0381250; values just above 0 skip
/// codes 124–130), so the table is measured from the library itself by
/// `scripts/reference/nf4_dq_thresholds.py` (golden/nf4/dq_thresholds.json).
pub const DQ_THRESHOLDS: [u32; 255] = [
    0xbf7c66fc, 0xbf78ccf8, 0xbf7532f5, 0xbf7198f1, 0xbf6e00ee, 0xbf6a66ea, 0xbf66cce6, 0xbf6332e3,
    0xbf5f98df, 0xbf5c00dc, 0xbf5866d8, 0xbf54ccd4, 0xbf5132d1, 0xbf4d98cd, 0xbf4a00ca, 0xbf4666c6,
    0xbf42ccc2, 0xbf3f32bf, 0xbf3b98bb, 0xbf3800b8, 0xbf3466b4, 0xbf30ccb1, 0xbf2d32ad, 0xbf2998a9,
    0xbf2600a6, 0xbf2266a2, 0xbf1ecc9f, 0xbf1b329b, 0xbf179a97, 0xbf140094, 0xbf106690, 0xbf0ccc8d,
    0xbf093289, 0xbf059a85, 0xbf020082, 0xbefcccfd, 0xbef598f6, 0xbeee64ee, 0xbee734e9, 0xbee000e1,
    0xbed8ccd9, 0xbed198d2, 0xbeca64ca, 0xbec334c5, 0xbebc00bd, 0xbeb4ccb5, 0xbead98ae, 0xbea664a6,
    0xbe9f34a1, 0xbe980099, 0xbe90cc91, 0xbe89988a, 0xbe826482, 0xbe7668fa, 0xbe6800ea, 0xbe5998da,
    0xbe4b30cd, 0xbe3cd0bd, 0xbe2e68b2, 0xbe2000a2, 0xbe119892, 0xbe033085, 0xbde9a0eb, 0xbdd290d4,
    0xbdc710cb, 0xbdc140c4, 0xbdbb80bb, 0xbdb5c0bb, 0xbdb000b4, 0xbdaa40ab, 0xbda480ab, 0xbd9eb0a4,
    0xbd98f09b, 0xbd933094, 0xbd8d7094, 0xbd87b08b, 0xbd81f084, 0xbd786108, 0xbd6cc0f7, 0xbd6140e8,
    0xbd55c0d7, 0xbd4a40d7, 0xbd3ec0c8, 0xbd3340b7, 0xbd27a0a8, 0xbd1c20a8, 0xbd10a097, 0xbd052088,
    0xbcf34110, 0xbcdc40ef, 0xbcc500d0, 0xbcae00af, 0xbc9700af, 0xbc800090, 0xbc5200df, 0xbc2d00df,
    0xbc1a80a0, 0xbc1180a0, 0xbc0800a0, 0xbbfe0140, 0xbbec0140, 0xbbd90140, 0xbbc70140, 0xbbb400bf,
    0xbba200bf, 0xbb8f00bf, 0xbb7a017f, 0xbb54017f, 0xbb30017f, 0xbb0c017f, 0xbacc0100, 0xba900100,
    0xba680200, 0xba480200, 0xba300200, 0xba100200, 0xb9e00400, 0xb9b00400, 0xb9600800, 0xb9000800,
    0xb8c01000, 0xb8801000, 0xb8002000, 0xb3000000, 0xb3000000, 0xb3000000, 0xb3000000, 0xb3000000,
    0xb3000000, 0xb3000000, 0xb3000000, 0x37ff8000, 0x387fc000, 0x38bfe000, 0x38ffe000, 0x395ff000,
    0x39aff800, 0x39dff800, 0x3a0ffc00, 0x3a2ffc00, 0x3a47fc00, 0x3a67fc00, 0x3a8ffe00, 0x3acbfe00,
    0x3b0bff00, 0x3b2fff00, 0x3b53ff00, 0x3b79ff00, 0x3b8f0081, 0x3ba20081, 0x3bb40081, 0x3bc70081,
    0x3bd90081, 0x3bec0081, 0x3bfe0081, 0x3c080041, 0x3c118041, 0x3c1a8041, 0x3c2d0041, 0x3c5200c0,
    0x3c800060, 0x3c970060, 0x3cae00a1, 0x3cc500a1, 0x3cdc40a1, 0x3cf340e0, 0x3d052070, 0x3d10a091,
    0x3d1c2091, 0x3d27a091, 0x3d3340b0, 0x3d3ec0b0, 0x3d4a40b0, 0x3d55c0d1, 0x3d6140d1, 0x3d6cc0d1,
    0x3d7860f0, 0x3d81f078, 0x3d87b078, 0x3d8d7089, 0x3d933089, 0x3d98f098, 0x3d9eb098, 0x3da48098,
    0x3daa40a9, 0x3db000a9, 0x3db5c0a9, 0x3dbb80b8, 0x3dc140b8, 0x3dc710b8, 0x3dd290c9, 0x3de9a0e9,
    0x3e03307c, 0x3e11988c, 0x3e20009c, 0x3e2e68ac, 0x3e3cd0bc, 0x3e4b30c5, 0x3e5998d5, 0x3e6800e5,
    0x3e7668f5, 0x3e826483, 0x3e899886, 0x3e90cc8e, 0x3e980096, 0x3e9f349e, 0x3ea664a6, 0x3ead98ab,
    0x3eb4ccb3, 0x3ebc00bb, 0x3ec334c3, 0x3eca64cb, 0x3ed198ce, 0x3ed8ccd6, 0x3ee000de, 0x3ee734e6,
    0x3eee64ee, 0x3ef598f3, 0x3efcccfb, 0x3f020082, 0x3f059a86, 0x3f09328a, 0x3f0ccc8b, 0x3f10668f,
    0x3f140093, 0x3f179a97, 0x3f1b329b, 0x3f1ecc9e, 0x3f2266a2, 0x3f2600a6, 0x3f2998aa, 0x3f2d32ae,
    0x3f30ccaf, 0x3f3466b3, 0x3f3800b7, 0x3f3b98bb, 0x3f3f32bf, 0x3f42ccc2, 0x3f4666c6, 0x3f4a00ca,
    0x3f4d98ce, 0x3f5132d2, 0x3f54ccd3, 0x3f5866d7, 0x3f5c00db, 0x3f5f98df, 0x3f6332e3, 0x3f66cce6,
    0x3f6a66ea, 0x3f6e00ee, 0x3f7198f2, 0x3f7532f6, 0x3f78ccf7, 0x3f7c66fb, 0x3f7f18ff,
];

/// Elements per 4-bit block.
pub const BLOCK: i64 = 64;
/// Absmax values per block of the double quantisation.
pub const NESTED_BLOCK: i64 = 256;

fn table(bits: &[u32], device: Device) -> Tensor {
    let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    Tensor::from_slice(&values).to_device(device)
}

/// The per-64 absmax statistics: fp32, or double-quantised.
#[derive(Debug)]
pub enum Absmax {
    /// fp32 \[blocks\] (`compress_statistics=False`).
    Plain(Tensor),
    /// Double quantisation (`compress_statistics=True`, QLoRA's `bnb_4bit_use_double_quant`).
    Double {
        /// uint8 \[blocks\]: absmax − offset, as dynamic-map indices.
        q: Tensor,
        /// fp32 [⌈blocks/256⌉]: absmax of each 256-block of (absmax − offset).
        nested_absmax: Tensor,
        /// fp32 scalar: mean of the per-64 absmax.
        offset: Tensor,
    },
}

/// A weight stored as NF4 (bitsandbytes `Params4bit`).
#[derive(Debug)]
pub struct Nf4Tensor {
    /// uint8 [(n+1)/2, 1]: two codes a byte, element 2k in the high nibble.
    pub packed: Tensor,
    pub absmax: Absmax,
    /// The weight's shape and dtype before quantisation.
    pub shape: Vec<i64>,
    pub dtype: Kind,
}

/// `blocks` rows of `len` from a flat (n) tensor times one factor per row, as bitsandbytes
/// multiplies (the full rows as a (rows, len) × (rows, 1) product, a short last row by its
/// own factor): (n) → (n), fp32.
fn times_block_factor(values: &Tensor, factors: &Tensor, len: i64) -> Tensor {
    let n = values.size()[0];
    let (rem, full) = (n % len, n - n % len);
    let rows = full / len;
    let mut parts = Vec::new();
    if full > 0 {
        let head = values.narrow(0, 0, full).view([rows, len])
            * factors.narrow(0, 0, rows).view([rows, 1]);
        parts.push(head.view([full]));
    }
    if rem > 0 {
        parts.push(values.narrow(0, full, rem) * factors.get(rows));
    }
    Tensor::cat(&parts, 0)
}

impl Nf4Tensor {
    /// Quantize `w` as bitsandbytes does (see the module docs, steps 1–6).
    pub fn quantize(w: &Tensor, double_quant: bool) -> Result<Nf4Tensor> {
        let device = w.device();
        let x = w.f_reshape([-1])?.f_to_kind(Kind::Float)?; // (n)
        let n = x.size()[0];
        if n == 0 {
            return Err(EngineError::tensor(
                "nf4",
                "cannot quantize an empty tensor",
            ));
        }
        let (rem, full) = (n % BLOCK, n - n % BLOCK);
        let mut absmax_parts = Vec::new();
        let mut scaled_parts = Vec::new();
        if full > 0 {
            let blocks = x.narrow(0, 0, full).view([full / BLOCK, BLOCK]); // (blocks, 64)
            let am = blocks.abs().amax([-1].as_slice(), false); // (blocks)
                                                                // 1.0 / t = reciprocal(t) · 1.0 (torch `Tensor.__rtruediv__`)
            let inv = am.clamp_min(1e-38).reciprocal().view([-1, 1]);
            scaled_parts.push((blocks * inv).clamp(-1.0, 1.0).view([-1]));
            absmax_parts.push(am);
        }
        if rem > 0 {
            let tail = x.narrow(0, full, rem); // (rem)
            let am = tail.abs().max().clamp_min(1e-38);
            scaled_parts.push((&tail / &am).clamp(-1.0, 1.0));
            absmax_parts.push(am.unsqueeze(0));
        }
        let absmax = Tensor::cat(&absmax_parts, 0); // (blocks) fp32
        let mut scaled = Tensor::cat(&scaled_parts, 0); // (n)
        if n % 2 == 1 {
            scaled = Tensor::cat(&[scaled, Tensor::zeros([1], (Kind::Float, device))], 0);
        }
        let code = table(&NF4, device);
        let mids = (code.narrow(0, 0, 15) + code.narrow(0, 1, 15)) / 2.0; // (15)
        let q = scaled.bucketize(&mids, true, false); // int32, 0..=15
        let hi = q.slice(0, 0, None, 2);
        let lo = q.slice(0, 1, None, 2);
        let packed = (hi * 16 + lo).to_kind(Kind::Uint8).unsqueeze(1); // ((n+1)/2, 1)
        let absmax = if double_quant {
            double_quantize(&absmax)
        } else {
            Absmax::Plain(absmax)
        };
        Ok(Nf4Tensor {
            packed,
            absmax,
            shape: w.size(),
            dtype: w.kind(),
        })
    }

    /// The per-64 absmax (fp32 \[blocks\]); double-quantised: DYNAMIC_MAP\[q\] · absmax2 + offset.
    pub fn absmax_fp32(&self) -> Tensor {
        match &self.absmax {
            Absmax::Plain(a) => a.shallow_clone(),
            Absmax::Double {
                q,
                nested_absmax,
                offset,
            } => {
                let map = table(&DYNAMIC_MAP, q.device());
                let values = map.index_select(0, &q.to_kind(Kind::Int64)); // (blocks)
                times_block_factor(&values, nested_absmax, NESTED_BLOCK) + offset
            }
        }
    }

    /// The weight back, in the dtype it had (bitsandbytes `dequantize_4bit`).
    pub fn dequantize(&self) -> Tensor {
        let device = self.packed.device();
        let n: i64 = self.shape.iter().product();
        let bytes = self.packed.view([-1]).to_kind(Kind::Int); // ((n+1)/2)
        let hi = bytes.g_div_scalar_mode(16i64, "floor");
        let lo = bytes.remainder(16i64);
        let codes = Tensor::stack(&[hi, lo], 1).view([-1]).narrow(0, 0, n); // (n)
        let values = table(&NF4, device).index_select(0, &codes); // (n) fp32
        let out = times_block_factor(&values, &self.absmax_fp32(), BLOCK); // (n) fp32
        out.view(self.shape.as_slice()).to_kind(self.dtype)
    }

    pub fn out_features(&self) -> i64 {
        self.shape[0]
    }

    pub fn in_features(&self) -> i64 {
        self.shape[1]
    }
}

/// The tensors bitsandbytes saves for one 4-bit weight (`Params4bit` with its `QuantState`
/// as `QuantState.as_dict(packed=True)` writes it).
pub struct BnbParts {
    /// `weight`: uint8 \[(n+1)/2, 1\].
    pub packed: Tensor,
    /// `weight.absmax`: uint8 (double quantisation) or fp32 \[blocks\].
    pub absmax: Tensor,
    /// `weight.quant_map`: fp32 \[16\].
    pub quant_map: Tensor,
    /// `weight.nested_absmax` (fp32) and `weight.nested_quant_map` (fp32 \[256\]).
    pub nested: Option<(Tensor, Tensor)>,
    /// `weight.quant_state.bitsandbytes__<type>`: the JSON state as uint8 bytes.
    pub state: Tensor,
}

/// The JSON `quant_state` of a saved 4-bit weight.
#[derive(serde::Deserialize)]
struct QuantStateJson {
    quant_type: String,
    blocksize: i64,
    dtype: String,
    shape: Vec<i64>,
    #[serde(default)]
    nested_blocksize: Option<i64>,
    #[serde(default)]
    nested_offset: Option<f64>,
}

/// Whether `t` holds exactly the fp32 values of `bits`.
fn is_table(t: &Tensor, bits: &[u32]) -> bool {
    let t = t.to_kind(Kind::Float).to_device(Device::Cpu).view([-1]);
    let n = t.size()[0] as usize;
    n == bits.len() && (0..n).all(|i| (t.double_value(&[i as i64]) as f32).to_bits() == bits[i])
}

impl Nf4Tensor {
    /// A weight as a bitsandbytes checkpoint stores it (see the module docs); `name` is the
    /// weight's name for errors. Refused: FP4, a block other than 64 (or 256 nested), a code
    /// table other than NF4 / the dynamic map.
    pub fn from_bnb(name: &str, p: BnbParts) -> Result<Nf4Tensor> {
        let bad = |m: String| EngineError::tensor(name, m);
        let bytes: Vec<u8> = Vec::<u8>::try_from(p.state.to_kind(Kind::Uint8).view([-1]))
            .map_err(|e| bad(e.to_string()))?;
        let st: QuantStateJson = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("unreadable bitsandbytes quant_state: {e}")))?;
        if st.quant_type != "nf4" {
            return Err(bad(format!(
                "a bitsandbytes `{}` weight; the engine holds NF4 only",
                st.quant_type
            )));
        }
        if st.blocksize != BLOCK {
            return Err(bad(format!(
                "bitsandbytes blocksize {}; the engine's NF4 uses {BLOCK}",
                st.blocksize
            )));
        }
        if !is_table(&p.quant_map, &NF4) {
            return Err(bad("its quant_map is not bitsandbytes' NF4 table".into()));
        }
        let dtype = match st.dtype.as_str() {
            "float32" => Kind::Float,
            "bfloat16" => Kind::BFloat16,
            "float16" => Kind::Half,
            other => return Err(bad(format!("quant_state dtype `{other}`"))),
        };
        let n: i64 = st.shape.iter().product();
        let blocks = (n + BLOCK - 1) / BLOCK;
        if p.packed.size() != [(n + 1) / 2, 1] || p.absmax.size() != [blocks] {
            return Err(bad(format!(
                "packed {:?} / absmax {:?} do not fit shape {:?}",
                p.packed.size(),
                p.absmax.size(),
                st.shape
            )));
        }
        let absmax = match p.nested {
            None => Absmax::Plain(p.absmax.to_kind(Kind::Float)),
            Some((nested_absmax, nested_map)) => {
                if st.nested_blocksize != Some(NESTED_BLOCK) {
                    return Err(bad(format!(
                        "nested blocksize {:?}; the engine uses {NESTED_BLOCK}",
                        st.nested_blocksize
                    )));
                }
                if !is_table(&nested_map, &DYNAMIC_MAP) {
                    return Err(bad(
                        "its nested_quant_map is not bitsandbytes' signed dynamic map".into(),
                    ));
                }
                let offset = st
                    .nested_offset
                    .ok_or_else(|| bad("quant_state lacks nested_offset".into()))?;
                Absmax::Double {
                    q: p.absmax.to_kind(Kind::Uint8),
                    nested_absmax: nested_absmax.to_kind(Kind::Float),
                    // bitsandbytes keeps the offset as an fp32 tensor; the JSON holds its value
                    offset: Tensor::from(offset as f32).to_device(p.packed.device()),
                }
            }
        };
        Ok(Nf4Tensor {
            packed: p.packed.to_kind(Kind::Uint8),
            absmax,
            shape: st.shape,
            dtype,
        })
    }
}

/// Steps 5–6: (absmax − mean) quantized in 256-blocks to the dynamic map.
fn double_quantize(absmax: &Tensor) -> Absmax {
    let device = absmax.device();
    let offset = absmax.mean(Kind::Float); // fp32 scalar
    let d = absmax - &offset; // (blocks)
    let blocks = d.size()[0];
    let nb = (blocks + NESTED_BLOCK - 1) / NESTED_BLOCK;
    // pad the last 256-block with zeros: |0| never raises its max, and the padding is cut off
    let pad = Tensor::zeros([nb * NESTED_BLOCK - blocks], (Kind::Float, device));
    let rows = Tensor::cat(&[&d, &pad], 0).view([nb, NESTED_BLOCK]); // (nb, 256)
    let absmax2 = rows.abs().amax([-1].as_slice(), false); // (nb); C++: fmax over fabs
    let v = (rows / absmax2.view([nb, 1]))
        .view([-1])
        .narrow(0, 0, blocks); // C++: A[i] / absmax
                               // index(v) = #{m : t_m ≤ v}
    let thresholds = table(&DQ_THRESHOLDS, device);
    let q = v.searchsorted(&thresholds, false, true, "right", None::<Tensor>);
    Absmax::Double {
        q: q.to_kind(Kind::Uint8),
        nested_absmax: absmax2,
        offset,
    }
}

#[cfg(test)]
mod tests {
    // By full path: import tracing reads `super` here as this file's parent.
    use crate::engine::quant::nf4::*;

    #[test]
    fn tables_are_sorted_and_end_at_one() {
        let nf4: Vec<f32> = NF4.iter().map(|&b| f32::from_bits(b)).collect();
        let dynm: Vec<f32> = DYNAMIC_MAP.iter().map(|&b| f32::from_bits(b)).collect();
        assert!(nf4.windows(2).all(|w| w[0] < w[1]));
        assert!(dynm.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((nf4[0], nf4[7], nf4[15]), (-1.0, 0.0, 1.0));
        assert_eq!(dynm[255], 1.0);
    }

    #[test]
    fn round_trip_stays_within_half_a_code_step() {
        tch::manual_seed(1);
        let w = Tensor::randn([33, 70], (Kind::Float, Device::Cpu)) * 0.1;
        let q = Nf4Tensor::quantize(&w, true).unwrap();
        assert_eq!(q.packed.size(), [33 * 35, 1]);
        assert_eq!(q.absmax_fp32().size(), [(33 * 70 + 63) / 64]);
        let back = q.dequantize();
        assert_eq!(back.size(), w.size());
        // the widest NF4 gap is 0.304 (−1 → −0.696), so |w − ŵ| ≤ 0.152 · absmax (+ the
        // double-quantisation error of absmax, well under 1 %)
        let err = (&back - &w).abs().max().double_value(&[]);
        let amax = w.abs().max().double_value(&[]);
        assert!(err <= 0.16 * amax, "max error {err} vs absmax {amax}");
    }
}
