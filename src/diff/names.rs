//! Tensor names of PEFT, TorchTune and tunebridge mapped onto one canonical form, and
//! TorchTune's per-head q/k row permutation.
//!
//! Canonical names are Hugging Face module paths without PEFT's `base_model.model.` prefix:
//! `model.layers.3.self_attn.q_proj` plus a part (LoRA A, LoRA B, DoRA magnitude, or a plain
//! parameter suffix such as `weight`). TorchTune names follow `torchtune/models/convert_weights.py`
//! (`_FROM_HF` and `_TO_PEFT_KEYS`): `layers.{i}.attn.output_proj` ↔ `…self_attn.o_proj`,
//! `mlp.w1/w2/w3` ↔ `gate_proj/down_proj/up_proj`, `output` ↔ `lm_head`, `lora_a/lora_b` ↔
//! `lora_A/lora_B`. tunebridge's own adapters use PEFT names.

use crate::ingest::{ModelShape, WeightOrigin};
use serde::Serialize;

/// Which piece of a module a tensor is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Part {
    /// LoRA down-projection, shape [r, in] (PEFT `lora_A`, embedding `lora_embedding_A`).
    LoraA,
    /// LoRA up-projection, shape [out, r].
    LoraB,
    /// DoRA magnitude vector.
    Magnitude,
    /// Any other parameter: the suffix after the module path (`weight`, `bias`, `scale`).
    Param(String),
}

/// A tensor name in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Canon {
    pub module: String,
    pub part: Part,
}

impl Canon {
    /// The canonical full name, PEFT-style for LoRA parts.
    pub fn full(&self) -> String {
        match &self.part {
            Part::LoraA => format!("{}.lora_A.weight", self.module),
            Part::LoraB => format!("{}.lora_B.weight", self.module),
            Part::Magnitude => format!("{}.lora_magnitude_vector", self.module),
            Part::Param(p) if self.module.is_empty() => p.clone(),
            Part::Param(p) => format!("{}.{p}", self.module),
        }
    }
}

/// TorchTune module names → HF, per `torchtune/models/convert_weights.py::_FROM_HF`.
const TUNE_TO_HF: &[(&str, &str)] = &[
    ("attn.q_proj", "self_attn.q_proj"),
    ("attn.k_proj", "self_attn.k_proj"),
    ("attn.v_proj", "self_attn.v_proj"),
    ("attn.output_proj", "self_attn.o_proj"),
    ("mlp.w1", "mlp.gate_proj"),
    ("mlp.w2", "mlp.down_proj"),
    ("mlp.w3", "mlp.up_proj"),
    ("sa_norm", "input_layernorm"),
    ("mlp_norm", "post_attention_layernorm"),
];

/// Canonical form of a tensor name written with the given origin's conventions.
pub fn canonical(name: &str, origin: WeightOrigin) -> Canon {
    match origin {
        WeightOrigin::TorchtuneNative
            if !name.starts_with("base_model.") && !name.starts_with("model.") =>
        {
            canonical_torchtune(name)
        }
        _ => canonical_peft(name),
    }
}

fn canonical_peft(name: &str) -> Canon {
    let n = name.strip_prefix("base_model.model.").unwrap_or(name);
    // In-memory PEFT names carry the adapter name: `lora_A.default.weight`.
    let n = n.replace(".default.weight", ".weight");
    let n = n.strip_suffix(".default").unwrap_or(&n).to_string();
    for (marker, part) in [
        (".lora_A.weight", Part::LoraA),
        (".lora_B.weight", Part::LoraB),
        (".lora_embedding_A", Part::LoraA),
        (".lora_embedding_B", Part::LoraB),
        (".lora_magnitude_vector.weight", Part::Magnitude),
        (".lora_magnitude_vector", Part::Magnitude),
    ] {
        if let Some(m) = n.strip_suffix(marker) {
            return Canon {
                module: m.to_string(),
                part,
            };
        }
    }
    split_param(&n)
}

fn split_param(n: &str) -> Canon {
    match n.rsplit_once('.') {
        Some((m, p)) => Canon {
            module: m.to_string(),
            part: Part::Param(p.to_string()),
        },
        None => Canon {
            module: String::new(),
            part: Part::Param(n.to_string()),
        },
    }
}

fn canonical_torchtune(name: &str) -> Canon {
    let (module, part) = if let Some(m) = name.strip_suffix(".lora_a.weight") {
        (m.to_string(), Part::LoraA)
    } else if let Some(m) = name.strip_suffix(".lora_b.weight") {
        (m.to_string(), Part::LoraB)
    } else if let Some(m) = name.strip_suffix(".magnitude") {
        (m.to_string(), Part::Magnitude)
    } else {
        let c = split_param(name);
        // TorchTune norms call their weight `scale`.
        let p = match c.part {
            Part::Param(p) if p == "scale" => "weight".to_string(),
            Part::Param(p) => p,
            _ => unreachable!("split_param returns Param"),
        };
        (c.module, Part::Param(p))
    };
    let module = match module.as_str() {
        "tok_embeddings" => "model.embed_tokens".to_string(),
        "norm" => "model.norm".to_string(),
        "output" => "lm_head".to_string(),
        m => match m.strip_prefix("layers.").and_then(|r| r.split_once('.')) {
            Some((i, rest)) => {
                let hf = TUNE_TO_HF
                    .iter()
                    .find(|(t, _)| *t == rest)
                    .map(|(_, h)| *h)
                    .unwrap_or(rest);
                format!("model.layers.{i}.{hf}")
            }
            None => m.to_string(),
        },
    };
    Canon { module, part }
}

/// How the q/k `lora_B` rows of a weight source must be reordered to reach HF's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QkFix {
    /// Already in HF layout.
    None,
    /// TorchTune interleaved → HF halves (`convert_weights.py::_permute` in `tune_to_hf`).
    TuneToHf,
    /// Undo a `tune_to_hf` that should not have happened: TorchTune 0.6.1's PEFT export
    /// permutes q/k `lora_B` rows for Qwen models too, whose weights it never permuted.
    HfToTune,
}

/// Decide the q/k fix for a weight source, with a note saying why when it matters.
pub fn qk_fix(origin: WeightOrigin, model: Option<&ModelShape>) -> (QkFix, Option<String>) {
    match (origin, model) {
        (WeightOrigin::Peft, _) => (QkFix::None, None),
        (WeightOrigin::TorchtuneNative, Some(m)) if m.torchtune_permutes_qk() => (
            QkFix::TuneToHf,
            Some(format!("q/k lora_B rows permuted from TorchTune's interleaved RoPE layout to HF's ({} heads)", m.family)),
        ),
        (WeightOrigin::TorchtuneNative, Some(_)) => (QkFix::None, None),
        (WeightOrigin::TorchtuneNative, None) => (
            QkFix::None,
            Some("TorchTune-named adapter without a model config: q/k lora_B rows compared in TorchTune's layout".into()),
        ),
        (WeightOrigin::TorchtunePeftExport, Some(m)) if !m.torchtune_permutes_qk() => (
            QkFix::HfToTune,
            Some(format!(
                "TorchTune 0.6.1 exported this {} adapter with q/k lora_B rows permuted as for Llama \
                 (its base weights are not permuted); the permutation is undone before comparing",
                m.family
            )),
        ),
        (WeightOrigin::TorchtunePeftExport, _) => (QkFix::None, None),
    }
}

/// Reorder the rows of B ([rows, cols], row-major) per head. `tune_to_hf`: view
/// [heads, head_dim/2, 2, cols] → swap axes 1 and 2; so HF row h·D + s·D/2 + j holds TorchTune
/// row h·D + 2j + s. `HfToTune` is the inverse.
pub fn permute_rows(
    b: &[f64],
    rows: usize,
    cols: usize,
    heads: usize,
    head_dim: usize,
    fix: QkFix,
) -> Option<Vec<f64>> {
    if fix == QkFix::None {
        return Some(b.to_vec());
    }
    if heads * head_dim != rows || head_dim % 2 != 0 || b.len() != rows * cols {
        return None;
    }
    let half = head_dim / 2;
    let mut out = vec![0.0; b.len()];
    for h in 0..heads {
        for s in 0..2 {
            for j in 0..half {
                let hf = h * head_dim + s * half + j;
                let tune = h * head_dim + 2 * j + s;
                let (dst, src) = match fix {
                    QkFix::TuneToHf => (hf, tune),
                    QkFix::HfToTune => (tune, hf),
                    QkFix::None => unreachable!("handled above"),
                };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&b[src * cols..(src + 1) * cols]);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
