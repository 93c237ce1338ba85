use super::*;
use crate::ingest::WeightOrigin;

fn adapter(dir: &std::path::Path, name: &str, r: usize, seed: f32, bscale: f32) -> WeightSource {
    let (out, inn) = (6, 5);
    let a: Vec<f32> = (0..r * inn)
        .map(|i| ((i as f32 + seed) * 0.37).sin())
        .collect();
    let b: Vec<f32> = (0..out * r)
        .map(|i| ((i as f32 + seed) * 0.53).cos() * bscale)
        .collect();
    let p = dir.join(name);
    tensors::write_f32(
        &p,
        &[
            (
                "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
                vec![r, inn],
                a,
            ),
            (
                "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
                vec![out, r],
                b,
            ),
        ],
    )
    .unwrap();
    WeightSource {
        files: vec![p],
        origin: WeightOrigin::Peft,
        adapter_config: None,
        model: None,
    }
}

#[test]
fn gram_trick_matches_explicit_delta() {
    let d = tempfile::tempdir().unwrap();
    let x = adapter(d.path(), "a.safetensors", 2, 0.0, 1.0);
    let y = adapter(d.path(), "b.safetensors", 3, 1.0, 0.5);
    let w = diff_weights(&x, &y, &WeightOptions::default()).unwrap();
    assert_eq!(w.modules.len(), 1);
    let m = &w.modules[0];
    assert!(m.lora_a.is_none(), "ranks differ: factors not compared");
    // Explicit ΔW.
    let load = |ws: &WeightSource| {
        let s = TensorSet::open(&ws.files).unwrap();
        let a = s.read_f64(&s.tensors[0]).unwrap();
        let b = s.read_f64(&s.tensors[1]).unwrap();
        let r = s.tensors[0].shape[0];
        let mut dw = vec![0.0; 30];
        for o in 0..6 {
            for k in 0..5 {
                dw[o * 5 + k] = (0..r).map(|i| b[o * r + i] * a[i * 5 + k]).sum();
            }
        }
        dw
    };
    let (p, q) = (load(&x), load(&y));
    let diff: f64 = p
        .iter()
        .zip(&q)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let maxabs = p
        .iter()
        .zip(&q)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        (m.delta.diff_norm - diff).abs() < 1e-9 * diff.max(1.0),
        "{} vs {diff}",
        m.delta.diff_norm
    );
    assert!((m.delta.max_abs.unwrap() - maxabs).abs() < 1e-12);
}

#[test]
fn adapter_against_itself_is_exact() {
    let d = tempfile::tempdir().unwrap();
    let x = adapter(d.path(), "a.safetensors", 4, 0.0, 1.0);
    let w = diff_weights(&x, &x, &WeightOptions::default()).unwrap();
    assert_eq!(w.summary.max_rel, 0.0);
    assert_eq!(w.summary.within, w.summary.compared);
    assert_eq!(w.modules[0].lora_a.as_ref().unwrap().max_abs, Some(0.0));
}

#[test]
fn full_against_adapter_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let x = adapter(d.path(), "a.safetensors", 2, 0.0, 1.0);
    let p = d.path().join("full.safetensors");
    tensors::write_f32(&p, &[("model.norm.weight", vec![2], vec![1.0, 1.0])]).unwrap();
    let y = WeightSource {
        files: vec![p],
        origin: WeightOrigin::Peft,
        adapter_config: None,
        model: None,
    };
    assert!(matches!(
        diff_weights(&x, &y, &WeightOptions::default()),
        Err(WeightError::KindMismatch { .. })
    ));
}
