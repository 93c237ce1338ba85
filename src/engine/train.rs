//! The training recipe: setup → train → save, like TorchTune's `lora_finetune_single_device`.
//!
//! Setup order (each step needs the one before): paths and dtype → tokenizer and samples (the
//! step count depends on them) → model → LoRA (its replayed init draws must follow the model's
//! construction order) → optimizer → schedule (needs the step count) → run directory.
//!
//! One optimizer step ("window") = `grad_accum_steps` micro-batches. The loss of a window is the
//! token mean over the whole window, per the IR's `loss.normalization = token_mean_over_step`:
//!
//! - HF flavours (Axolotl, Unsloth): each micro-batch backpropagates Σ CE / N with N = the
//!   window's count of shifted labels ≠ -100 (transformers `num_items_in_batch`); logged loss
//!   = Σ over micro-batches.
//! - TorchTune 0.6.1: each micro-batch backpropagates mean-CE · n_unshifted (its label count
//!   *before* the shift), grads are then scaled by 1/Σ n_unshifted; logged loss =
//!   Σ (mean-CE · n_unshifted) / Σ n_unshifted. The two counts differ by one per sequence
//!   whose first label is trained — a TorchTune quirk reproduced on purpose.
//!
//! Then: clip (pre-clip norm logged) → AdamW at the schedule's LR → zero grads → log.
//! `global_step` counts optimizer steps.

use super::checkpoint::{self, TrainerState};
use super::data::{self, Sample, Tokenizer};
use super::error::{EngineError, Result};
use super::flavour::Flavour;
use super::lora::{self, Init, LoraSpec};
use super::model::{self, AttentionImpl, LayerLinear, ModelForCausalLM};
use super::optim::{self, AdamW, AdamWConfig};
use super::recompute;
use super::schedule::{self, Schedule};
use crate::ir::{Origin, Resolved, RunSpec};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// How to run a spec (what the CLI flags override).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub flavour: Flavour,
    pub device: Device,
    /// Run directory; default: the spec's `checkpoint.output_dir`.
    pub output: Option<PathBuf>,
    /// Override `training.max_steps` (the schedule horizon follows, as in the frameworks).
    pub max_steps: Option<u64>,
    /// Stop after this optimizer step without changing the schedule (an interruption).
    pub stop_after: Option<u64>,
    /// Continue from a `checkpoint-<n>` folder.
    pub resume_from: Option<PathBuf>,
    /// Override `precision.compute_dtype` (e.g. `fp32` for a CPU parity run of a bf16 config).
    pub compute_dtype: Option<String>,
    pub progress: bool,
}

impl RunOptions {
    pub fn new(flavour: Flavour) -> Self {
        RunOptions {
            flavour,
            device: Device::Cpu,
            output: None,
            max_steps: None,
            stop_after: None,
            resume_from: None,
            compute_dtype: None,
            progress: false,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub output: PathBuf,
    pub steps: u64,
    pub final_loss: f64,
    pub losses: Vec<f64>,
    pub flavour: Flavour,
    /// Loss over the held-out rows (`data.val_size`) after the last step, when there are any.
    pub eval_loss: Option<f64>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepMetrics {
    pub step: u64,
    pub epoch: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: i64,
    pub label_tokens: i64,
    pub tokens_per_sec: f64,
    /// Peak memory in bytes: resident set of the process (CPU), or bytes allocated by
    /// libtorch's CUDA caching allocator (CUDA; `null` where its statistics cannot be read).
    pub mem_peak: Option<u64>,
}

/// The samples of one optimizer step, as micro-batches.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub epoch: u64,
    pub micro_batches: Vec<Vec<usize>>,
}

/// The whole run's data schedule: every optimizer step's micro-batches, derived from the
/// spec alone (so a resumed run recomputes it and skips what was done).
pub struct Plan {
    pub windows: Vec<Window>,
    /// The schedule horizon (`num_training_steps`).
    pub total_steps: u64,
}

/// Build the plan as the framework's data loader and loop would walk it.
pub fn plan(spec: &RunSpec, flavour: Flavour, n_samples: usize, max_steps: u64) -> Result<Plan> {
    let mb = spec.batch.micro_batch_per_device.max(1) as usize;
    let ga = spec.batch.grad_accum_steps.max(1) as usize;
    let d = &spec.data;
    let batches_per_epoch = match flavour {
        Flavour::TorchTune => n_samples / mb, // drop_last=True
        _ => n_samples.div_ceil(mb),          // dataloader_drop_last=False
    };
    if batches_per_epoch == 0 {
        return Err(EngineError::Data(format!(
            "{n_samples} samples make no micro-batch of {mb}"
        )));
    }
    let epoch_micro_batches = |epoch: u64| -> Vec<Vec<usize>> {
        let order = data::epoch_order(n_samples, d.shuffle, d.shuffle_seed, epoch);
        order
            .chunks(mb)
            .take(batches_per_epoch)
            .map(|c| c.to_vec())
            .collect()
    };
    let mut windows = Vec::new();
    let total_steps;
    match flavour {
        Flavour::TorchTune => {
            // steps_per_epoch = len(dataloader) // GA, capped by max_steps_per_epoch;
            // leftover micro-batches carry into the next epoch's first step (v0.6.1).
            let mut per_epoch = (batches_per_epoch / ga) as u64;
            if spec.training.max_steps_per_epoch > 0 {
                per_epoch = per_epoch.min(spec.training.max_steps_per_epoch);
            }
            let epochs = spec.training.epochs.ceil() as u64;
            total_steps = epochs * per_epoch;
            let mut carry: Vec<Vec<usize>> = Vec::new();
            for epoch in 0..epochs {
                let mbs = epoch_micro_batches(epoch);
                for (idx, b) in mbs.into_iter().enumerate() {
                    carry.push(b);
                    if (idx + 1) % ga == 0 {
                        windows.push(Window {
                            epoch,
                            micro_batches: std::mem::take(&mut carry),
                        });
                    }
                    let cap = spec.training.max_steps_per_epoch;
                    if cap > 0 && ((idx + 1) / ga) as u64 == cap {
                        break;
                    }
                }
            }
        }
        Flavour::Axolotl | Flavour::Unsloth => {
            // HF Trainer: an optimizer step every GA micro-batches and at the end of an epoch.
            let per_epoch = batches_per_epoch.div_ceil(ga) as u64;
            let horizon = if max_steps > 0 {
                max_steps
            } else {
                match flavour {
                    // Axolotl passes its own estimate as max_steps:
                    // ceil(len(dataset) · epochs / (micro_batch · GA · devices)).
                    Flavour::Axolotl => {
                        let global = spec.batch.global_batch.max(1) as f64;
                        ((n_samples as f64) * spec.training.epochs / global).ceil() as u64
                    }
                    _ => ((batches_per_epoch / ga).max(1) as f64 * spec.training.epochs).ceil()
                        as u64,
                }
            };
            total_steps = horizon;
            let mut epoch = 0;
            while (windows.len() as u64) < horizon {
                let mbs = epoch_micro_batches(epoch);
                for chunk in mbs.chunks(ga) {
                    if (windows.len() as u64) >= horizon {
                        break;
                    }
                    windows.push(Window {
                        epoch,
                        micro_batches: chunk.to_vec(),
                    });
                }
                epoch += 1;
                if per_epoch == 0 {
                    break;
                }
            }
        }
    }
    // TorchTune has no max_steps; an explicit one (`--max-steps`) stops the run and, as in
    // the HF stacks, becomes the schedule's horizon.
    if max_steps > 0 && flavour == Flavour::TorchTune {
        windows.truncate(max_steps as usize);
        return Ok(Plan {
            windows,
            total_steps: max_steps,
        });
    }
    Ok(Plan {
        windows,
        total_steps,
    })
}

/// `loss.normalization` of the IR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Normalization {
    TokenMeanOverStep,
    MeanOfMicrobatchMeans,
    TokenWeightedUnshifted,
}

impl Normalization {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "token_mean_over_step" => Normalization::TokenMeanOverStep,
            "mean_of_microbatch_means" => Normalization::MeanOfMicrobatchMeans,
            "token_weighted_unshifted" => Normalization::TokenWeightedUnshifted,
            other => {
                return Err(EngineError::unsupported(
                    "loss.normalization",
                    other,
                    "expected token_mean_over_step, mean_of_microbatch_means or token_weighted_unshifted",
                ))
            }
        })
    }
}

/// Which parameters decay: HF exempts biases and norm weights
/// (`Trainer.get_decay_parameter_names`); TorchTune passes every parameter to AdamW.
fn decays(flavour: Flavour, name: &str) -> bool {
    if flavour == Flavour::TorchTune {
        return true;
    }
    let n = name.to_lowercase();
    let segments: Vec<&str> = n.split('.').collect();
    !(n.contains("bias")
        || n.contains("layernorm")
        || n.contains("rmsnorm")
        || segments.contains(&"norm")
        || segments.iter().any(|s| s.ends_with("_norm")))
}

fn kind_of(dtype: &str, field: &str) -> Result<Kind> {
    match dtype {
        "fp32" | "float32" => Ok(Kind::Float),
        "bf16" | "bfloat16" => Ok(Kind::BFloat16),
        "fp16" | "float16" => Ok(Kind::Half),
        other => Err(EngineError::unsupported(
            field,
            other,
            "expected fp32, bf16 or fp16",
        )),
    }
}

/// The LoRA init a spec asks for, per flavour (see `lora` module docs).
fn lora_init(spec: &RunSpec, flavour: Flavour) -> Init {
    let a = &spec.adapter;
    if !a.init_from.is_empty() {
        return Init::Pinned(PathBuf::from(&a.init_from));
    }
    match flavour {
        Flavour::TorchTune => Init::TorchTuneReplay {
            seed: spec.training.seed,
        },
        _ => Init::PeftReplay {
            seed: a.init_seed.unwrap_or(spec.training.seed),
        },
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
fn mem_peak() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Everything set up and ready to train.
struct Recipe {
    spec: RunSpec,
    flavour: Flavour,
    device: Device,
    tok: Tokenizer,
    samples: Vec<Sample>,
    /// Held-out validation samples (`data.val_size`).
    val: Vec<Sample>,
    model: ModelForCausalLM,
    lora: Option<LoraSpec>,
    trainable: Vec<Tensor>,
    optimizer: AdamW,
    schedule: Schedule,
    plan: Plan,
    output: PathBuf,
    model_dir: PathBuf,
    /// Layer-wise activation recomputation (`memory.gradient_checkpointing` ≠ `off`).
    recompute: bool,
}

/// Run a spec end to end. On failure the run directory gets a `FAILED` file with the reason.
pub fn run(resolved: &Resolved, opts: &RunOptions) -> Result<RunSummary> {
    let mut resolved = resolved.clone();
    if let Some(m) = opts.max_steps {
        resolved.spec.training.max_steps = m;
        resolved
            .provenance
            .set("training.max_steps", Origin::explicit("--max-steps"));
    }
    if let Some(d) = &opts.compute_dtype {
        resolved.spec.precision.compute_dtype = d.clone();
        resolved
            .provenance
            .set("precision.compute_dtype", Origin::explicit("--dtype"));
    }
    if let Some(o) = &opts.output {
        resolved.spec.checkpoint.output_dir = o.display().to_string();
        resolved
            .provenance
            .set("checkpoint.output_dir", Origin::explicit("--output"));
    }
    let output = PathBuf::from(&resolved.spec.checkpoint.output_dir);
    std::fs::create_dir_all(&output).map_err(|e| EngineError::io(&output, e))?;
    let metrics_path = output.join("metrics.jsonl");
    if opts.resume_from.is_none() && metrics_path.exists() {
        return Err(EngineError::bad_file(
            &output,
            "already holds a run (metrics.jsonl); choose another --output or resume",
        ));
    }
    let _ = std::fs::remove_file(output.join("FAILED"));
    let result = setup(&resolved, opts, &output).and_then(|mut r| {
        let path = output.join("run.toml");
        std::fs::write(&path, resolved.to_toml(true)).map_err(|e| EngineError::io(&path, e))?;
        r.train(opts)
    });
    if let Err(e) = &result {
        let _ = std::fs::write(output.join("FAILED"), format!("{e}\n"));
    }
    result
}

fn setup(resolved: &Resolved, opts: &RunOptions, output: &Path) -> Result<Recipe> {
    let spec = resolved.spec.clone();
    let flavour = opts.flavour;
    let device = opts.device;
    // 1. precision: the model's math dtype, and the adapter's own dtype
    // QLoRA: NF4 base weights (bitsandbytes-compatible), block 64, with or without double
    // quantisation; FP4 and 8-bit bases are not implemented.
    let q = &spec.quantization;
    let qlora = spec.adapter.method == "qlora" || q.base_weights != "none";
    if qlora {
        if !matches!(q.base_weights.as_str(), "nf4" | "none") {
            return Err(EngineError::unsupported(
                "quantization.base_weights",
                &q.base_weights,
                "the engine quantises base weights as NF4 only",
            ));
        }
        if q.block_size != 64 {
            return Err(EngineError::unsupported(
                "quantization.block_size",
                q.block_size,
                "the engine's NF4 uses bitsandbytes' default block of 64",
            ));
        }
        if spec.adapter.method == "full" {
            return Err(EngineError::unsupported(
                "adapter.method",
                "full",
                "a full fine-tune cannot train quantised base weights",
            ));
        }
    }
    let compute = kind_of(&spec.precision.compute_dtype, "precision.compute_dtype")?;
    // HF autocast keeps fp32 master weights for trainable params; pure bf16 (TorchTune) does not.
    let compute = if device == Device::Cpu && compute == Kind::Half {
        Kind::Float
    } else {
        compute
    };
    // 2. tokenizer and samples: the step count depends on them
    let model_dir = model::locate(&spec.model.base)?;
    let tok_dir = if spec.model.tokenizer.is_empty() || spec.model.tokenizer == spec.model.base {
        model_dir.clone()
    } else {
        match model::locate(&spec.model.tokenizer) {
            Ok(d) => d,
            Err(_) if Path::new(&spec.model.tokenizer).exists() => {
                PathBuf::from(&spec.model.tokenizer)
            }
            Err(e) => return Err(e),
        }
    };
    let tok = Tokenizer::load(&tok_dir)?;
    let data::Split {
        train: samples,
        val,
    } = data::build_split(&spec, flavour, &tok)?;
    // 3. the model
    let attention = if spec.model.attention == "eager" {
        AttentionImpl::Eager
    } else {
        AttentionImpl::Sdpa
    };
    let mut model = model::load(&model_dir, compute, device, attention)?;
    let max_len = samples
        .iter()
        .chain(&val)
        .map(|s| s.input_ids.len())
        .max()
        .unwrap_or(0) as i64;
    if max_len > model.config.max_position_embeddings {
        return Err(EngineError::unsupported(
            "data.sequence_len",
            spec.data.sequence_len,
            format!(
                "samples reach {max_len} tokens but the model's max_position_embeddings is {}",
                model.config.max_position_embeddings
            ),
        ));
    }
    // 4. what trains: LoRA pairs (base frozen) or every weight
    for (_, p) in model.named_parameters() {
        let _ = p.set_requires_grad(false);
    }
    let (lora, named_trainable): (Option<LoraSpec>, Vec<(String, Tensor)>) =
        match spec.adapter.method.as_str() {
            "lora" | "qlora" => {
                if qlora {
                    // quantise before attaching: the adapters wrap the NF4 layers
                    let q = &spec.quantization;
                    model.quantize_linears(q.double_quant, &q.skip_modules)?;
                }
                if spec.adapter.use_dora {
                    return Err(EngineError::unsupported(
                        "adapter.use_dora",
                        "true",
                        "DoRA is not implemented",
                    ));
                }
                let ls = LoraSpec {
                    rank: i64::from(spec.adapter.rank),
                    alpha: spec.adapter.alpha,
                    dropout: spec.adapter.dropout,
                    use_rslora: spec.adapter.use_rslora,
                    target_modules: spec.adapter.target_modules.clone(),
                    kind: kind_of(&spec.adapter.weight_dtype, "adapter.weight_dtype")?,
                };
                lora::attach(&mut model, &ls, &lora_init(&spec, flavour))?;
                let t = model
                    .named_parameters()
                    .into_iter()
                    .filter(|(n, _)| n.contains(".lora_A.") || n.contains(".lora_B."))
                    .collect();
                (Some(ls), t)
            }
            "full" => {
                let t: Vec<(String, Tensor)> = model.named_parameters();
                for (_, p) in &t {
                    let _ = p.set_requires_grad(true);
                }
                (None, t)
            }
            other => {
                return Err(EngineError::unsupported(
                    "adapter.method",
                    other,
                    "the engine runs lora, qlora and full",
                ))
            }
        };
    // 5. optimizer
    let o = &spec.optimizer;
    if !matches!(
        o.name.as_str(),
        "adamw" | "adamw_torch" | "adamw_torch_fused" | "adamw_fused"
    ) {
        return Err(EngineError::unsupported(
            "optimizer.name",
            &o.name,
            "the engine implements torch AdamW (adamw, adamw_fused); 8-bit and other optimizers are not implemented",
        ));
    }
    let trainable: Vec<Tensor> = named_trainable
        .iter()
        .map(|(_, t)| t.shallow_clone())
        .collect();
    let optimizer = AdamW::new(
        AdamWConfig {
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
        },
        named_trainable
            .into_iter()
            .map(|(n, t)| {
                let wd = if decays(flavour, &n) {
                    o.weight_decay
                } else {
                    0.0
                };
                (n, t, wd)
            })
            .collect(),
    );
    // 6. the data plan, then the schedule over its horizon
    let plan = plan(&spec, flavour, samples.len(), spec.training.max_steps)?;
    let s = &spec.schedule;
    let warmup_steps = if s.warmup_steps == 0 && s.warmup_ratio > 0.0 {
        (s.warmup_ratio * plan.total_steps as f64).ceil() as u64
    } else {
        s.warmup_steps
    };
    let schedule = Schedule {
        kind: schedule::Kind::parse(&s.kind)?,
        base_lr: o.lr,
        warmup_steps,
        total_steps: plan.total_steps,
        num_cycles: s.num_cycles,
        min_lr_ratio: s.min_lr_ratio,
    };
    // HF Trainer: `set_seed(args.seed)` in its constructor, after the model and the adapter
    // exist; dropout draws start from there. TorchTune seeds once, before building the model
    // (the replayed init draws already advanced the generator).
    if flavour != Flavour::TorchTune {
        tch::manual_seed(spec.training.seed as i64);
    }
    let recompute = spec.memory.gradient_checkpointing != "off";
    Ok(Recipe {
        spec,
        flavour,
        device,
        tok,
        samples,
        val,
        model,
        lora,
        trainable,
        optimizer,
        schedule,
        plan,
        output: output.to_path_buf(),
        model_dir,
        recompute,
    })
}

/// The HF Trainer's `eval_loss`: the held-out samples in order, in batches of `batch`
/// (Axolotl's `eval_batch_size` defaults to the micro-batch), each batch's token-mean CE over
/// its shifted labels, then the mean over samples of their batch's loss (`evaluation_loop`
/// repeats each batch loss `batch_size` times). No dropout, no gradients.
pub fn eval_loss(
    model: &ModelForCausalLM,
    samples: &[&Sample],
    batch: usize,
    pad_id: i64,
    device: Device,
) -> f64 {
    let _guard = tch::no_grad_guard();
    let (mut sum, mut n) = (0f64, 0usize);
    for chunk in samples.chunks(batch.max(1)) {
        let b = data::collate(chunk, pad_id, device);
        let labels = Recipe::shifted_labels(&b);
        let logits = model
            .forward(&b.input_ids, b.docs.as_ref(), false)
            .to_kind(Kind::Float);
        let v = logits.size().last().copied().unwrap_or(0);
        let ce = logits.view([-1, v]).cross_entropy_loss::<Tensor>(
            &labels.view([-1]),
            None,
            tch::Reduction::Sum,
            -100,
            0.0,
        );
        let mean = ce.double_value(&[]) / (b.label_tokens_shifted.max(1) as f64);
        sum += mean * chunk.len() as f64;
        n += chunk.len();
    }
    sum / n.max(1) as f64
}

impl Recipe {
    /// labels[..., 1:] then one −100 column: position i predicts token i+1 (no logit slicing).
    fn shifted_labels(batch: &data::Batch) -> Tensor {
        let (b, t) = batch.labels.size2().expect("labels are (B, T)");
        Tensor::cat(
            &[
                batch.labels.narrow(1, 1, t - 1),
                Tensor::full([b, 1], -100, (Kind::Int64, batch.labels.device())),
            ],
            1,
        ) // (B, T)
    }

    /// Replay the RNG draws LoRA dropout made in the windows a resumed run skips, so the
    /// generator is where the uninterrupted run had it.
    fn replay_dropout(&self, windows: &[Window]) {
        let Some(ls) = &self.lora else { return };
        if ls.dropout <= 0.0 {
            return;
        }
        let cfg = &self.model.config;
        let c = cfg.hidden_size;
        for w in windows {
            for mb in &w.micro_batches {
                let t = mb
                    .iter()
                    .map(|&s| self.samples[s].input_ids.len())
                    .max()
                    .unwrap_or(0) as i64;
                let b = mb.len() as i64;
                for _layer in 0..cfg.num_hidden_layers {
                    // in forward order, each LoRA'd linear draws one mask the shape of its input
                    for m in LayerLinear::ALL {
                        if ls.target_modules.iter().any(|target| target == m.name()) {
                            let (d_in, _, _) = m.dims(cfg, cfg.head_dim);
                            let mut noise = Tensor::empty([b, t, d_in], (ls.kind, self.device));
                            let _ = noise.bernoulli_float_(1.0 - ls.dropout);
                        }
                    }
                }
                if ls.target_modules.iter().any(|m| m == "lm_head") && !self.model.has_tied_head() {
                    let mut noise = Tensor::empty([b, t, c], (ls.kind, self.device));
                    let _ = noise.bernoulli_float_(1.0 - ls.dropout);
                }
            }
        }
    }

    fn train(&mut self, opts: &RunOptions) -> Result<RunSummary> {
        let mut start = 0usize;
        if let Some(ck) = &opts.resume_from {
            start = self.resume(ck)? as usize;
        }
        let end = match opts.stop_after {
            Some(s) => (s as usize).min(self.plan.windows.len()),
            None => self.plan.windows.len(),
        };
        let metrics_path = self.output.join("metrics.jsonl");
        let mut metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|e| EngineError::io(&metrics_path, e))?;
        let bar = opts.progress.then(|| {
            let b = indicatif::ProgressBar::new(self.plan.windows.len() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
                )
                .expect("valid template"),
            );
            b.set_position(start as u64);
            b
        });
        let save_every = self.spec.checkpoint.save_steps;
        let mut losses = Vec::new();
        for step_idx in start..end {
            let window = self.plan.windows[step_idx].clone();
            let global_step = step_idx as u64 + 1;
            let m = match self.train_step(global_step, &window) {
                Ok(m) => m,
                Err(e @ EngineError::NonFiniteLoss { .. }) => {
                    // Keep the last good state as a checkpoint to inspect or resume from.
                    let last_good = global_step - 1;
                    if last_good > 0 && !checkpoint::dir_for(&self.output, last_good).is_dir() {
                        self.save_checkpoint(last_good)?;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            losses.push(m.loss);
            let line = serde_json::to_string(&m).expect("metrics serialise");
            writeln!(metrics, "{line}").map_err(|e| EngineError::io(&metrics_path, e))?;
            if let Some(b) = &bar {
                b.set_position(global_step);
                b.set_message(format!("loss {:.4}  {:.0} tok/s", m.loss, m.tokens_per_sec));
            }
            let epoch_end = self
                .plan
                .windows
                .get(step_idx + 1)
                .is_none_or(|w| w.epoch != window.epoch);
            let due = if save_every > 0 {
                global_step % save_every == 0
            } else {
                epoch_end
            };
            if due && (global_step as usize) < self.plan.windows.len() {
                self.save_checkpoint(global_step)?;
            }
        }
        if let Some(b) = &bar {
            b.finish();
        }
        let done = end as u64;
        let mut eval = None;
        if end == self.plan.windows.len() && !self.val.is_empty() {
            let mb = self.spec.batch.micro_batch_per_device.max(1) as usize;
            let rows: Vec<&Sample> = self.val.iter().collect();
            let loss = eval_loss(&self.model, &rows, mb, self.tok.pad_id(), self.device);
            let line = serde_json::json!({
                "step": done,
                "epoch": self.plan.windows.last().map_or(0, |w| w.epoch),
                "eval_loss": loss,
                "eval_samples": rows.len(),
            });
            writeln!(metrics, "{line}").map_err(|e| EngineError::io(&metrics_path, e))?;
            eval = Some(loss);
        }
        if end == self.plan.windows.len() {
            self.save_final()?;
        } else {
            self.save_checkpoint(done)?;
        }
        Ok(RunSummary {
            output: self.output.clone(),
            steps: done,
            final_loss: losses.last().copied().unwrap_or(f64::NAN),
            losses,
            flavour: self.flavour,
            eval_loss: eval,
        })
    }

    /// One optimizer step over `window`'s micro-batches.
    fn train_step(&mut self, global_step: u64, window: &Window) -> Result<StepMetrics> {
        let t0 = Instant::now();
        let pad = self.tok.pad_id();
        let batches: Vec<data::Batch> = window
            .micro_batches
            .iter()
            .map(|mb| {
                let rows: Vec<&Sample> = mb.iter().map(|&i| &self.samples[i]).collect();
                data::collate(&rows, pad, self.device)
            })
            .collect();
        let n_shifted: i64 = batches.iter().map(|b| b.label_tokens_shifted).sum();
        let n_unshifted: i64 = batches.iter().map(|b| b.label_tokens_unshifted).sum();
        let tokens: i64 = batches.iter().map(|b| b.tokens).sum();
        let norm = Normalization::parse(&self.spec.loss.normalization)?;
        let n_micro = batches.len() as f64;
        let mut running = Tensor::zeros([], (Kind::Float, self.device));
        for b in &batches {
            let n_mb = b.label_tokens_shifted;
            let scale = |sum: Tensor| match norm {
                // TorchTune: CEWithChunkedOutputLoss = Σ CE / n_shifted(mb); the recipe
                // multiplies by n_unshifted(mb) and scales the grads by 1/Σ n_unshifted later.
                Normalization::TokenWeightedUnshifted => {
                    if n_mb == 0 {
                        sum * 0.0
                    } else {
                        sum / (n_mb as f64) * (b.label_tokens_unshifted as f64)
                    }
                }
                // HF ForCausalLMLoss with num_items_in_batch = the window's shifted count.
                Normalization::TokenMeanOverStep => sum / (n_shifted.max(1) as f64),
                // HF without num_items_in_batch: each micro-batch's mean, ÷ the window's
                // micro-batch count (`current_gradient_accumulation_steps`).
                Normalization::MeanOfMicrobatchMeans => sum / (n_mb.max(1) as f64) / n_micro,
            };
            // forward → Σ CE (fp32) → scale → backward, by layer recomputation when asked;
            // packed rows take their positions and block-causal mask from `b.docs`
            let loss = recompute::forward_backward(
                &self.model,
                &b.input_ids,
                b.docs.as_ref(),
                &Self::shifted_labels(b),
                self.recompute,
                &scale,
            )?;
            running += loss;
        }
        let logged = match norm {
            Normalization::TokenWeightedUnshifted => {
                let scale = 1.0f32 / n_unshifted.max(1) as f32;
                optim::scale_grads(&self.trainable, scale);
                // running_loss.item() / num_tokens: a float32 reciprocal times the sum
                running.double_value(&[]) * f64::from(scale)
            }
            _ => running.double_value(&[]),
        };
        if !logged.is_finite() {
            // Leave the weights as the last good step made them.
            self.optimizer.zero_grad();
            return Err(EngineError::NonFiniteLoss {
                step: global_step,
                loss: logged,
            });
        }
        let grad_norm = self
            .optimizer
            .clip_grad_norm(self.spec.optimizer.max_grad_norm)?;
        let lr = self.schedule.lr_at(global_step);
        self.optimizer.step(lr)?;
        self.optimizer.zero_grad();
        let reported_lr = if self.spec.logging.lr_reported == "next" {
            self.schedule.base_lr * self.schedule.lambda(global_step)
        } else {
            lr
        };
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        Ok(StepMetrics {
            step: global_step,
            epoch: window.epoch,
            loss: logged,
            lr: reported_lr,
            grad_norm,
            tokens,
            label_tokens: n_shifted,
            tokens_per_sec: tokens as f64 / secs,
            mem_peak: match self.device {
                // peak bytes allocated by libtorch's CUDA caching allocator
                Device::Cuda(i) => {
                    super::cuda_mem::allocator_stats(i).map(|s| s.allocated_peak.max(0) as u64)
                }
                _ => mem_peak(),
            },
        })
    }

    /// Weights of the run: the PEFT adapter, or the full model as HF safetensors.
    fn save_weights(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
        match &self.lora {
            Some(ls) => lora::save_peft(&self.model, ls, &self.spec.model.base, dir),
            None => {
                let params: Vec<(String, Tensor)> = self.model.named_parameters();
                super::io::write_safetensors(&dir.join("model.safetensors"), &params)?;
                for f in [
                    "config.json",
                    "generation_config.json",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "special_tokens_map.json",
                ] {
                    let src = self.model_dir.join(f);
                    if src.is_file() {
                        std::fs::copy(&src, dir.join(f)).map_err(|e| EngineError::io(&src, e))?;
                    }
                }
                Ok(())
            }
        }
    }

    fn save_checkpoint(&self, step: u64) -> Result<()> {
        let dir = checkpoint::dir_for(&self.output, step);
        self.save_weights(&dir)?;
        checkpoint::write_state(
            &dir,
            &TrainerState {
                global_step: step,
                flavour: self.flavour.name().into(),
                method: self.spec.adapter.method.clone(),
            },
            &self.optimizer.state_tensors(),
        )?;
        checkpoint::prune(&self.output, self.spec.checkpoint.save_total_limit);
        Ok(())
    }

    fn save_final(&self) -> Result<()> {
        self.save_weights(&self.output)
    }

    /// Load weights and optimizer state from a checkpoint; returns the step it reached.
    fn resume(&mut self, dir: &Path) -> Result<u64> {
        let state = checkpoint::read_state(dir)?;
        if state.flavour != self.flavour.name() || state.method != self.spec.adapter.method {
            return Err(EngineError::bad_file(
                dir,
                format!(
                    "checkpoint of a {} {} run cannot resume a {} {} run",
                    state.flavour,
                    state.method,
                    self.flavour.name(),
                    self.spec.adapter.method
                ),
            ));
        }
        let _guard = tch::no_grad_guard();
        let weights = match &self.lora {
            Some(_) => super::io::read_safetensors(&dir.join("adapter_model.safetensors"))?
                .into_iter()
                .map(|(k, v)| (k.trim_start_matches("base_model.model.").to_string(), v))
                .collect::<indexmap::IndexMap<_, _>>(),
            None => super::io::read_safetensors(&dir.join("model.safetensors"))?,
        };
        for (name, param) in self
            .optimizer
            .params
            .iter_mut()
            .map(|s| (s.name.clone(), &mut s.param))
        {
            let src = weights.get(&name).ok_or_else(|| {
                EngineError::tensor(&name, format!("missing from {}", dir.display()))
            })?;
            param.f_copy_(&src.f_to_device(param.device())?.f_to_kind(param.kind())?)?;
        }
        let opt = super::io::read_safetensors(&dir.join("optimizer.safetensors"))?;
        self.optimizer.load_state(&opt)?;
        let step = state.global_step;
        if step as usize > self.plan.windows.len() {
            return Err(EngineError::bad_file(
                dir,
                "checkpoint is past the end of this run",
            ));
        }
        let skipped = self.plan.windows[..step as usize].to_vec();
        self.replay_dropout(&skipped);
        Ok(step)
    }
}
