//! torchao's low-bit AdamW against torchao 0.17 itself: golden/optim/torchao.safetensors, made
//! on CPU by scripts/reference/torchao_optim_golden.py with the step torch.compile'd as HF
//! Trainer runs it. Every comparison is bit-exact.

use super::adamw::AdamWConfig;
use super::ao_quant::{Bits, QMap};
use super::select::{Optimizer, OptimizerKind, Trainable};
use super::torchao::{quantises, AoAdamW, AoAdamWConfig, Moment};
use indexmap::IndexMap;
use tch::{Kind, Tensor};

const STEPS: usize = 5;
const WD: f64 = 0.01;
const BLOCK: usize = 256;

fn golden() -> IndexMap<String, Tensor> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/optim/torchao.safetensors");
    crate::engine::io::read_safetensors(&path).expect("golden/optim/torchao.safetensors")
}

fn f32s(g: &IndexMap<String, Tensor>, key: &str) -> Vec<f32> {
    Vec::<f32>::try_from(g.get(key).unwrap_or_else(|| panic!("{key}"))).expect("f32")
}

fn u8s(g: &IndexMap<String, Tensor>, key: &str) -> Vec<u8> {
    Vec::<u8>::try_from(g.get(key).unwrap_or_else(|| panic!("{key}"))).expect("u8")
}

/// Count of elements whose bits differ (f32 compared by bit pattern).
fn bit_diffs(got: &[f32], want: &[f32]) -> usize {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count()
}

fn bits_of(tag: u32) -> Bits {
    if tag == 8 {
        Bits::Eight
    } else {
        Bits::Four
    }
}

#[test]
fn quantisation_maps_are_torchaos() {
    let g = golden();
    for tag in [8, 4] {
        for (signed, s) in [(true, "signed"), (false, "unsigned")] {
            let map = QMap::for_state(bits_of(tag), signed);
            assert_eq!(map.values.len(), 1 << tag);
            let d = bit_diffs(&map.values, &f32s(&g, &format!("map{tag}.{s}")));
            assert_eq!(d, 0, "map{tag}.{s}: {d} values differ");
        }
    }
}

#[test]
fn quantise_and_dequantise_match_torchao() {
    // 4 blocks: N(0, 1e-3), N(0, 10), all zero (scale clipped to 1e-12), N(0, 1e-7)
    let g = golden();
    let x = f32s(&g, "quant.x");
    let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    for tag in [8, 4] {
        let bits = bits_of(tag);
        for (signed, s, input) in [(true, "s", &x), (false, "u", &ax)] {
            let map = QMap::for_state(bits, signed);
            let mut codes = vec![0u8; bits.code_bytes(x.len())];
            let mut scale = vec![0f32; x.len() / BLOCK];
            map.quantize(input, BLOCK, &mut codes, &mut scale);
            let key = |what: &str| format!("q{tag}.{s}.{what}");
            let want = u8s(&g, &key("codes"));
            let differ = codes.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{}: {differ} code bytes differ", key("codes"));
            assert_eq!(
                bit_diffs(&scale, &f32s(&g, &key("scale"))),
                0,
                "{}",
                key("scale")
            );
            let mut deq = vec![0f32; x.len()];
            map.dequantize(&codes, &scale, BLOCK, &mut deq);
            assert_eq!(bit_diffs(&deq, &f32s(&g, &key("deq"))), 0, "{}", key("deq"));
        }
    }
}

const SHAPES: [(&str, &[i64]); 3] = [("a", &[64, 128]), ("b", &[32, 64]), ("c", &[4100])];

/// Give `p` the gradient `grad` (a `p.grad = …` without a backward).
fn set_grad(p: &Tensor, grad: &Tensor) {
    let mut pg = p.grad();
    if pg.defined() {
        pg.copy_(grad);
    } else {
        let p = p.shallow_clone();
        let _ = p.set_requires_grad(true);
        (&p * grad).sum(Kind::Float).backward();
        let _ = p.set_requires_grad(false);
    }
}

/// Run torchao AdamW{tag}bit over the golden's three tensors and compare every step.
fn replay(tag: u32) {
    let g = golden();
    let lrs = Vec::<f64>::try_from(&g["lr"]).expect("f64");
    let params: Vec<Tensor> = SHAPES
        .iter()
        .map(|(n, s)| Tensor::from_slice(&f32s(&g, &format!("{n}.init"))).view(*s))
        .collect();
    let mut opt = AoAdamW::new(
        AoAdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            bits: bits_of(tag),
            block_size: BLOCK,
        },
        SHAPES
            .iter()
            .zip(&params)
            .map(|((n, _), p)| {
                // `b` is in the golden's weight_decay=0 group
                let wd = if *n == "b" { 0.0 } else { WD };
                (n.to_string(), p.shallow_clone(), wd)
            })
            .collect(),
    );
    for k in 1..=STEPS {
        for ((n, s), p) in SHAPES.iter().zip(&params) {
            set_grad(
                p,
                &Tensor::from_slice(&f32s(&g, &format!("grad.{n}.{k}"))).view(*s),
            );
        }
        opt.step(lrs[k - 1]).expect("step");
        for ((n, _), p) in SHAPES.iter().zip(&params) {
            let got = Vec::<f32>::try_from(p.reshape([-1])).expect("f32");
            let d = bit_diffs(&got, &f32s(&g, &format!("bit{tag}.{n}.{k}")));
            assert_eq!(d, 0, "bit{tag} {n} step {k}: {d} parameters differ");
        }
        for s in &opt.params {
            for (m, state) in [("exp_avg", &s.exp_avg), ("exp_avg_sq", &s.exp_avg_sq)] {
                let key = |what: &str| format!("bit{tag}.{}.{m}{what}.{k}", s.name);
                match state {
                    Moment::Quantised { codes, scale } => {
                        assert_eq!(s.name, "a", "only the 8192-element tensor is quantised");
                        assert!(
                            codes == &u8s(&g, &key(".codes")),
                            "{} step {k}",
                            key(".codes")
                        );
                        assert_eq!(bit_diffs(scale, &f32s(&g, &key(".scale"))), 0);
                    }
                    Moment::Plain(x) => {
                        assert_ne!(s.name, "a");
                        assert_eq!(bit_diffs(x, &f32s(&g, &key(""))), 0, "{}", key(""));
                    }
                }
            }
        }
    }
}

#[test]
fn adamw_8bit_matches_torchao_bit_for_bit() {
    // `a` (8192 elements, 32 blocks) quantised; `b` (2048 < 4096) and `c` (4100, not a
    // multiple of 256) plain f32
    replay(8);
}

#[test]
fn adamw_4bit_matches_torchao_bit_for_bit() {
    replay(4);
}

/// Two steps, a state round trip through `state_tensors`/`load_state`, three more steps: the
/// same parameters as five steps in one go.
#[test]
fn state_round_trip_resumes_bit_identically() {
    let g = golden();
    let lrs = Vec::<f64>::try_from(&g["lr"]).expect("f64");
    for tag in [8, 4] {
        let run = |split: bool| -> Vec<f32> {
            let a = Tensor::from_slice(&f32s(&g, "a.init")).view([64, 128]);
            let make = |a: &Tensor| {
                let name = format!("adamw_{tag}bit_torchao");
                Optimizer::new(
                    OptimizerKind::of(&name).expect("supported"),
                    AdamWConfig {
                        beta1: 0.9,
                        beta2: 0.999,
                        eps: 1e-8,
                    },
                    vec![Trainable {
                        name: "a".into(),
                        tensor: a.shallow_clone(),
                        weight_decay: WD,
                        force_32bit: false,
                    }],
                )
            };
            let mut opt = make(&a);
            for k in 1..=STEPS {
                if split && k == 3 {
                    let saved = opt.state_tensors();
                    opt = make(&a);
                    opt.load_state(&saved.into_iter().collect()).expect("load");
                }
                let grad = Tensor::from_slice(&f32s(&g, &format!("grad.a.{k}"))).view([64, 128]);
                set_grad(&a, &grad);
                opt.step(lrs[k - 1]).expect("step");
                opt.zero_grad();
            }
            Vec::<f32>::try_from(a.reshape([-1])).expect("f32")
        };
        let (whole, resumed) = (run(false), run(true));
        assert_eq!(bit_diffs(&resumed, &whole), 0, "{tag}-bit");
        assert_eq!(
            bit_diffs(&whole, &f32s(&g, &format!("bit{tag}.a.{STEPS}"))),
            0
        );
    }
}

#[test]
fn names_and_the_quantisation_rule() {
    assert_eq!(
        OptimizerKind::of("adamw_8bit_torchao").ok(),
        Some(OptimizerKind::TorchaoAdamW { bits: Bits::Eight })
    );
    assert_eq!(
        OptimizerKind::of("adamw_4bit_torchao").ok(),
        Some(OptimizerKind::TorchaoAdamW { bits: Bits::Four })
    );
    let err = OptimizerKind::of("adamw_fp8_torchao")
        .expect_err("not implemented")
        .to_string();
    assert!(err.contains("adamw_4bit_torchao"), "{err}");
    // numel ≥ 4096 and a multiple of the block size
    assert!(quantises(4096, 256));
    assert!(!quantises(4096 - 256, 256));
    assert!(!quantises(4100, 256));
    assert!(quantises(4224, 128) && !quantises(4224, 256));
}
