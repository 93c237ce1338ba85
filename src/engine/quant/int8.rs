//! LLM.int8 base weights (`load_in_8bit`), bit-compatible with bitsandbytes 0.50.2
//! `Linear8bitLt` as transformers builds it (`has_fp16_weights=False`,
//! `llm_int8_threshold = 6.0`).
//!
//! **Quantize** the weight W (out, in) once, at load (`Int8Params._quantize`, then
//! `int8_vectorwise_quant` in `backends/default/ops.py`):
//!   W16 = fp16(W); SCB_o = max_i |W16_oi| (fp32);
//!   CB_oi = int8(round(W16_oi · (reciprocal(SCB_o) · 127)))
//! — Python's `127.0 / t` is `reciprocal(t) · 127`, a reciprocal then a product.
//!
//! **Forward**, two paths (`autograd/_functions.py::matmul`):
//! - *MatMul8bitFp*, training on the CPU: Ŵ = CB · (SCB · (1/127)) computed in fp32 and
//!   stored in the input's dtype, then y = x·Ŵᵀ + b. Backward x̄ = ȳ·Ŵ.
//! - *MatMul8bitLt*, everything else (evaluation; training on a GPU). With A = x as rows:
//!   1. A16 = fp16(A); outlier columns J = { j : |A16_rj| ≥ threshold for some row r };
//!      those entries are zeroed before the statistics (`int8_vectorwise_quant`).
//!   2. SCA_r = max_j |A16_rj| (fp32); CA_rj = int8(round(A16_rj · reciprocal(SCA_r) · 127)),
//!      and CA[:, J] = 0 when A has more than one row.
//!   3. C = CA·CBᵀ with exact int32 accumulation (`int8_linear_matmul`).
//!   4. y = C · (SCA ⊗ SCB) · 6.200124e-05 (≈ 1/127², as fp32) + b, cast to x's dtype
//!      (`int8_mm_dequant`).
//!   5. The outlier columns in x's own dtype: y += A[:, J] · (CB[:, J] · SCB · 0.007874016)ᵀ,
//!      one `addmm` (`int8_mixed_scaled_mm`).
//!
//!   Its backward is MatMul8bitFp's: x̄ = ȳ·Ŵ (no gradient reaches the frozen weight).
//!
//! The integer product is exact here on every device; bitsandbytes' portable CPU fallback
//! (no AVX-512) multiplies in fp32, which is exact while in·127² < 2²⁴ (in ≤ 1040).

use crate::engine::error::{EngineError, Result};
use tch::{Device, Kind, Tensor};

/// transformers' `BitsAndBytesConfig(llm_int8_threshold=6.0)`.
pub const DEFAULT_THRESHOLD: f64 = 6.0;

/// `int8_mm_dequant`'s constant, 1/127² rounded as bitsandbytes writes it.
const INV_127_SQUARED: f64 = 6.200124e-05;
/// `int8_vectorwise_dequant`'s constant, 1/127 as bitsandbytes writes it.
const INV_127: f64 = 7.874015718698502e-3;

/// A frozen weight in LLM.int8 form.
pub struct Int8Tensor {
    /// int8 (out, in): the row-wise codes (`CB`).
    pub cb: Tensor,
    /// fp32 (out): each row's absmax in fp16 (`SCB`).
    pub scb: Tensor,
    /// Activation values at or above this magnitude go through the 16-bit outlier product.
    pub threshold: f64,
}

impl Int8Tensor {
    /// Quantise a dense weight (any float dtype) as `Int8Params` does when it reaches its
    /// device.
    pub fn quantize(w: &Tensor, threshold: f64) -> Result<Int8Tensor> {
        if w.dim() != 2 {
            return Err(EngineError::tensor(
                "int8",
                format!("LLM.int8 quantises 2-D weights, got shape {:?}", w.size()),
            ));
        }
        let _guard = tch::no_grad_guard();
        let (cb, scb) = rowwise_quantize(&w.to_kind(Kind::Half));
        Ok(Int8Tensor { cb, scb, threshold })
    }

    pub fn out_features(&self) -> i64 {
        self.cb.size()[0]
    }

    pub fn in_features(&self) -> i64 {
        self.cb.size()[1]
    }

    /// Ŵ = CB · (SCB · (1/127)) in fp32, stored in `kind` (MatMul8bitFp, and the weight
    /// both backward passes multiply by).
    pub fn dequantize(&self, kind: Kind) -> Tensor {
        let scale = self.scb.unsqueeze(1) * (1.0 / 127.0); // (out, 1) fp32
        (self.cb.to_kind(Kind::Float) * scale).to_kind(kind)
    }

    /// y = x·Wᵀ + b through the path bitsandbytes takes: MatMul8bitFp when training on the
    /// CPU, MatMul8bitLt otherwise (its value; the gradient is x̄ = ȳ·Ŵ either way).
    pub fn linear(&self, xs: &Tensor, bias: Option<&Tensor>, training: bool) -> Tensor {
        let dense = |xs: &Tensor| xs.linear(&self.dequantize(xs.kind()), bias);
        if training && xs.device() == Device::Cpu {
            return dense(xs);
        }
        let y = tch::no_grad(|| self.matmul_lt(xs, bias));
        if training && xs.requires_grad() {
            // y + (d − d) = y exactly, and the gradient flows through d = x·Ŵᵀ alone: the
            // value of MatMul8bitLt with the backward of its autograd Function
            let d = dense(xs);
            y + (&d - d.detach())
        } else {
            y
        }
    }

    /// MatMul8bitLt's forward value (steps 1–5 of the module docs).
    fn matmul_lt(&self, xs: &Tensor, bias: Option<&Tensor>) -> Tensor {
        let mut shape = xs.size();
        let a = xs.reshape([-1, self.in_features()]);
        let (ca, sca, outlier_cols) = quantize_activations(&a, self.threshold);
        let acc = int8_gemm(&ca, &self.cb); // int32 (rows, out)
        let mut y = acc * (sca.unsqueeze(1) * self.scb.unsqueeze(0)) * INV_127_SQUARED;
        if let Some(b) = bias {
            y += b;
        }
        let mut y = y.to_kind(xs.kind());
        if let Some(cols) = outlier_cols {
            let sub_a = a.index_select(1, &cols);
            let sub_b = (self.cb.index_select(1, &cols) * self.scb.view([-1, 1]) * INV_127)
                .to_kind(xs.kind())
                .tr();
            y = y.addmm(&sub_a, &sub_b);
        }
        shape.pop();
        shape.push(self.out_features());
        y.reshape(shape)
    }
}

/// `int8_vectorwise_quant(A16)` without outliers: codes and fp32 row absmax.
fn rowwise_quantize(a16: &Tensor) -> (Tensor, Tensor) {
    let stats = a16
        .abs()
        .amax([1i64].as_slice(), false)
        .to_kind(Kind::Float); // (rows)
    let scale = stats.unsqueeze(1).reciprocal() * 127.0; // (rows, 1) fp32
    let codes = (a16 * scale).round().to_kind(Kind::Int8);
    (codes, stats)
}

/// `int8_vectorwise_quant(fp16(A), threshold)`: the codes with the outlier columns zeroed,
/// the row statistics taken without the outliers, and the outlier columns (None when there
/// are none).
fn quantize_activations(a: &Tensor, threshold: f64) -> (Tensor, Tensor, Option<Tensor>) {
    let a16 = a.to_kind(Kind::Half);
    if threshold <= 0.0 {
        let (codes, stats) = rowwise_quantize(&a16);
        return (codes, stats, None);
    }
    let outliers = a16.abs().ge(threshold);
    let cols = outliers
        .any_dims([0i64].as_slice(), false)
        .nonzero()
        .view([-1]);
    if cols.numel() == 0 {
        let (codes, stats) = rowwise_quantize(&a16);
        return (codes, stats, None);
    }
    let (mut codes, stats) = rowwise_quantize(&a16.masked_fill(&outliers, 0.0));
    if a16.size()[0] > 1 {
        let _ = codes.index_fill_(1, &cols, 0);
    }
    (codes, stats, Some(cols))
}

/// C = A·Bᵀ for int8 A (rows, k) and B (out, k), int32 and exact: cuBLASLt's int8 GEMM
/// (`torch._int_mm`) on a GPU where its shape rules hold, fp64 otherwise (exact: every
/// partial sum is an integer below 2⁵³).
fn int8_gemm(a: &Tensor, b: &Tensor) -> Tensor {
    let (rows, k) = (a.size()[0], a.size()[1]);
    let out = b.size()[0];
    if a.device().is_cuda() && rows > 16 && k % 8 == 0 && out % 8 == 0 {
        return a.internal_int_mm(&b.tr());
    }
    a.to_kind(Kind::Double)
        .matmul(&b.to_kind(Kind::Double).tr())
        .to_kind(Kind::Int)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], rows: i64) -> Tensor {
        Tensor::from_slice(v).view([rows, -1])
    }

    #[test]
    fn rows_quantise_to_their_absmax() {
        let w = t(&[0.5, -1.0, 0.25, 2.0, 0.0, -0.5], 2);
        let q = Int8Tensor::quantize(&w, DEFAULT_THRESHOLD).unwrap();
        assert_eq!(Vec::<f32>::try_from(&q.scb).unwrap(), vec![1.0, 2.0]);
        // 0.5·127 = 63.5 rounds to even (64); 0.25·127 = 31.75 → 32; −0.5/2·127 = −31.75 → −32
        assert_eq!(
            Vec::<i8>::try_from(q.cb.view([-1])).unwrap(),
            vec![64, -127, 32, 127, 0, -32]
        );
        let back = Vec::<f32>::try_from(q.dequantize(Kind::Float).view([-1])).unwrap();
        assert!((back[0] - 64.0 / 127.0).abs() < 1e-7 && (back[3] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn outlier_columns_are_multiplied_in_16_bits() {
        // column 1 holds an outlier (7 ≥ 6): its product is exact, the rest goes through int8
        let w = t(&[1.0, 0.5, -1.0, 0.25, 2.0, 1.0], 2);
        let q = Int8Tensor::quantize(&w, DEFAULT_THRESHOLD).unwrap();
        let x = t(&[0.3, 7.0, -0.2, 0.1, 1.0, 0.4], 2);
        let y = q.linear(&x, None, false);
        let dense = x.linear::<Tensor>(&q.dequantize(Kind::Float), None);
        let err = (&y - &dense).abs().max().double_value(&[]);
        assert!(err < 0.05, "int8 path far from the dense product: {err}");
        // with the outliers quantised like the rest (no threshold), row 0's scale is set by
        // the 7.0 and its small entries lose their precision: the 16-bit branch does better
        let plain = Int8Tensor {
            threshold: 0.0,
            ..Int8Tensor::quantize(&w, 0.0).unwrap()
        };
        let err_plain = (plain.linear(&x, None, false) - &dense)
            .abs()
            .max()
            .double_value(&[]);
        assert!(err < err_plain, "{err} vs {err_plain}");
        let (codes, _, cols) = quantize_activations(&x, DEFAULT_THRESHOLD);
        assert_eq!(Vec::<i64>::try_from(cols.unwrap()).unwrap(), vec![1]);
        assert_eq!(Vec::<i8>::try_from(codes.select(1, 1)).unwrap(), vec![0, 0]);
    }

    #[test]
    fn training_on_the_cpu_is_the_dense_product_and_its_gradient() {
        let w = Tensor::randn([6, 8], (Kind::Float, Device::Cpu));
        let q = Int8Tensor::quantize(&w, DEFAULT_THRESHOLD).unwrap();
        let x = Tensor::randn([3, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = q.linear(&x, None, true);
        let dense = x.linear::<Tensor>(&q.dequantize(Kind::Float), None);
        assert!(y.equal(&dense));
        y.sum(Kind::Float).backward();
        let expected =
            Tensor::ones([3, 6], (Kind::Float, Device::Cpu)).matmul(&q.dequantize(Kind::Float));
        assert!(x.grad().allclose(&expected, 1e-6, 1e-6, false));
    }

    #[test]
    fn the_int8_gemm_is_exact() {
        let a = Tensor::from_slice(&[127i8, -127, 127, 1]).view([2, 2]);
        let b = Tensor::from_slice(&[127i8, 127, -128, 3]).view([2, 2]);
        let c = Vec::<i32>::try_from(int8_gemm(&a, &b).view([-1])).unwrap();
        assert_eq!(c, vec![0, -16637, 16256, -16253]);
    }
}
