//! The bitsandbytes optimizer against bitsandbytes 0.50.2 itself: golden/optim/adamw8bit.safetensors,
//! made on CPU by scripts/reference/bnb_adamw8bit_golden.py. Every comparison is bit-exact.

use super::adamw::AdamWConfig;
use super::blockwise::{dynamic_map, Codebook};
use super::bnb::{BnbAdamW, BnbAdamWConfig, States};
use super::select::{Optimizer, OptimizerKind, Trainable};
use indexmap::IndexMap;
use tch::{Kind, Tensor};

const STEPS: usize = 4;
const WD: f64 = 0.1;

fn golden() -> IndexMap<String, Tensor> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/optim/adamw8bit.safetensors");
    crate::engine::io::read_safetensors(&path).expect("golden/optim/adamw8bit.safetensors")
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

#[test]
fn dynamic_maps_are_bitsandbytes_maps() {
    let g = golden();
    assert_eq!(bit_diffs(&dynamic_map(true), &f32s(&g, "map.signed")), 0);
    assert_eq!(bit_diffs(&dynamic_map(false), &f32s(&g, "map.unsigned")), 0);
}

#[test]
fn quantize_blockwise_matches_the_cpu_kernel() {
    let g = golden();
    for (prefix, book) in [
        ("quant", Codebook::signed()),
        ("uquant", Codebook::unsigned()),
    ] {
        let x = f32s(&g, &format!("{prefix}.x"));
        let mut q = vec![0u8; x.len()];
        let mut absmax = vec![0f32; x.len().div_ceil(256)];
        book.quantize(&x, &mut q, &mut absmax);
        let want_q = u8s(&g, &format!("{prefix}.q"));
        let differ = q.iter().zip(&want_q).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{prefix}: {differ} indices differ");
        assert_eq!(
            bit_diffs(&absmax, &f32s(&g, &format!("{prefix}.absmax"))),
            0
        );
    }
}

/// Run `optim_bits` over the golden's two tensors and compare every step.
fn replay(optim_bits: u8, tag: &str) {
    let g = golden();
    let lrs = Vec::<f64>::try_from(&g["lr"]).expect("f64");
    let a = Tensor::from_slice(&f32s(&g, "a.init")).view([97, 45]);
    let b = Tensor::from_slice(&f32s(&g, "b.init")).view([40, 24]);
    let mut opt = BnbAdamW::new(
        BnbAdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            optim_bits,
            min_8bit_size: 4096,
        },
        vec![
            ("a".into(), a.shallow_clone(), WD, false),
            ("b".into(), b.shallow_clone(), WD, false),
        ],
    );
    for k in 1..=STEPS {
        for (name, p, shape) in [("a", &a, [97i64, 45]), ("b", &b, [40, 24])] {
            let grad = Tensor::from_slice(&f32s(&g, &format!("grad.{name}.{k}"))).view(shape);
            let mut pg = p.grad();
            if pg.defined() {
                pg.copy_(&grad);
            } else {
                // a gradient without a backward: the same `set_grad` torch's `p.grad = …` does
                let p = p.shallow_clone();
                let _ = p.set_requires_grad(true);
                let s = (&p * &grad).sum(Kind::Float);
                s.backward();
                let _ = p.set_requires_grad(false);
            }
        }
        opt.step(lrs[k - 1]).expect("step");
        for (name, p) in [("a", &a), ("b", &b)] {
            let got = Vec::<f32>::try_from(p.reshape([-1])).expect("f32");
            let d = bit_diffs(&got, &f32s(&g, &format!("{tag}.{name}.{k}")));
            assert_eq!(d, 0, "{tag} {name} step {k}: {d} parameters differ");
        }
        for s in &opt.params {
            let key = |what: &str| format!("{tag}.{}.{what}.{k}", s.name);
            match &s.states {
                States::Blockwise {
                    state1,
                    state2,
                    absmax1,
                    absmax2,
                } => {
                    assert_eq!(optim_bits, 8);
                    assert_eq!(s.name, "a", "only the 4365-element tensor is 8-bit");
                    assert!(
                        state1 == &u8s(&g, &key("state1")),
                        "{} state1 step {k}",
                        s.name
                    );
                    assert!(
                        state2 == &u8s(&g, &key("state2")),
                        "{} state2 step {k}",
                        s.name
                    );
                    assert_eq!(bit_diffs(absmax1, &f32s(&g, &key("absmax1"))), 0);
                    assert_eq!(bit_diffs(absmax2, &f32s(&g, &key("absmax2"))), 0);
                }
                States::Fp32 { state1, state2 } => {
                    assert!(optim_bits == 32 || s.name == "b");
                    assert_eq!(bit_diffs(state1, &f32s(&g, &key("state1"))), 0);
                    assert_eq!(bit_diffs(state2, &f32s(&g, &key("state2"))), 0);
                }
            }
        }
    }
}

#[test]
fn adamw_8bit_matches_bitsandbytes_bit_for_bit() {
    // `a` (4365 elements: 17 full blocks, one of 13, one all-zero gradient block) takes the
    // blockwise path; `b` (960 < 4096) the 32-bit fallback
    replay(8, "bit8");
}

#[test]
fn paged_adamw_32bit_matches_bitsandbytes_bit_for_bit() {
    replay(32, "bit32");
}

/// Two steps, a state round trip through `state_tensors`/`load_state`, two more steps: the
/// same parameters as four steps in one go.
#[test]
fn state_round_trip_resumes_bit_identically() {
    let g = golden();
    let lrs = Vec::<f64>::try_from(&g["lr"]).expect("f64");
    let run = |split: bool| -> Vec<f32> {
        let a = Tensor::from_slice(&f32s(&g, "a.init")).view([97, 45]);
        let make = |a: &Tensor| {
            Optimizer::new(
                OptimizerKind::of("adamw_8bit").expect("supported"),
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
            let grad = Tensor::from_slice(&f32s(&g, &format!("grad.a.{k}"))).view([97, 45]);
            let p = a.shallow_clone();
            let _ = p.set_requires_grad(true);
            (&p * &grad).sum(Kind::Float).backward();
            let _ = p.set_requires_grad(false);
            opt.step(lrs[k - 1]).expect("step");
            opt.zero_grad();
        }
        Vec::<f32>::try_from(a.reshape([-1])).expect("f32")
    };
    let (whole, resumed) = (run(false), run(true));
    assert_eq!(bit_diffs(&resumed, &whole), 0);
    assert_eq!(bit_diffs(&whole, &f32s(&g, "bit8.a.4")), 0);
}

#[test]
fn optimizer_names_select_the_right_update() {
    assert_eq!(
        OptimizerKind::of("adamw_torch_fused").ok(),
        Some(OptimizerKind::TorchAdamW)
    );
    for name in ["adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit"] {
        assert_eq!(
            OptimizerKind::of(name).ok(),
            Some(OptimizerKind::BnbAdamW { optim_bits: 8 })
        );
    }
    assert_eq!(
        OptimizerKind::of("paged_adamw_32bit").ok(),
        Some(OptimizerKind::BnbAdamW { optim_bits: 32 })
    );
    let err = OptimizerKind::of("lion_8bit")
        .expect_err("not implemented")
        .to_string();
    assert!(
        err.contains("optimizer.name") && err.contains("paged_adamw_32bit"),
        "{err}"
    );
}

#[test]
fn forced_32bit_and_small_tensors_keep_float_states() {
    // HF Trainer's `nn.Embedding` override (`force_32bit`) and bitsandbytes' min_8bit_size
    let big = Tensor::zeros([64, 64], (Kind::Float, tch::Device::Cpu));
    let small = Tensor::zeros([63, 64], (Kind::Float, tch::Device::Cpu));
    let opt = BnbAdamW::new(
        BnbAdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            optim_bits: 8,
            min_8bit_size: 4096,
        },
        vec![
            (
                "model.embed_tokens.weight".into(),
                big.shallow_clone(),
                0.0,
                true,
            ),
            ("q".into(), big.shallow_clone(), 0.0, false),
            ("k".into(), small, 0.0, false),
        ],
    );
    let blockwise: Vec<bool> = opt
        .params
        .iter()
        .map(|s| matches!(s.states, States::Blockwise { .. }))
        .collect();
    assert_eq!(blockwise, [false, true, false]);
}
