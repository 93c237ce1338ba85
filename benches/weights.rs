//! Weight-diff benchmarks, and the generator of the 2 GB checkpoints used for the CLI-level
//! measurement in docs/PERFORMANCE.md ("diff").
//!
//!   cargo bench --bench weights                      criterion: streaming bf16/f32 pairs
//!                                                    (64 MiB files) and the ΔW Gram diff
//!   TB_GEN_DIR=/tmp/ckpt cargo bench --bench weights generate two TinyLlama-1.1B-shaped bf16
//!                                                    checkpoints (≈2.2 GB each, 2 shards +
//!                                                    index) in TB_GEN_DIR/{a,b} and exit
//!
//! Values come from a xorshift generator, so files are identical run to run; B equals A except
//! for a small perturbation in one tensor per layer.

use criterion::{criterion_group, Criterion, Throughput};
use std::io::Write;
use std::path::{Path, PathBuf};
use tunebridge::diff::tensors::{self, TensorSet};
use tunebridge::diff::weights::{diff_weights, WeightOptions};
use tunebridge::ingest::{WeightOrigin, WeightSource};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-scale, scale).
    fn f32(&mut self, scale: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }
}

fn bf16_bytes(n: usize, rng: &mut Rng, perturb: f32) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let x = rng.f32(0.05) * (1.0 + perturb);
        out.extend_from_slice(&half::bf16::from_f32(x).to_bits().to_le_bytes());
    }
    out
}

/// TinyLlama-1.1B shapes: hidden 2048, 22 layers, 32 heads / 4 KV heads, MLP 5632, vocab 32000.
fn tinyllama_shapes() -> Vec<(String, Vec<usize>)> {
    let (h, kv, inter, vocab) = (2048, 256, 5632, 32000);
    let mut v = vec![("model.embed_tokens.weight".to_string(), vec![vocab, h])];
    for l in 0..22 {
        let p = format!("model.layers.{l}");
        for (n, s) in [
            ("self_attn.q_proj.weight", vec![h, h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.o_proj.weight", vec![h, h]),
            ("mlp.gate_proj.weight", vec![inter, h]),
            ("mlp.up_proj.weight", vec![inter, h]),
            ("mlp.down_proj.weight", vec![h, inter]),
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
        ] {
            v.push((format!("{p}.{n}"), s));
        }
    }
    v.push(("model.norm.weight".to_string(), vec![h]));
    v.push(("lm_head.weight".to_string(), vec![vocab, h]));
    v
}

/// Write one checkpoint as two shards plus `model.safetensors.index.json`, streaming each
/// tensor to disk (the generator itself stays small).
fn write_checkpoint(dir: &Path, perturbed: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let shapes = tinyllama_shapes();
    let half_at = shapes.len() / 2;
    let mut weight_map = serde_json::Map::new();
    for (si, part) in [&shapes[..half_at], &shapes[half_at..]].iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", si + 1);
        let mut header = serde_json::Map::new();
        let mut off = 0usize;
        for (n, s) in part.iter() {
            let bytes = 2 * s.iter().product::<usize>();
            header.insert(n.clone(), serde_json::json!({"dtype": "BF16", "shape": s, "data_offsets": [off, off + bytes]}));
            weight_map.insert(n.clone(), serde_json::Value::String(file.clone()));
            off += bytes;
        }
        let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
        while h.len() % 8 != 0 {
            h.push(b' ');
        }
        let mut f =
            std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(dir.join(&file))?);
        f.write_all(&(h.len() as u64).to_le_bytes())?;
        f.write_all(&h)?;
        for (i, (n, s)) in part.iter().enumerate() {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (si as u64 * 1000 + i as u64 + 1));
            // B differs from A in each layer's down_proj by 0.1 %.
            let p = if perturbed && n.ends_with("mlp.down_proj.weight") {
                1e-3
            } else {
                0.0
            };
            f.write_all(&bf16_bytes(s.iter().product(), &mut rng, p))?;
        }
        f.flush()?;
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index)?,
    )
}

fn small_pair(dir: &Path, dtype: &str) -> (PathBuf, PathBuf) {
    let n = 32 << 20 >> if dtype == "BF16" { 0 } else { 1 }; // 64 MiB of data per file
    let mut out = Vec::new();
    for (name, p) in [("a", 0.0f32), ("b", 1e-3)] {
        let mut rng = Rng(42);
        let bytes: Vec<u8> = if dtype == "BF16" {
            bf16_bytes(n, &mut rng, p)
        } else {
            (0..n)
                .flat_map(|_| (rng.f32(0.05) * (1.0 + p)).to_le_bytes())
                .collect()
        };
        let path = dir.join(format!("{name}-{dtype}.safetensors"));
        let tensors = (0..8)
            .map(|i| {
                (
                    format!("t{i}"),
                    dtype,
                    vec![n / 8],
                    bytes[i * bytes.len() / 8..(i + 1) * bytes.len() / 8].to_vec(),
                )
            })
            .collect();
        tensors::write_raw(&path, tensors).expect("write bench file");
        out.push(path);
    }
    (out[0].clone(), out[1].clone())
}

fn bench_streaming(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("stream_pairs");
    g.sample_size(10);
    for dtype in ["BF16", "F32"] {
        let (a, b) = small_pair(dir.path(), dtype);
        let (sa, sb) = (
            TensorSet::open(&[a]).unwrap(),
            TensorSet::open(&[b]).unwrap(),
        );
        let pairs: Vec<(usize, usize)> = (0..sa.tensors.len()).map(|i| (i, i)).collect();
        g.throughput(Throughput::Bytes(sa.data_bytes() + sb.data_bytes()));
        for threads in [1, 2] {
            g.bench_function(format!("{dtype}/{threads}t"), |bch| {
                bch.iter(|| tensors::stream_pairs(&sa, &sb, &pairs, threads))
            });
        }
    }
    g.finish();
}

/// ΔW comparison of a 7B-like adapter (rank 16 on q,k,v,o of 32 layers, hidden 4096) through
/// the Gram trick; ΔW itself would be 32×4×4096² floats.
fn bench_adapter(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (r, h) = (16, 4096);
    let mut paths = Vec::new();
    for (name, p) in [("a", 0.0f32), ("b", 1e-2)] {
        let mut t = Vec::new();
        let mut rng = Rng(7);
        for l in 0..32 {
            for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                let pre = format!("base_model.model.model.layers.{l}.self_attn.{m}");
                let a: Vec<u8> = (0..r * h)
                    .flat_map(|_| rng.f32(0.02).to_le_bytes())
                    .collect();
                let b: Vec<u8> = (0..h * r)
                    .flat_map(|_| (rng.f32(0.01) * (1.0 + p)).to_le_bytes())
                    .collect();
                t.push((format!("{pre}.lora_A.weight"), "F32", vec![r, h], a));
                t.push((format!("{pre}.lora_B.weight"), "F32", vec![h, r], b));
            }
        }
        let path = dir.path().join(format!("{name}.safetensors"));
        tensors::write_raw(&path, t).expect("write adapter");
        paths.push(path);
    }
    let src = |p: &PathBuf| WeightSource {
        files: vec![p.clone()],
        origin: WeightOrigin::Peft,
        adapter_config: None,
        model: None,
    };
    let (a, b) = (src(&paths[0]), src(&paths[1]));
    let opts = WeightOptions {
        delta_max_abs_limit: 0,
        ..WeightOptions::default()
    };
    let mut g = c.benchmark_group("adapter");
    g.sample_size(10);
    g.bench_function("gram_delta_7b_r16_qkvo", |bch| {
        bch.iter(|| diff_weights(&a, &b, &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_streaming, bench_adapter);

fn main() {
    if let Some(dir) = std::env::var_os("TB_GEN_DIR") {
        let dir = PathBuf::from(dir);
        for (name, perturbed) in [("a", false), ("b", true)] {
            let t = std::time::Instant::now();
            write_checkpoint(&dir.join(name), perturbed).expect("write checkpoint");
            eprintln!(
                "wrote {} in {:.1} s",
                dir.join(name).display(),
                t.elapsed().as_secs_f64()
            );
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
