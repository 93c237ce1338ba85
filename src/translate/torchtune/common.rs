//! What the TorchTune reader and writer share: the framework, the seed rule, and the names
//! of the modules LoRA can target.

use crate::translate::families;
use crate::translate::framework::Framework;

pub(super) const FW: Framework = Framework::Torchtune;

/// Provenance rule that marks `seed: null` (a random seed per run); the writer turns it back
/// into `seed: null` for TorchTune.
pub const RANDOM_SEED_RULE: &str =
    "seed: null → TorchTune draws a random seed at start-up (training/seed.py); 0 stands in for it";

/// TorchTune's attention module names → Hugging Face names (`_TO_PEFT_TARGET_MODULES`).
pub const ATTN_MODULES: [(&str, &str); 4] = [
    ("q_proj", "q_proj"),
    ("k_proj", "k_proj"),
    ("v_proj", "v_proj"),
    ("output_proj", "o_proj"),
];
pub const MLP_MODULES: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];
/// Order target modules are listed in (the order of a decoder layer, then the LM head).
pub const TARGET_ORDER: [&str; 8] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "lm_head",
];

/// TorchTune module names in layer order, fused into the family's Hugging Face names where
/// its checkpoints fuse projections (Phi-3's qkv_proj and gate_up_proj).
pub fn hf_targets(family: &str, mut targets: Vec<String>) -> Vec<String> {
    targets.sort_by_key(|t| TARGET_ORDER.iter().position(|o| o == t).unwrap_or(99));
    targets.dedup();
    let Some(f) = families::by_name(family) else {
        return targets;
    };
    for (fused, parts) in [
        ("qkv_proj", &["q_proj", "k_proj", "v_proj"][..]),
        ("gate_up_proj", &["gate_proj", "up_proj"][..]),
    ] {
        if f.linear.iter().any(|l| l == fused)
            && parts.iter().all(|p| targets.iter().any(|t| t == p))
        {
            let at = targets.iter().position(|t| t == parts[0]).unwrap_or(0);
            targets.retain(|t| !parts.contains(&t.as_str()));
            targets.insert(at.min(targets.len()), fused.to_string());
        }
    }
    targets
}
