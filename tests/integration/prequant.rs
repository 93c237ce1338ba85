//! Pre-quantised bitsandbytes NF4 bases (`unsloth/*-bnb-4bit`): fixtures/models/tiny-llama-bnb-4bit
//! is tiny-llama saved by transformers + bitsandbytes 0.50.2 as a 4-bit model
//! (`scripts/reference/make_tiny_bnb_4bit.py`). The engine reads its NF4 tensors as stored;
//! they must equal, byte for byte, the engine's own quantisation of tiny-llama (which is
//! bitsandbytes'), and a QLoRA run on it must equal the QLoRA run on tiny-llama.

use crate::harness::repo;
use crate::run::{options, read, tensors, train, ENGINE};
use tch::{Device, Kind, Tensor};
use tunebridge::engine;
use tunebridge::engine::model::AttentionImpl;
use tunebridge::engine::quant::{QuantFormat, QuantizedWeight};
use tunebridge::ir::{BaseWeights, Method};

fn bits(t: &Tensor) -> Vec<u8> {
    let t = t.contiguous();
    let n = t.numel() * t.kind().elt_size_in_bytes();
    let mut out = vec![0u8; n];
    t.copy_data_u8(&mut out, t.numel());
    out
}

#[test]
fn a_bnb_4bit_checkpoint_loads_as_the_engines_own_nf4() {
    let _lock = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let load = |dir: &str| {
        engine::model::load(
            &repo().join(dir),
            Kind::Float,
            Device::Cpu,
            AttentionImpl::Sdpa,
        )
        .unwrap()
    };
    let mut pre = load("fixtures/models/tiny-llama-bnb-4bit");
    let mut own = load("fixtures/models/tiny-llama");
    assert_eq!(
        own.quantize_linears(QuantFormat::Nf4 { double_quant: true }, &[])
            .unwrap(),
        14
    );
    let collect = |m: &mut engine::model::ModelForCausalLM| {
        let mut v = Vec::new();
        m.for_each_linear_mut(|name, lin| {
            match &lin.quant {
                Some(QuantizedWeight::Nf4(q)) => v.push((
                    name.to_string(),
                    bits(&q.packed),
                    bits(&q.absmax_fp32()),
                    bits(&q.dequantize()),
                )),
                Some(QuantizedWeight::Int8(_)) => unreachable!("NF4 only here"),
                None => v.push((name.to_string(), vec![], vec![], bits(&lin.weight))),
            }
            Ok(())
        })
        .unwrap();
        v
    };
    let got = collect(&mut pre);
    let want = collect(&mut own);
    assert_eq!(got.len(), want.len());
    let mut quantised = 0;
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        assert_eq!(g.1, w.1, "{}: packed codes", g.0);
        assert_eq!(g.2, w.2, "{}: absmax", g.0);
        assert_eq!(g.3, w.3, "{}: dequantised weight", g.0);
        quantised += usize::from(!g.1.is_empty());
    }
    // 2 layers × 7 projections; lm_head stays dense in both
    assert_eq!(quantised, 14);
}

#[test]
fn qlora_on_a_bnb_4bit_base_equals_qlora_on_its_16_bit_source() {
    let _lock = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let (fw, mut resolved) = read("golden/runs/axolotl-lora-llama/config.yaml");
    resolved.spec.training.max_steps = 6;
    resolved.spec.adapter.method = Method::Qlora;
    resolved.spec.quantization.base_weights = BaseWeights::Nf4;
    resolved.spec.quantization.double_quant = true;
    resolved.spec.quantization.block_size = 64;
    let a = tempfile::tempdir().unwrap();
    let own = train(&resolved, &options(fw, a.path()));
    let mut pre = resolved.clone();
    pre.spec.model.base = "fixtures/models/tiny-llama-bnb-4bit".into();
    pre.spec.model.tokenizer = String::new();
    let b = tempfile::tempdir().unwrap();
    let got = train(&pre, &options(fw, b.path()));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got.losses), bits(&own.losses));
    let (ta, tb) = (
        tensors(&a.path().join("adapter_model.safetensors")),
        tensors(&b.path().join("adapter_model.safetensors")),
    );
    assert_eq!(ta.len(), tb.len());
    for (k, t) in &ta {
        assert!(t.equal(&tb[k]), "{k}");
    }
    // a LoRA (not QLoRA) run keeps the checkpoint's 4-bit weights too
    pre.spec.adapter.method = Method::Lora;
    pre.spec.quantization.base_weights = BaseWeights::None;
    let c = tempfile::tempdir().unwrap();
    let lora = train(&pre, &options(fw, c.path()));
    assert_eq!(bits(&lora.losses), bits(&own.losses));
}
