use super::*;

fn curve(losses: &[f64]) -> Curve {
    Curve {
        source: "t.jsonl".into(),
        points: losses
            .iter()
            .enumerate()
            .map(|(i, &l)| CurvePoint {
                step: i as u64 + 1,
                loss: l,
                lr: Some(0.1),
                grad_norm: None,
                tokens: Some(100.0 * (i as f64 + 1.0)),
                epoch: None,
            })
            .collect(),
        quantum: None,
        eval: Vec::new(),
    }
}

fn opts(by: Axis) -> CurveOptions {
    CurveOptions {
        by,
        rtol: 1e-3,
        atol: 0.0,
        ema: None,
        last_k: 2,
    }
}

#[test]
fn identical_curves_pass() {
    let a = curve(&[3.0, 2.5, 2.0, 1.8]);
    let d = diff_curves(&a, &a, &opts(Axis::Step)).unwrap();
    assert_eq!(d.first_divergent, None);
    assert_eq!(d.max_abs, 0.0);
    assert_eq!(d.rows.len(), 4);
}

#[test]
fn first_divergent_step_and_lengths() {
    let a = curve(&[3.0, 2.5, 2.0, 1.8, 1.7]);
    let b = curve(&[3.0, 2.5, 2.1, 1.9]);
    let d = diff_curves(&a, &b, &opts(Axis::Step)).unwrap();
    assert_eq!(d.first_divergent_row().unwrap().step_a, 3);
    assert_eq!(d.only_in_a, 1);
    assert_eq!((d.last_step_a, d.last_step_b), (5, 4));
    assert!((d.final_delta - 0.1).abs() < 1e-12);
    assert!((d.last_k_mean_b - d.last_k_mean_a - 0.1).abs() < 1e-12);
}

#[test]
fn by_tokens_interpolates() {
    let a = curve(&[3.0, 2.0, 1.0]);
    let mut b = curve(&[3.0, 1.0]);
    b.points[1].tokens = Some(300.0);
    let d = diff_curves(&a, &b, &opts(Axis::Tokens)).unwrap();
    assert_eq!(d.rows.len(), 3);
    assert!((d.rows[1].loss_b - 2.0).abs() < 1e-12);
    let mut c = curve(&[1.0]);
    c.points[0].tokens = None;
    assert!(matches!(
        diff_curves(&a, &c, &opts(Axis::Tokens)),
        Err(CurveError::NoTokens { .. })
    ));
}

#[test]
fn ema_is_debiased() {
    let s = ema(&[2.0, 2.0, 2.0], 0.9);
    assert!(s.iter().all(|v| (v - 2.0).abs() < 1e-12));
}
