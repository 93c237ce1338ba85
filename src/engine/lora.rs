//! LoRA exactly as PEFT computes it: attaching the pair to the model's linear layers (which
//! carry it, [`super::layers::Linear`]), its initial values, and the PEFT adapter files.
//!
//! y = W·x + b + s · B·(A·dropout(x)), with A (R, in), B (out, R) and s = α/R (rsLoRA: α/√R).
//! W and b stay frozen; only A and B train (PEFT `LoraLayer`, TorchTune `LoRALinear`, same
//! shapes and the same product order: B(A(x)) first, then · s).
//!
//! Initial values (PEFT `init_lora_weights=True`, TorchTune `_lora_a_init_params`):
//! A ~ kaiming_uniform(a=√5) = U(−bound, bound), bound = √3·gain/√in with gain = √(2/(1+a²))
//! (= 1/√in up to rounding, computed exactly as torch does), B = 0. Three ways to get them:
//! - [`Init::Pinned`]: read a PEFT adapter folder (`adapter.init_from`), the only way to match
//!   Axolotl, whose LoRA init is not seeded;
//! - [`Init::PeftReplay`]: `torch.manual_seed(seed)` then replay every RNG draw
//!   `get_peft_model` makes (each target gets a default-initialised `nn.Linear(in, R)` and
//!   `nn.Linear(R, out)`, then A is re-drawn), in module order;
//! - [`Init::TorchTuneReplay`]: `torch.manual_seed(seed)` then replay the draws of TorchTune's
//!   model builder (every base linear, LoRA pair, embedding and head is default-initialised on
//!   construction before the checkpoint overwrites the base weights).
//! - [`Init::TorchTuneShardedReplay`]: TorchTune's distributed recipes on W ranks. The model is
//!   built on the meta device (no draws) and sharded (FSDP2, rows split as `torch.chunk`);
//!   then every rank, seeded `seed + rank` (`training.set_seed`), draws A's rows of its own
//!   shard, module by module (`LoRALinear.initialize_parameters` on a DTensor draws locally on
//!   CPU meshes). So A is the concatenation of W independent row blocks.
//!
//! Both replays draw on the CPU generator that `tch::manual_seed` shares with
//! `torch.manual_seed`, in the adapter dtype, so the values are bit-identical to the frameworks'.
//! DoRA ([`LoraSpec::dora`]): the same pair plus a magnitude per output row, started at
//! ‖W + s·B·A‖ over the loaded weights or read from a pinned adapter (see [`super::dora`]).
//!
//! Left out: PiSSA/LoftQ/EVA inits, LoRA on embeddings, `rank_pattern`/`alpha_pattern`.

use super::dora::{self, Dora};
use super::error::{read_json, EngineError, Result};
use super::io;
use super::layers::Lora;
use super::model::{Config, LayerLinear, ModelForCausalLM};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// What to attach: the IR's `[adapter]` section, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub rank: i64,
    pub alpha: f64,
    pub dropout: f64,
    pub use_rslora: bool,
    /// HF module names (`q_proj`, …, `lm_head`), matched against the last path segment.
    pub target_modules: Vec<String>,
    /// dtype of A and B and of their optimizer state.
    pub kind: Kind,
    /// DoRA, with whose forward (`adapter.use_dora`); `None` is plain LoRA.
    pub dora: Option<dora::Style>,
}

impl LoraSpec {
    /// s = α/R, or α/√R with rsLoRA (PEFT `LoraLayer.update_layer`).
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    fn targets(&self, module: &str) -> bool {
        let last = module.rsplit('.').next().unwrap_or(module);
        self.target_modules.iter().any(|t| t == last || t == module)
    }
}

/// Where the initial A and B come from (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    Pinned(std::path::PathBuf),
    PeftReplay {
        seed: u64,
    },
    TorchTuneReplay {
        seed: u64,
    },
    TorchTuneShardedReplay {
        seed: u64,
        rank: usize,
        world: usize,
    },
}

/// torch `nn.init.kaiming_uniform_(w, a=√5)` bound for fan-in `fan_in`, computed with the same
/// float operations as torch/nn/init.py so the bound is bit-identical.
fn kaiming_bound(fan_in: i64) -> f64 {
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a.powi(2))).sqrt();
    let std = gain / (fan_in as f64).sqrt();
    3f64.sqrt() * std
}

/// A fresh (out, in) tensor drawn as `nn.Linear.reset_parameters` draws its weight.
fn draw_linear_weight(d_out: i64, d_in: i64, kind: Kind) -> Tensor {
    let bound = kaiming_bound(d_in);
    let mut w = Tensor::empty([d_out, d_in], (kind, Device::Cpu));
    let _ = w.uniform_(-bound, bound);
    w
}

/// `nn.Linear(d_in, d_out, bias)` construction: weight, then bias U(±1/√in).
fn draw_linear(d_in: i64, d_out: i64, bias: bool, kind: Kind) {
    let _ = draw_linear_weight(d_out, d_in, kind);
    if bias {
        let bound = if d_in > 0 {
            1.0 / (d_in as f64).sqrt()
        } else {
            0.0
        };
        let mut b = Tensor::empty([d_out], (kind, Device::Cpu));
        let _ = b.uniform_(-bound, bound);
    }
}

/// One LoRA pair as PEFT's `update_layer` + `reset_lora_parameters` make it:
/// `nn.Linear(in, R)` and `nn.Linear(R, out)` (both default-initialised), then A re-drawn
/// with kaiming_uniform(a=√5) and B zeroed. Returns (A, B).
fn draw_lora_pair(d_in: i64, d_out: i64, r: i64, kind: Kind) -> (Tensor, Tensor) {
    let _ = draw_linear_weight(r, d_in, kind); // lora_A's own nn.Linear init
    let _ = draw_linear_weight(d_out, r, kind); // lora_B's own nn.Linear init
    let a = draw_linear_weight(r, d_in, kind); // kaiming_uniform_(A, a=√5)
    let b = Tensor::zeros([d_out, r], (kind, Device::Cpu));
    (a, b)
}

/// Attach LoRA to every targeted linear of `model` and set A and B per `init`. Base weights
/// are frozen (no grad); A and B require grad. Returns the attached module names.
pub fn attach(model: &mut ModelForCausalLM, spec: &LoraSpec, init: &Init) -> Result<Vec<String>> {
    let device = model.named_parameters()[0].1.device(); // the embedding's
    let scale = spec.scale();
    let pinned = match init {
        Init::Pinned(dir) => Some(PinnedAdapter::read(dir)?),
        _ => None,
    };
    if let Init::TorchTuneReplay { seed } = init {
        tch::manual_seed(*seed as i64);
    }
    if let Init::PeftReplay { seed } = init {
        tch::manual_seed(*seed as i64);
    }
    let cfg = model.config.clone();
    let tied = model.has_tied_head();
    let mut attached = Vec::new();
    let mut tt_pairs: Vec<(String, Tensor, Tensor)> = Vec::new();
    if let Init::TorchTuneReplay { .. } = init {
        tt_pairs = torchtune_replay(spec, &cfg, tied);
    }
    if let Init::TorchTuneShardedReplay { seed, rank, world } = init {
        tt_pairs = torchtune_sharded_replay(spec, &cfg, tied, *seed, *rank, *world);
    }
    model.for_each_linear_mut(|name, lin| {
        if !spec.targets(name) {
            return Ok(());
        }
        let (d_in, d_out) = (lin.in_features(), lin.out_features());
        let mut magnitude = None;
        let (a, b) = match init {
            Init::Pinned(dir) => {
                let p = pinned.as_ref().expect("read above");
                if spec.dora.is_some() {
                    magnitude = p.magnitude(name, d_out)?;
                }
                p.pair(name, spec.rank, d_in, d_out, dir)?
            }
            Init::PeftReplay { .. } => draw_lora_pair(d_in, d_out, spec.rank, spec.kind),
            Init::TorchTuneReplay { .. } | Init::TorchTuneShardedReplay { .. } => {
                let i = tt_pairs
                    .iter()
                    .position(|(n, _, _)| n == name)
                    .ok_or_else(|| {
                        EngineError::tensor(name, "not built by the TorchTune replay")
                    })?;
                let (_, a, b) = tt_pairs.swap_remove(i);
                (a, b)
            }
        };
        let a = a
            .f_to_kind(spec.kind)?
            .f_to_device(device)?
            .set_requires_grad(true);
        let b = b
            .f_to_kind(spec.kind)?
            .f_to_device(device)?
            .set_requires_grad(true);
        // DoRA: the pinned magnitude, else ‖W + s·B·A‖ over the loaded base (the frameworks
        // compute it once the checkpoint is in, from the initial A and B)
        let dora = match spec.dora {
            None => None,
            Some(style) => {
                let m = match magnitude {
                    Some(m) => m,
                    None => dora::initial_magnitude(&lin.dense_weight(), &a, &b, scale),
                };
                let magnitude = m
                    .f_to_kind(spec.kind)?
                    .f_to_device(device)?
                    .set_requires_grad(true);
                Some(Dora { magnitude, style })
            }
        };
        lin.lora = Some(Lora {
            a,
            b,
            scale,
            dropout: spec.dropout,
            dora,
        });
        attached.push(name.to_string());
        Ok(())
    })?;
    if attached.is_empty() {
        return Err(EngineError::unsupported(
            "adapter.target_modules",
            spec.target_modules.join(", "),
            "no linear layer of the model has one of these names",
        ));
    }
    if let Some(p) = &pinned {
        p.check_all_used(&attached, spec.dora.is_some())?;
    }
    Ok(attached)
}

/// Replay the RNG draws of TorchTune's `lora_<family>` builder (torchtune 0.6.1
/// `models/*/_component_builders.py`) and return the LoRA pairs it ends up with, by HF name.
///
/// Construction order per layer: [`LayerLinear::TORCHTUNE_BUILD_ORDER`] (each an `nn.Linear`,
/// or a `LoRALinear` = base `nn.Linear` + LoRA pair); norms and RoPE draw nothing. After the
/// layers: `nn.Embedding` (normal_(0, 1)), then the output `nn.Linear` unless tied. Gemma 2
/// (`lora_gemma2`): the embedding first, then [`LayerLinear::TORCHTUNE_GEMMA2_BUILD_ORDER`]
/// per layer, and a `TiedLinear` head (no draws).
fn torchtune_replay(spec: &LoraSpec, cfg: &Config, tied: bool) -> Vec<(String, Tensor, Tensor)> {
    let kind = spec.kind;
    let c = cfg.hidden_size;
    let d = torchtune_head_dim(cfg);
    // lora_gemma2: the embedding first, then per layer the MLP before the attention
    let gemma = cfg.gemma.is_some();
    let mut pairs = Vec::new();
    let mut module = |name: String, d_in: i64, d_out: i64, bias: bool| {
        draw_linear(d_in, d_out, bias, kind);
        if spec.targets(&name) {
            let (a, b) = draw_lora_pair(d_in, d_out, spec.rank, kind);
            pairs.push((name, a, b));
        }
    };
    let embed = || {
        let mut e = Tensor::empty([cfg.vocab_size, c], (kind, Device::Cpu));
        let _ = e.normal_(0.0, 1.0);
    };
    if gemma {
        embed();
    }
    let order = if gemma {
        LayerLinear::TORCHTUNE_GEMMA2_BUILD_ORDER
    } else {
        LayerLinear::TORCHTUNE_BUILD_ORDER
    };
    for l in 0..cfg.num_hidden_layers {
        for m in order {
            let (d_in, d_out, bias) = m.dims(cfg, d);
            module(format!("model.layers.{l}.{}", m.path()), d_in, d_out, bias);
        }
    }
    if !gemma {
        embed();
    }
    if !tied {
        module("lm_head".into(), c, cfg.vocab_size, false);
    }
    pairs
}

/// The head dimension of TorchTune's builders: C / H (`embed_dim // num_heads`), except
/// Gemma 2's, which take `head_dim` itself (Gemma 2 9B: 256, not 3584 / 16).
fn torchtune_head_dim(cfg: &Config) -> i64 {
    if cfg.gemma.is_some() {
        cfg.head_dim
    } else {
        cfg.hidden_size / cfg.num_attention_heads
    }
}

/// The LoRA pairs of TorchTune's distributed recipes on `world` ranks (module docs), as rank
/// `rank` ends up with them: the other ranks' row blocks are replayed first, this rank's last,
/// so the generator is left where TorchTune leaves this rank's (dropout draws follow).
fn torchtune_sharded_replay(
    spec: &LoraSpec,
    cfg: &Config,
    tied: bool,
    seed: u64,
    rank: usize,
    world: usize,
) -> Vec<(String, Tensor, Tensor)> {
    let kind = spec.kind;
    let d = torchtune_head_dim(cfg);
    // LoRA modules in `model.modules()` order: each layer's attention then MLP, then the head
    let mut modules: Vec<(String, i64, i64)> = Vec::new();
    for l in 0..cfg.num_hidden_layers {
        for m in LayerLinear::TORCHTUNE_BUILD_ORDER {
            let (d_in, d_out, _) = m.dims(cfg, d);
            modules.push((format!("model.layers.{l}.{}", m.path()), d_in, d_out));
        }
    }
    if !tied {
        modules.push(("lm_head".into(), cfg.hidden_size, cfg.vocab_size));
    }
    modules.retain(|(name, _, _)| spec.targets(name));
    let r = spec.rank;
    let a: Vec<Tensor> = modules
        .iter()
        .map(|(_, d_in, _)| Tensor::zeros([r, *d_in], (kind, Device::Cpu)))
        .collect();
    // FSDP2 shards dim 0 as torch.chunk: blocks of ceil(R / W) rows, the last ones short or empty
    let block = (r as usize).div_ceil(world) as i64;
    let others = (0..world).filter(|&q| q != rank);
    for q in others.chain(std::iter::once(rank)) {
        tch::manual_seed((seed + q as u64) as i64);
        let lo = (q as i64 * block).min(r);
        let hi = (lo + block).min(r);
        if lo == hi {
            continue;
        }
        for (t, (_, d_in, _)) in a.iter().zip(&modules) {
            // kaiming_uniform_ on the local shard: the bound is the global fan-in's
            t.narrow(0, lo, hi - lo)
                .copy_(&draw_linear_weight(hi - lo, *d_in, kind));
        }
    }
    modules
        .into_iter()
        .zip(a)
        .map(|((name, _, d_out), a)| (name, a, Tensor::zeros([d_out, r], (kind, Device::Cpu))))
        .collect()
}

/// A PEFT adapter folder read for its A/B tensors.
struct PinnedAdapter {
    tensors: indexmap::IndexMap<String, Tensor>,
}

impl PinnedAdapter {
    fn read(dir: &Path) -> Result<Self> {
        let file = dir.join("adapter_model.safetensors");
        if !file.is_file() {
            return Err(EngineError::bad_file(
                dir,
                "no adapter_model.safetensors (adapter.init_from must be a PEFT adapter folder)",
            ));
        }
        Ok(PinnedAdapter {
            tensors: io::read_safetensors(&file)?,
        })
    }

    /// PEFT saves `base_model.model.<module>.lora_A.weight` (adapter name dropped).
    fn pair(
        &self,
        module: &str,
        r: i64,
        d_in: i64,
        d_out: i64,
        dir: &Path,
    ) -> Result<(Tensor, Tensor)> {
        let get = |which: &str, shape: [i64; 2]| -> Result<Tensor> {
            let key = format!("base_model.model.{module}.{which}.weight");
            let t = self.tensors.get(&key).ok_or_else(|| {
                EngineError::tensor(&key, format!("missing from {}", dir.display()))
            })?;
            if t.size() != shape {
                return Err(EngineError::tensor(
                    &key,
                    format!("shape {:?}, the run needs {shape:?}", t.size()),
                ));
            }
            Ok(t.shallow_clone())
        };
        Ok((get("lora_A", [r, d_in])?, get("lora_B", [d_out, r])?))
    }

    /// PEFT's DoRA magnitude `base_model.model.<module>.lora_magnitude_vector`, if saved.
    fn magnitude(&self, module: &str, d_out: i64) -> Result<Option<Tensor>> {
        let key = format!("base_model.model.{module}.lora_magnitude_vector");
        match self.tensors.get(&key) {
            None => Ok(None),
            Some(t) if t.size() != [d_out] => Err(EngineError::tensor(
                &key,
                format!("shape {:?}, the run needs [{d_out}]", t.size()),
            )),
            Some(t) => Ok(Some(t.shallow_clone())),
        }
    }

    fn check_all_used(&self, attached: &[String], dora: bool) -> Result<()> {
        for key in self.tensors.keys() {
            let used = attached.iter().any(|m| {
                key == &format!("base_model.model.{m}.lora_A.weight")
                    || key == &format!("base_model.model.{m}.lora_B.weight")
                    || (dora && key == &format!("base_model.model.{m}.lora_magnitude_vector"))
            });
            if !used {
                return Err(EngineError::tensor(
                    key,
                    "in the initial adapter but the run's target_modules do not include it",
                ));
            }
        }
        Ok(())
    }
}

/// Whether a parameter name is an adapter tensor: LoRA A or B, or a DoRA magnitude.
pub fn is_adapter_param(name: &str) -> bool {
    name.contains(".lora_A.")
        || name.contains(".lora_B.")
        || name.ends_with(".lora_magnitude_vector")
}

/// Every LoRA tensor of the model with its PEFT file name
/// (`base_model.model.<module>.lora_A.weight`, DoRA's `….lora_magnitude_vector`).
pub fn peft_state_dict(model: &ModelForCausalLM) -> Vec<(String, Tensor)> {
    model
        .named_parameters()
        .into_iter()
        .filter(|(n, _)| is_adapter_param(n))
        .map(|(n, t)| (format!("base_model.model.{n}"), t))
        .collect()
}

/// Write `adapter_model.safetensors` + `adapter_config.json` as PEFT's `save_pretrained` does.
pub fn save_peft(
    model: &ModelForCausalLM,
    spec: &LoraSpec,
    base_model: &str,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    io::write_safetensors(
        &dir.join("adapter_model.safetensors"),
        &peft_state_dict(model),
    )?;
    let mut targets = spec.target_modules.clone();
    targets.sort();
    let config = serde_json::json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": spec.rank,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": spec.dora.is_some(),
        "use_rslora": spec.use_rslora,
    });
    let path = dir.join("adapter_config.json");
    let text = serde_json::to_string_pretty(&config).expect("a JSON literal serialises");
    std::fs::write(&path, text + "\n").map_err(|e| EngineError::io(&path, e))
}

/// `r`, `lora_alpha` and `target_modules` of a PEFT adapter folder (for checks).
pub fn read_peft_config(dir: &Path) -> Result<serde_json::Value> {
    read_json(&dir.join("adapter_config.json"))
}
