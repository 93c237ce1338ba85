//! Setup: a resolved spec → a [`Recipe`] ready to train.

use super::full_shard::FullShard;
use super::options::RunOptions;
use super::parallel::DataParallel;
use super::plan::{plan, Plan};
use super::shard::Shard;
use crate::engine::data::{self, Sample, Tokenizer};
use crate::engine::dora::Style as DoraStyle;
use crate::engine::error::{EngineError, Result};
use crate::engine::flavour::Flavour;
use crate::engine::lora::{self, Init, LoraSpec};
use crate::engine::model::{self, AttentionImpl, ModelForCausalLM};
use crate::engine::optim::adamw::AdamWConfig;
use crate::engine::optim::select::{Optimizer, OptimizerKind, Trainable};
use crate::engine::quant::{int8, QuantFormat};
use crate::engine::schedule::{self, Schedule};
use crate::engine::support::{self, Architecture};
use crate::ir::{
    Attention, BaseWeights, Dtype, Method, PrecisionMode, Resolved, RunSpec, Strategy,
};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Everything set up and ready to train.
pub(super) struct Recipe {
    pub(super) spec: RunSpec,
    pub(super) flavour: Flavour,
    pub(super) device: Device,
    pub(super) tok: Tokenizer,
    pub(super) samples: Vec<Sample>,
    /// Held-out validation samples (`data.val_size`), packed as Axolotl packs them.
    pub(super) val: Vec<Sample>,
    /// Rows per evaluation batch.
    pub(super) eval_batch: usize,
    pub(super) model: ModelForCausalLM,
    pub(super) lora: Option<LoraSpec>,
    pub(super) trainable: Vec<Tensor>,
    pub(super) optimizer: Optimizer,
    pub(super) schedule: Schedule,
    pub(super) plan: Plan,
    pub(super) output: PathBuf,
    pub(super) model_dir: PathBuf,
    /// Layer-wise activation recomputation (`memory.gradient_checkpointing` ≠ `off`).
    pub(super) recompute: bool,
    /// The process group of a multi-process run; `None` when alone.
    pub(super) dp: Option<DataParallel>,
    /// The frozen decoder weights sharded over the ranks (FSDP / ZeRO-3 LoRA runs).
    pub(super) full_shard: Option<FullShard>,
}

/// Tensors by checkpoint name.
type NamedTensors = Vec<(String, Tensor)>;

/// Setup in the order of the module docs; each phase needs what the ones before made.
pub(super) fn setup(resolved: &Resolved, opts: &RunOptions, output: &Path) -> Result<Recipe> {
    let spec = resolved.spec.clone();
    let flavour = opts.flavour;
    let device = opts.device;
    // 0. every feature the spec uses, all refusals at once, before anything loads (the same
    //    check as `run --check`; config.json is checked when the model loads)
    support::ensure(&spec, flavour, Architecture::FromConfigJson)?;
    // meet the other ranks first: a rank that cannot is an error before minutes of loading
    let dp = match &opts.world {
        Some(w) => Some(DataParallel::join(w, device)?),
        None => None,
    };
    let shard = dp.as_ref().map_or(Shard::SINGLE, |d| Shard {
        rank: d.world.rank,
        size: d.world.size,
    });
    // 1. precision: the model's math dtype (the adapter's own dtype comes with the LoRA spec)
    let qlora = support::quantises_base(&spec);
    let compute = compute_kind(&spec, device)?;
    // 2. tokenizer and samples: the step count depends on them
    let model_dir = model::locate(&spec.model.base)?;
    let tok = Tokenizer::load(&tokenizer_dir(&spec, &model_dir)?)?;
    let data::Split {
        train: samples,
        val,
    } = data::build_split(&spec, flavour, &tok)?;
    // 3. the model
    let mut model = load_model(&spec, flavour, &model_dir, compute, device, &samples, &val)?;
    // Gemma 2: the attention soft-cap needs the eager kernel unless the framework drops it.
    if model::gemma::needs_eager(model.config.gemma.as_ref(), spec.model.attention, flavour) {
        model.attention = AttentionImpl::Eager;
    }
    // 4. what trains: LoRA pairs (base frozen) or every weight
    let (lora, named_trainable) = attach_trainable(&spec, flavour, shard, qlora, &mut model)?;
    // 4b. several ranks under FSDP / ZeRO-3: each keeps its shard of the frozen weights
    let full_shard = match &dp {
        Some(d) if shards_frozen_weights(&spec, flavour) => {
            Some(FullShard::new(&mut model, d.group())?)
        }
        _ => None,
    };
    // 5. optimizer
    let (trainable, optimizer) = build_optimizer(&spec, flavour, named_trainable)?;
    // 6. the data plan, then the schedule over its horizon
    //    (Axolotl's multipack: the plan packs each epoch's rows, which replace the samples)
    let (plan, samples) = if super::multipack::applies(&spec, flavour) {
        super::multipack::plan(
            &spec,
            &samples,
            tok.pad_id(),
            spec.training.max_steps,
            shard,
        )?
    } else {
        let p = plan(
            &spec,
            flavour,
            samples.len(),
            spec.training.max_steps,
            shard,
        )?;
        (p, samples)
    };
    let (val, eval_batch) = super::multipack::eval_set(&spec, flavour, val, tok.pad_id())?;
    let schedule = build_schedule(&spec, &plan)?;
    // HF Trainer: `set_seed(args.seed)` in its constructor, after the model and the adapter
    // exist; dropout draws start from there. TorchTune seeds once, before building the model
    // (the replayed init draws already advanced the generator).
    if flavour != Flavour::TorchTune {
        tch::manual_seed(spec.training.seed as i64);
    }
    let recompute = spec.memory.gradient_checkpointing.is_on();
    Ok(Recipe {
        spec,
        flavour,
        device,
        tok,
        samples,
        val,
        eval_batch,
        model,
        lora,
        trainable,
        optimizer,
        schedule,
        plan,
        output: output.to_path_buf(),
        model_dir,
        recompute,
        dp,
        full_shard,
    })
}

/// FSDP (1 or 2) or DeepSpeed ZeRO-3 over a LoRA run: the frozen base is sharded; TorchTune's
/// distributed recipes always shard (FSDP2). A full fine-tune keeps whole replicas (its sharded
/// parameters, gradients and AdamW states are not built; docs/ENGINE.md, "Many processes").
fn shards_frozen_weights(spec: &RunSpec, flavour: Flavour) -> bool {
    let p = &spec.parallel;
    let full_shard = flavour == Flavour::TorchTune
        || match p.strategy {
            Strategy::Fsdp1 | Strategy::Fsdp2 => true,
            Strategy::Deepspeed => p.zero_stage == 3,
            Strategy::Single | Strategy::Ddp => false,
        };
    full_shard && matches!(spec.adapter.method, Method::Lora | Method::Qlora)
}

/// The model's math dtype on `device`.
fn compute_kind(spec: &RunSpec, device: Device) -> Result<Kind> {
    let compute = kind_of(spec.precision.compute_dtype);
    // HF autocast keeps fp32 master weights for trainable params; pure bf16 (TorchTune) does not.
    // A pure fp16 model stays fp16 (Axolotl loads a `load_in_8bit` base in fp16 unless bf16).
    Ok(
        if device == Device::Cpu
            && compute == Kind::Half
            && spec.precision.mode != PrecisionMode::Pure
        {
            Kind::Float
        } else {
            compute
        },
    )
}

/// The tokenizer's folder: the model's unless `model.tokenizer` names another model or a path.
fn tokenizer_dir(spec: &RunSpec, model_dir: &Path) -> Result<PathBuf> {
    if spec.model.tokenizer.is_empty() || spec.model.tokenizer == spec.model.base {
        return Ok(model_dir.to_path_buf());
    }
    match model::locate(&spec.model.tokenizer) {
        Ok(d) => Ok(d),
        Err(_) if Path::new(&spec.model.tokenizer).exists() => {
            Ok(PathBuf::from(&spec.model.tokenizer))
        }
        Err(e) => Err(e),
    }
}

/// Load the base model in `compute` on `device`, checking that every sample fits its positions.
fn load_model(
    spec: &RunSpec,
    flavour: Flavour,
    model_dir: &Path,
    compute: Kind,
    device: Device,
    samples: &[Sample],
    val: &[Sample],
) -> Result<ModelForCausalLM> {
    // The engine has two kernels: the reference one, and SDPA for every fused kernel.
    let attention = match spec.model.attention {
        Attention::Eager => AttentionImpl::Eager,
        Attention::Sdpa
        | Attention::FlashAttention2
        | Attention::FlashAttention3
        | Attention::FlexAttention
        | Attention::Xformers
        | Attention::Sage => AttentionImpl::Sdpa,
    };
    let torchtune = flavour == Flavour::TorchTune;
    let model = model::load_as(model_dir, compute, device, attention, torchtune)?;
    let max_len = samples
        .iter()
        .chain(val)
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
    Ok(model)
}

/// Freeze the base, then make trainable what `adapter.method` trains: LoRA pairs (on NF4
/// layers for QLoRA) or every weight. Returns the LoRA spec and the trainable tensors by name.
fn attach_trainable(
    spec: &RunSpec,
    flavour: Flavour,
    shard: Shard,
    qlora: bool,
    model: &mut ModelForCausalLM,
) -> Result<(Option<LoraSpec>, NamedTensors)> {
    for (_, p) in model.named_parameters() {
        let _ = p.set_requires_grad(false);
    }
    match spec.adapter.method {
        Method::Lora | Method::Qlora => {
            if qlora {
                // quantise before attaching: the adapters wrap the quantised layers
                let q = &spec.quantization;
                let format = match q.base_weights {
                    BaseWeights::Int8 => QuantFormat::Int8 {
                        threshold: int8::DEFAULT_THRESHOLD,
                    },
                    _ => QuantFormat::Nf4 {
                        double_quant: q.double_quant,
                    },
                };
                model.quantize_linears(format, &q.skip_modules)?;
            }
            let ls = LoraSpec {
                rank: i64::from(spec.adapter.rank),
                alpha: spec.adapter.alpha,
                dropout: spec.adapter.dropout,
                use_rslora: spec.adapter.use_rslora,
                target_modules: match flavour {
                    // Phi-3's fused module names stand for TorchTune's split parts
                    Flavour::TorchTune => {
                        model::torchtune::lora_targets(&model.config, &spec.adapter.target_modules)
                    }
                    _ => spec.adapter.target_modules.clone(),
                },
                kind: kind_of(spec.adapter.weight_dtype),
                dora: spec.adapter.use_dora.then_some(match flavour {
                    Flavour::TorchTune => DoraStyle::TorchTune,
                    _ => DoraStyle::Peft,
                }),
            };
            lora::attach(model, &ls, &lora_init(spec, flavour, shard))?;
            let t = model
                .named_parameters()
                .into_iter()
                .filter(|(n, _)| lora::is_adapter_param(n))
                .collect();
            Ok((Some(ls), t))
        }
        Method::Full => {
            let t: NamedTensors = model.named_parameters();
            for (_, p) in &t {
                let _ = p.set_requires_grad(true);
            }
            Ok((None, t))
        }
    }
}

/// The optimizer `optimizer.name` selects over the trainable tensors, with weight decay where
/// the flavour applies it (`support::check` has refused any other name already). Returns the
/// tensors (for grad scaling) and the optimizer.
fn build_optimizer(
    spec: &RunSpec,
    flavour: Flavour,
    named_trainable: NamedTensors,
) -> Result<(Vec<Tensor>, Optimizer)> {
    let o = &spec.optimizer;
    let kind = OptimizerKind::of(&o.name)?;
    let trainable: Vec<Tensor> = named_trainable
        .iter()
        .map(|(_, t)| t.shallow_clone())
        .collect();
    let params = named_trainable
        .into_iter()
        .map(|(name, tensor)| Trainable {
            weight_decay: if decays(flavour, &name) {
                o.weight_decay
            } else {
                0.0
            },
            // HF Trainer keeps `nn.Embedding` weights in 32-bit states under an 8-bit
            // bitsandbytes optimizer (`Trainer.create_optimizer`); TorchTune does not
            force_32bit: flavour != Flavour::TorchTune && is_embedding(&name),
            name,
            tensor,
        })
        .collect();
    let cfg = AdamWConfig {
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
    };
    Ok((trainable, Optimizer::new(kind, cfg, params)))
}

/// An `nn.Embedding` weight of the engine's families (`model.embed_tokens.weight`).
fn is_embedding(name: &str) -> bool {
    name.ends_with("embed_tokens.weight")
}

/// The LR schedule over the plan's horizon (a warmup ratio counts steps of that horizon).
fn build_schedule(spec: &RunSpec, plan: &Plan) -> Result<Schedule> {
    let s = &spec.schedule;
    let warmup_steps = if s.warmup_steps == 0 && s.warmup_ratio > 0.0 {
        (s.warmup_ratio * plan.total_steps as f64).ceil() as u64
    } else {
        s.warmup_steps
    };
    Ok(Schedule {
        kind: schedule::Kind::of(s.kind)?,
        base_lr: spec.optimizer.lr,
        warmup_steps,
        total_steps: plan.total_steps,
        num_cycles: s.num_cycles,
        min_lr_ratio: s.min_lr_ratio,
    })
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

fn kind_of(dtype: Dtype) -> Kind {
    match dtype {
        Dtype::Fp32 => Kind::Float,
        Dtype::Bf16 => Kind::BFloat16,
        Dtype::Fp16 => Kind::Half,
    }
}

/// The LoRA init a spec asks for, per flavour (see `lora` module docs).
fn lora_init(spec: &RunSpec, flavour: Flavour, shard: Shard) -> Init {
    let a = &spec.adapter;
    if !a.init_from.is_empty() {
        return Init::Pinned(PathBuf::from(&a.init_from));
    }
    match flavour {
        Flavour::TorchTune if shard.size > 1 => Init::TorchTuneShardedReplay {
            seed: spec.training.seed,
            rank: shard.rank,
            world: shard.size,
        },
        Flavour::TorchTune => Init::TorchTuneReplay {
            seed: spec.training.seed,
        },
        _ => Init::PeftReplay {
            seed: a.init_seed.unwrap_or(spec.training.seed),
        },
    }
}
