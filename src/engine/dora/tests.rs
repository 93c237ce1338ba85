//! DoRA forward against the closed form W' = m ⊙ (W + s·B·A)/‖W + s·B·A‖, and its backward
//! against central finite differences with the norm held constant (both frameworks detach it).

use super::*;
use tch::{Device, Kind};

const S: f64 = 2.0; // α/R

struct Case {
    x: Tensor, // (2, 3, in)
    w: Tensor, // (out, in)
    bias: Tensor,
    a: Tensor,
    b: Tensor,
    m: Tensor,
}

/// Fixed pseudo-random values sin(1 + 7.3·i + phase), without the global RNG (the unit tests
/// run in parallel threads and would race on it).
fn values(shape: &[i64], phase: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    (Tensor::arange(n, (Kind::Double, Device::Cpu)) * 7.3 + 1.0 + phase)
        .sin()
        .view(shape)
}

fn case() -> Case {
    let (d_in, d_out, r) = (6, 5, 3);
    let b = values(&[d_out, r], 0.1) * 0.3; // non-zero: the norm sees B·A
    let a = values(&[r, d_in], 0.2) * 0.3;
    let w = values(&[d_out, d_in], 0.3);
    // a magnitude off ‖W + sBA‖, as after some training
    let m = initial_magnitude(&w, &a, &b, S) * (values(&[d_out], 0.4) * 0.5 + 1.0);
    Case {
        x: values(&[2, 3, d_in], 0.5),
        w,
        bias: values(&[d_out], 0.6),
        a,
        b,
        m,
    }
}

fn forward(c: &Case, style: Style, x_lora: &Tensor, dropped: bool) -> Tensor {
    let base = c.x.linear(&c.w, Some(&c.bias));
    let d = Dora {
        magnitude: c.m.shallow_clone(),
        style,
    };
    d.forward(&Inputs {
        base: &base,
        x: x_lora,
        weight: &c.w,
        bias: Some(&c.bias),
        a: &c.a,
        b: &c.b,
        scale: S,
        dropped,
    })
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// W' = m ⊙ V / ‖V‖_row with V = W + s·B·A, and k = m / ‖V‖.
fn closed_form(c: &Case) -> (Tensor, Tensor) {
    let v = &c.w + c.b.matmul(&c.a) * S;
    let n = v
        .square()
        .sum_dim_intlist([1i64].as_slice(), true, Kind::Double)
        .sqrt();
    let k = c.m.view([-1, 1]) / n;
    (&k * v, k.view([-1]))
}

#[test]
fn the_forward_is_the_decomposed_weight() {
    let c = case();
    let (w_dora, k) = closed_form(&c);
    // TorchTune scales the bias by k too; PEFT keeps it
    let tt = forward(&c, Style::TorchTune, &c.x, false);
    assert!(max_diff(&tt, &(c.x.linear::<Tensor>(&w_dora, None) + &k * &c.bias)) < 1e-12);
    let peft = forward(&c, Style::Peft, &c.x, false);
    assert!(max_diff(&peft, &c.x.linear(&w_dora, Some(&c.bias))) < 1e-12);
}

#[test]
fn with_dropout_only_the_lora_path_sees_the_dropped_input() {
    let c = case();
    let (_, k) = closed_form(&c);
    let keep = values(&c.x.size(), 0.7).gt(0.0).to_kind(Kind::Double); // a dropout mask, p = ½
    let xd = &c.x * keep * 2.0;
    let lora = xd.linear::<Tensor>(&c.a, None).linear::<Tensor>(&c.b, None) * S;
    let full = c.x.linear(&c.w, Some(&c.bias));
    // TorchTune: k ⊙ (W·x + b) + k ⊙ s·B·A·x̃
    let tt = forward(&c, Style::TorchTune, &xd, true);
    assert!(max_diff(&tt, &(&k * &full + &k * &lora)) < 1e-12);
    // PEFT: W·x + b + (k − 1) ⊙ W·x̃ + k ⊙ s·B·A·x̃
    let peft = forward(&c, Style::Peft, &xd, true);
    let want = &full + (&k - 1.0) * xd.linear::<Tensor>(&c.w, None) + &k * &lora;
    assert!(max_diff(&peft, &want) < 1e-12);
}

#[test]
fn the_initial_magnitude_leaves_the_base_output_unchanged() {
    let c = case();
    let zero_b = Tensor::zeros_like(&c.b);
    let m = initial_magnitude(&c.w, &c.a, &zero_b, S);
    let want =
        c.w.square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
            .sqrt();
    assert!(max_diff(&m, &want) < 1e-12);
    for style in [Style::TorchTune, Style::Peft] {
        let c = Case {
            b: zero_b.shallow_clone(),
            m: m.shallow_clone(),
            ..case()
        };
        let y = forward(&c, style, &c.x, false);
        assert!(max_diff(&y, &c.x.linear(&c.w, Some(&c.bias))) < 1e-12);
    }
}

/// L = Σ g ⊙ y with the norm n frozen at its value for the current A, B: the function whose
/// gradient autograd computes once n is detached.
fn frozen_loss(c: &Case, style: Style, n: &Tensor, g: &Tensor) -> f64 {
    let k = (&c.m / n).view([1, -1]);
    let base = c.x.linear(&c.w, Some(&c.bias));
    let lora =
        c.x.linear::<Tensor>(&c.a, None)
            .linear::<Tensor>(&c.b, None)
            * S;
    let y = match style {
        Style::TorchTune => &k * &base + &k * lora,
        Style::Peft => &base + (&k - 1.0) * (&base - &c.bias) + &k * lora,
    };
    (y * g).sum(Kind::Double).double_value(&[])
}

#[test]
fn the_backward_matches_finite_differences_with_the_norm_detached() {
    for style in [Style::TorchTune, Style::Peft] {
        let c = case();
        let g = values(&[2, 3, 5], 0.8);
        let (m, a, b) = (
            c.m.copy().set_requires_grad(true),
            c.a.copy().set_requires_grad(true),
            c.b.copy().set_requires_grad(true),
        );
        let live = Case {
            m: m.shallow_clone(),
            a: a.shallow_clone(),
            b: b.shallow_clone(),
            ..case()
        };
        (forward(&live, style, &live.x, false) * &g)
            .sum(Kind::Double)
            .backward();
        let n = weight_norm(&c.w, &c.a, &c.b, S, Kind::Double);
        let eps = 1e-6;
        for (which, param, grad) in [
            ("m", &c.m, m.grad()),
            ("A", &c.a, a.grad()),
            ("B", &c.b, b.grad()),
        ] {
            let flat = param.view([-1]);
            let grad = grad.view([-1]);
            for i in 0..flat.size()[0] {
                let at = |d: f64| {
                    let p = param.copy();
                    let _ = p.view([-1]).get(i).g_add_scalar_(d);
                    let probe = match which {
                        "m" => Case { m: p, ..case() },
                        "A" => Case { a: p, ..case() },
                        _ => Case { b: p, ..case() },
                    };
                    frozen_loss(&probe, style, &n, &g)
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps);
                let got = grad.double_value(&[i]);
                assert!(
                    (fd - got).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{style:?} d{which}[{i}]: autograd {got}, finite difference {fd}"
                );
            }
        }
    }
}

#[test]
fn the_norm_without_the_identity_is_the_frameworks_bit_for_bit() {
    // `lora_b(lora_a(eye(in))).T` in fp32 at a real-ish shape, against the engine's Aᵀ start
    tch::manual_seed(11);
    let o = (Kind::Float, Device::Cpu);
    let (d_in, d_out, r) = (384, 96, 16);
    let a = Tensor::randn([r, d_in], o);
    let b = Tensor::randn([d_out, r], o) * 0.01;
    let w = Tensor::randn([d_out, d_in], o);
    let ba = Tensor::eye(d_in, o)
        .linear::<Tensor>(&a, None)
        .linear::<Tensor>(&b, None)
        .tr();
    let want = (&w + ba * S).linalg_norm(2.0, [1i64].as_slice(), false, None::<Kind>);
    let got = weight_norm(&w, &a, &b, S, Kind::Float);
    assert!(got.equal(&want));
}
