//! `translators/axolotl/keys.toml`: what a field table cannot say about Axolotl's keys
//! (sections, no-op values, dataset keys, plugins, FSDP layer classes, DeepSpeed files, the
//! schema's long tail), and the table that adds that long tail to `fields.toml`.

use crate::translate::data;
use crate::translate::framework::Framework;
use crate::translate::table::{Ignored, Table};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;

pub(super) const FW: Framework = Framework::Axolotl;

/// The four switches of Axolotl's fused LoRA kernels (auto-enabled when none is set).
pub(super) const KERNEL_KEYS: [&str; 4] = [
    "lora_mlp_kernel",
    "lora_qkv_kernel",
    "lora_o_kernel",
    "lora_embedding_kernel",
];

/// Legacy attention switches and the `attn_implementation` each stands for
/// (schemas/config.py, deprecated in favour of attn_implementation).
pub(super) const LEGACY_ATTENTION: [(&str, &str); 6] = [
    ("flash_attention", "flash_attention_2"),
    ("sdp_attention", "sdpa"),
    ("eager_attention", "eager"),
    ("flex_attention", "flex_attention"),
    ("xformers_attention", "xformers"),
    ("sage_attention", "sage"),
];

/// `translators/axolotl/keys.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Keys {
    /// `chat_template` values Axolotl accepts (schemas/enums.py ChatTemplate).
    pub(super) chat_templates: Vec<String>,
    pub(super) section: Vec<SectionSpec>,
    /// key → values that ask for Axolotl's own default (`"*"` = any value).
    pub(super) noop: IndexMap<String, Value>,
    pub(super) datasets: DatasetKeys,
    pub(super) plugins: Plugins,
    pub(super) fsdp_layer_class: IndexMap<String, String>,
    pub(super) deepspeed: IndexMap<String, DeepSpeedFile>,
    pub(super) group: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SectionSpec {
    pub(super) title: String,
    pub(super) keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DatasetKeys {
    /// `type:` spellings of the alpaca family, kept verbatim as the prompt style.
    pub(super) alpaca_styles: Vec<String>,
    /// Entry keys with no IR field, kept per dataset.
    pub(super) kept: Vec<String>,
    /// RL / reward dataset types (or their prefix), refused.
    pub(super) rl_types: Vec<String>,
    /// Entry key → values that are Axolotl's own default.
    pub(super) noop: IndexMap<String, Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Plugins {
    pub(super) cut_cross_entropy: String,
    pub(super) liger: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeepSpeedFile {
    pub(super) stage: u32,
    #[serde(default)]
    pub(super) offload_params: bool,
    #[serde(default)]
    pub(super) offload_optimizer: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Group {
    pub(super) reason: String,
    pub(super) keys: Vec<String>,
}

pub(super) fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        toml::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/translators/axolotl/keys.toml"
        )))
        .unwrap_or_else(|e| panic!("built-in translators/axolotl/keys.toml is invalid: {e}"))
    })
}

/// fields.toml plus the schema's long tail from keys.toml `[[group]]` as `ignored` entries.
pub(super) fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = data::table(FW).clone();
        for g in &keys().group {
            for k in &g.keys {
                let known = t.field.iter().any(|f| &f.key == k)
                    || t.ignored.iter().any(|i| &i.key == k)
                    || t.unsupported.iter().any(|u| &u.key == k);
                if !known {
                    t.ignored.push(Ignored {
                        key: k.clone(),
                        reason: g.reason.clone(),
                    });
                }
            }
        }
        t
    })
}
