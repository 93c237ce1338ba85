use super::*;

#[test]
fn streams_match_direct_sums() {
    let d = tempfile::tempdir().unwrap();
    let n = UNIT + 1000; // two units, one partial block
    let a: Vec<f32> = (0..n).map(|i| ((i % 97) as f32) * 0.01).collect();
    let b: Vec<f32> = a
        .iter()
        .enumerate()
        .map(|(i, x)| x + if i % 10 == 0 { 0.001 } else { 0.0 })
        .collect();
    write_f32(
        &d.path().join("a.safetensors"),
        &[("w", vec![n], a.clone())],
    )
    .unwrap();
    // b in bf16 to exercise decoding: exact for these values? no: compare to decoded values.
    let bf: Vec<u8> = b
        .iter()
        .flat_map(|x| half::bf16::from_f32(*x).to_bits().to_le_bytes())
        .collect();
    write_raw(
        &d.path().join("b.safetensors"),
        vec![("w".into(), "BF16", vec![n], bf)],
    )
    .unwrap();
    let sa = TensorSet::open(&[d.path().join("a.safetensors")]).unwrap();
    let sb = TensorSet::open(&[d.path().join("b.safetensors")]).unwrap();
    let s = stream_pairs(&sa, &sb, &[(0, 0)], 2)[0];
    let bdec: Vec<f64> = b
        .iter()
        .map(|x| half::bf16::from_f32(*x).to_f64())
        .collect();
    let want: f64 = a
        .iter()
        .zip(&bdec)
        .map(|(x, y)| (*x as f64 - y).powi(2))
        .sum();
    assert_eq!(s.n, n as u64);
    assert!(
        (s.sum_d2 - want).abs() / want < 1e-4,
        "{} vs {want}",
        s.sum_d2
    );
    let full = sb.read_f64(&sb.tensors[0]).unwrap();
    assert_eq!(full.len(), n);
    assert_eq!(full[10], bdec[10]);
}

#[test]
fn f16_and_unaligned_data_decode() {
    let d = tempfile::tempdir().unwrap();
    let vals: Vec<f32> = (0..1001).map(|i| (i as f32 - 500.0) / 64.0).collect(); // exact in f16
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|x| half::f16::from_f32(*x).to_bits().to_le_bytes())
        .collect();
    // A 1-byte tensor first, so the F16 data starts at an odd offset (the slow path).
    write_raw(
        &d.path().join("h.safetensors"),
        vec![
            ("pad".into(), "U8", vec![1], vec![0]),
            ("w".into(), "F16", vec![1001], f16),
        ],
    )
    .unwrap();
    write_f32(
        &d.path().join("f.safetensors"),
        &[("w", vec![1001], vals.clone())],
    )
    .unwrap();
    let sh = TensorSet::open(&[d.path().join("h.safetensors")]).unwrap();
    let sf = TensorSet::open(&[d.path().join("f.safetensors")]).unwrap();
    let iw = sh.tensors.iter().position(|t| t.name == "w").unwrap();
    assert!(
        sh.tensors
            .iter()
            .any(|t| t.name == "pad" && t.dtype.is_err()),
        "U8 is reported, not decoded"
    );
    let s = stream_pairs(&sh, &sf, &[(iw, 0)], 2)[0];
    assert_eq!((s.n, s.sum_d2, s.max_abs), (1001, 0.0, 0.0));
    assert_eq!(sh.read_f64(&sh.tensors[iw]).unwrap()[1000], 500.0 / 64.0);
}

#[test]
fn truncated_file_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.safetensors");
    write_f32(&p, &[("w", vec![4], vec![1.0, 2.0, 3.0, 4.0])]).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
    let e = TensorSet::open(&[p]).err().unwrap();
    assert!(
        e.to_string().contains("not a valid safetensors file"),
        "{e}"
    );
}
