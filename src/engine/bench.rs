//! A training benchmark: LoRA steps on a randomly initialised model of a named shape.
//!
//! What one step is (the job of docs/PERFORMANCE.md "training (bench)", and of the Hugging
//! Face + PEFT script `scripts/bench/hf_peft_lora.py` it is compared with):
//! - a batch of B random token sequences of length T (no padding: every token is real), the
//!   labels the inputs themselves, shifted by one as in training (B·(T−1) trained positions);
//! - forward + backward through [`recompute::forward_backward`] (layer recomputation on or
//!   off, chunked head), loss = Σ CE / B·(T−1);
//! - gradient clipping at 1.0 and an AdamW step (lr 1e-4, no weight decay) over the LoRA
//!   tensors, then zeroed grads.
//!
//! The base weights are drawn on the device (normal, σ = 0.02; norms at 1) in the compute
//! dtype and frozen; nothing is read from disk. LoRA A/B are PEFT's init (B = 0), in the
//! adapter dtype (fp32 by default, as PEFT's `autocast_adapter_dtype` keeps them).
//!
//! Timing: the device is synchronised before the clock starts and before it stops; the
//! median over the timed steps is reported. tokens/s = B·T / median step time.
//! Memory (CUDA): libtorch's caching-allocator peaks (allocated, reserved) over the steps
//! (reset after the setup), and the driver's used bytes at the end minus those used before the
//! model existed; see [`super::cuda_mem`]. `--method qlora` quantises the decoder linears to
//! NF4 after the random init (the dense copies are freed and the cache emptied first).

use super::cuda_mem::{self, AllocatorStats};
use super::dist::{ReduceOp, World};
use super::error::{EngineError, Result};
use super::lora::{self, Init, LoraSpec};
use super::model::{
    llama::RawConfig, AttentionImpl, Config, LayerLinear, ModelForCausalLM, Weights,
};
use super::optim::adamw::{AdamW, AdamWConfig};
use super::quant::QuantFormat;
use super::recompute;
use super::train::DataParallel;
use std::collections::HashMap;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// A named model shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// Llama-3.1-8B: C 4096, L 32, H 32, KV 8, I 14336, V 128256, llama3 RoPE scaling, untied.
    Llama3_8b,
    /// A few-MB Llama for CPU smoke runs: C 64, L 2, H 4, KV 2, I 128, V 512.
    Tiny,
}

impl Shape {
    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "llama3-8b" => Some(Shape::Llama3_8b),
            "tiny" => Some(Shape::Tiny),
            _ => None,
        }
    }

    /// The shape as a `config.json` (Llama-3.1-8B's own values for `llama3-8b`).
    pub fn config(self) -> Result<Config> {
        let json = match self {
            Shape::Llama3_8b => serde_json::json!({
                "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
                "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-5,
                "rope_theta": 500000.0, "max_position_embeddings": 131072,
                "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false
            }),
            Shape::Tiny => serde_json::json!({
                "model_type": "llama", "vocab_size": 512, "hidden_size": 64,
                "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "max_position_embeddings": 4096, "tie_word_embeddings": false
            }),
        };
        let raw: RawConfig = serde_json::from_value(json).expect("a valid config literal");
        raw.into_config()
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub shape: Shape,
    pub batch: i64,
    pub seq: i64,
    pub recompute: bool,
    pub warmup: usize,
    pub steps: usize,
    pub device: Device,
    pub dtype: Kind,
    pub adapter_dtype: Kind,
    pub rank: i64,
    pub alpha: f64,
    pub seed: u64,
    /// QLoRA: the decoder linears as NF4 (double quantisation), dequantized in each forward.
    pub qlora: bool,
    /// This process's rank when the bench runs data-parallel (`bench --nproc-per-node N`):
    /// gradients all-reduced every step over gloo (CPU) or NCCL (CUDA).
    pub world: Option<World>,
}

/// One benchmark's outcome (one JSON line).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub engine: &'static str,
    pub shape: Shape,
    pub batch: i64,
    pub seq: i64,
    pub recompute: bool,
    pub method: &'static str,
    pub dtype: String,
    pub adapter_dtype: String,
    pub device: String,
    pub lora_params: i64,
    pub warmup: usize,
    pub step_secs: Vec<f64>,
    pub median_step_secs: Option<f64>,
    /// Real (non-padding) input tokens per step: B·T.
    pub tokens_per_step: i64,
    pub tokens_per_sec: Option<f64>,
    pub losses: Vec<f64>,
    /// libtorch caching allocator (CUDA): peak bytes allocated / reserved over the steps
    /// (the peaks are reset after the setup).
    pub peak_allocated_bytes: Option<i64>,
    pub peak_reserved_bytes: Option<i64>,
    /// Driver: device bytes in use at the end minus in use before the model was built.
    pub device_used_bytes: Option<u64>,
    pub peak_allocated_gib: Option<f64>,
    /// The step that failed (e.g. CUDA out of memory), if one did.
    pub error: Option<String>,
    /// Data-parallel ranks (1 without `--nproc-per-node`).
    pub world_size: usize,
    /// Per timed step: seconds in the gradient all-reduce (device synchronised around it).
    pub comm_secs: Vec<f64>,
    /// Every rank's tokens/s summed (`tokens_per_sec` is this rank's, per GPU).
    pub total_tokens_per_sec: Option<f64>,
    /// The same steps on rank 0 alone, without collectives, in the same invocation.
    pub single_tokens_per_sec: Option<f64>,
    /// tokens/s per GPU over the single-process tokens/s.
    pub scaling_efficiency: Option<f64>,
    /// Peak allocated GiB of each rank (CUDA).
    pub peak_allocated_gib_per_rank: Vec<f64>,
}

fn kind_name(k: Kind) -> String {
    match k {
        Kind::BFloat16 => "bf16".into(),
        Kind::Float => "fp32".into(),
        Kind::Half => "fp16".into(),
        other => format!("{other:?}"),
    }
}

/// Checkpoint-named random weights of `cfg`, drawn on `device` in `kind`.
fn random_weights(cfg: &Config, kind: Kind, device: Device) -> HashMap<String, Tensor> {
    let (c, v) = (cfg.hidden_size, cfg.vocab_size);
    let normal = |shape: &[i64]| {
        let mut t = Tensor::empty(shape, (kind, device));
        let _ = t.normal_(0.0, 0.02);
        t
    };
    let ones = |n: i64| Tensor::ones([n], (kind, device));
    let mut w = HashMap::new();
    w.insert("model.embed_tokens.weight".to_string(), normal(&[v, c]));
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for &m in LayerLinear::of(cfg) {
            let (d_in, d_out, _) = m.dims(cfg, cfg.head_dim);
            w.insert(format!("{p}.{}.weight", m.path()), normal(&[d_out, d_in]));
        }
        w.insert(format!("{p}.input_layernorm.weight"), ones(c));
        w.insert(format!("{p}.post_attention_layernorm.weight"), ones(c));
    }
    w.insert("model.norm.weight".into(), ones(c));
    if !cfg.tie_word_embeddings {
        w.insert("lm_head.weight".into(), normal(&[v, c]));
    }
    w
}

fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The message of a caught panic (tch panics on libtorch errors such as CUDA OOM).
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Build the model and run the benchmark.
pub fn run(o: &BenchOptions) -> Result<BenchResult> {
    // meet the other ranks first (a rank that cannot is an error before the model is built)
    let dp = match &o.world {
        Some(w) => Some(DataParallel::join(w, o.device)?),
        None => None,
    };
    tch::manual_seed(o.seed as i64);
    let cfg = o.shape.config()?;
    let device_free_before = match o.device {
        Device::Cuda(_) => cuda_mem::device_memory(),
        _ => None,
    };
    let (model, mut optimizer, params, lora_params) = build_lora_model(o, &cfg)?;
    let (b, t) = (o.batch, o.seq);
    if t > cfg.max_position_embeddings {
        return Err(EngineError::unsupported(
            "--seq",
            t,
            format!(
                "the shape's max_position_embeddings is {}",
                cfg.max_position_embeddings
            ),
        ));
    }
    let mut result = BenchResult {
        engine: "tunebridge",
        shape: o.shape,
        batch: b,
        seq: t,
        recompute: o.recompute,
        method: if o.qlora { "qlora" } else { "lora" },
        dtype: kind_name(o.dtype),
        adapter_dtype: kind_name(o.adapter_dtype),
        device: format!("{:?}", o.device),
        lora_params,
        warmup: o.warmup,
        step_secs: Vec::new(),
        median_step_secs: None,
        tokens_per_step: b * t,
        tokens_per_sec: None,
        losses: Vec::new(),
        peak_allocated_bytes: None,
        peak_reserved_bytes: None,
        device_used_bytes: None,
        peak_allocated_gib: None,
        error: None,
        world_size: dp.as_ref().map_or(1, |d| d.world.size),
        comm_secs: Vec::new(),
        total_tokens_per_sec: None,
        single_tokens_per_sec: None,
        scaling_efficiency: None,
        peak_allocated_gib_per_rank: Vec::new(),
    };
    if let Some(dp) = &dp {
        // the one-GPU baseline of the same invocation: rank 0 alone, no collectives (its steps
        // also train rank 0's copy; step times do not depend on the values)
        if dp.is_main() {
            let mut alone = result.clone();
            time_steps(o, &cfg, &model, &mut optimizer, None, &mut alone);
            result.single_tokens_per_sec = median(&alone.step_secs).map(|m| (b * t) as f64 / m);
        }
        dp.sum_counts([0i64])?; // a barrier: the others wait for the baseline
    }
    // Peaks from here on: the training steps, not the setup (random init, quantisation).
    if let Device::Cuda(i) = o.device {
        synchronize(o.device);
        cuda_mem::reset_peak(i);
    }
    let with = dp.as_ref().map(|d| (d, params.as_slice()));
    time_steps(o, &cfg, &model, &mut optimizer, with, &mut result);
    if let Some(median) = median(&result.step_secs) {
        result.median_step_secs = Some(median);
        result.tokens_per_sec = Some((b * t) as f64 / median);
    }
    if let Device::Cuda(i) = o.device {
        if let Some(AllocatorStats {
            allocated_peak,
            reserved_peak,
            ..
        }) = cuda_mem::allocator_stats(i)
        {
            result.peak_allocated_bytes = Some(allocated_peak);
            result.peak_reserved_bytes = Some(reserved_peak);
            result.peak_allocated_gib = Some(allocated_peak as f64 / (1u64 << 30) as f64);
        }
        if let (Some((before, _)), Some((after, _))) =
            (device_free_before, cuda_mem::device_memory())
        {
            result.device_used_bytes = Some(before.saturating_sub(after));
        }
    }
    if let Some(dp) = &dp {
        gather_rank_figures(dp, &mut result)?;
    }
    Ok(result)
}

/// Every rank's tokens/s and peak memory onto every rank (one all-reduce of per-rank slots,
/// in integer milli-units), then the totals and the scaling efficiency.
fn gather_rank_figures(dp: &DataParallel, r: &mut BenchResult) -> Result<()> {
    let (w, me) = (dp.world.size, dp.world.rank);
    let mut slots = vec![0i64; 2 * w];
    slots[me] = (r.tokens_per_sec.unwrap_or(0.0) * 1e3) as i64;
    slots[w + me] = r.peak_allocated_bytes.unwrap_or(0);
    let all = dp.sum_i64(&slots)?;
    r.total_tokens_per_sec = Some(all[..w].iter().map(|&v| v as f64 / 1e3).sum());
    r.peak_allocated_gib_per_rank = all[w..]
        .iter()
        .map(|&b| b as f64 / (1u64 << 30) as f64)
        .collect();
    if let (Some(per_gpu), Some(single)) = (r.tokens_per_sec, r.single_tokens_per_sec) {
        r.scaling_efficiency = Some(per_gpu / single);
    }
    Ok(())
}

/// The model of `cfg` with random frozen base weights (NF4 for QLoRA), LoRA on every decoder
/// linear, and AdamW over the LoRA tensors. Returns them, the LoRA tensors and their
/// parameter count.
fn build_lora_model(
    o: &BenchOptions,
    cfg: &Config,
) -> Result<(ModelForCausalLM, AdamW, Vec<Tensor>, i64)> {
    let weights = random_weights(cfg, o.dtype, o.device);
    let mut w = Weights::new(weights, o.dtype, o.device);
    let mut model = ModelForCausalLM::new(cfg.clone(), &mut w, AttentionImpl::Sdpa)?;
    for (_, p) in model.named_parameters() {
        let _ = p.set_requires_grad(false);
    }
    if o.qlora {
        model.quantize_linears(QuantFormat::Nf4 { double_quant: true }, &[])?;
        if o.device.is_cuda() {
            cuda_mem::empty_cache(); // the dense copies are gone; give their blocks back
        }
    }
    let spec = LoraSpec {
        rank: o.rank,
        alpha: o.alpha,
        dropout: 0.0,
        use_rslora: false,
        target_modules: LayerLinear::ALL.map(|m| m.name().to_string()).to_vec(),
        kind: o.adapter_dtype,
        dora: None,
    };
    lora::attach(&mut model, &spec, &Init::PeftReplay { seed: o.seed })?;
    let trainable: Vec<(String, Tensor)> = model
        .named_parameters()
        .into_iter()
        .filter(|(n, _)| lora::is_adapter_param(n))
        .collect();
    let lora_params = trainable.iter().map(|(_, t)| t.numel() as i64).sum();
    let params = trainable.iter().map(|(_, t)| t.shallow_clone()).collect();
    let optimizer = AdamW::new(
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        trainable.into_iter().map(|(n, t)| (n, t, 0.0)).collect(),
    );
    Ok((model, optimizer, params, lora_params))
}

/// The warmup and timed steps on random tokens: each step's loss and (after the warmup) its
/// time go into `result`; the first failing step (an error or a libtorch panic such as CUDA
/// out of memory) ends the loop with `result.error` set.
fn time_steps(
    o: &BenchOptions,
    cfg: &Config,
    model: &ModelForCausalLM,
    optimizer: &mut AdamW,
    dp: Option<(&DataParallel, &[Tensor])>,
    result: &mut BenchResult,
) {
    let (b, t) = (o.batch, o.seq);
    let trained = (b * (t - 1)) as f64;
    for step in 0..o.warmup + o.steps {
        let ids = Tensor::randint(cfg.vocab_size, [b, t], (Kind::Int64, o.device)); // (B, T)
        let labels = Tensor::cat(
            &[
                ids.narrow(1, 1, t - 1),
                Tensor::full([b, 1], -100, (Kind::Int64, o.device)),
            ],
            1,
        ); // (B, T)
        synchronize(o.device);
        let t0 = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<f64> {
            let scale = |sum: Tensor| sum / trained;
            let loss = recompute::forward_backward(
                model,
                &ids,
                None,
                &labels,
                o.recompute,
                &scale,
                &mut recompute::Resident,
            )?;
            if let Some((dp, params)) = dp {
                // DDP's averaged gradients, timed alone
                synchronize(o.device);
                let c0 = Instant::now();
                dp.reduce_grads(params, ReduceOp::Avg)?;
                synchronize(o.device);
                if step >= o.warmup {
                    result.comm_secs.push(c0.elapsed().as_secs_f64());
                }
            }
            optimizer.clip_grad_norm(1.0)?;
            optimizer.step(1e-4)?;
            optimizer.zero_grad();
            Ok(loss.double_value(&[]))
        }));
        synchronize(o.device);
        let secs = t0.elapsed().as_secs_f64();
        match outcome {
            Ok(Ok(loss)) => {
                result.losses.push(loss);
                if step >= o.warmup {
                    result.step_secs.push(secs);
                }
            }
            Ok(Err(e)) => {
                result.error = Some(e.to_string());
                break;
            }
            Err(p) => {
                result.error = Some(panic_message(p));
                break;
            }
        }
    }
}

/// The median of the step times, `None` without timed steps.
pub fn median(step_secs: &[f64]) -> Option<f64> {
    if step_secs.is_empty() {
        return None;
    }
    let mut sorted = step_secs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}
