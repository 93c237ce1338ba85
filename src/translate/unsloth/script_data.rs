//! `translators/unsloth/script.toml`: how the reader sees a script (the calls it reads, chat
//! templates, Alpaca prompt styles, HF `TrainingArguments` defaults).

use indexmap::IndexMap;
use serde::Deserialize;
use std::sync::OnceLock;

/// `translators/unsloth/script.toml`: how the reader sees a script.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScriptData {
    pub fast_path_model_types: Vec<String>,
    pub call: Vec<CallSpec>,
    pub chat_template: Vec<ChatTemplate>,
    pub alpaca_style: Vec<AlpacaStyle>,
    pub training_arguments: TrainingArguments,
}

/// One call the reader puts into the tree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallSpec {
    pub key: String,
    pub names: Vec<String>,
    #[serde(default)]
    pub receivers: Vec<String>,
    #[serde(default)]
    pub positional: Vec<String>,
    #[serde(default)]
    pub structural: Vec<String>,
    #[serde(default)]
    pub code: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatTemplate {
    pub unsloth: Vec<String>,
    pub ir: String,
    pub instruction_part: String,
    pub response_part: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlpacaStyle {
    pub names: Vec<String>,
    pub system_with_input: String,
    pub system_no_input: String,
    pub system_format: String,
    pub turn_format: String,
    pub turn_no_input_format: String,
}

impl AlpacaStyle {
    /// The full prompt (system paragraph + turn) with `{instruction}`/`{input}` placeholders.
    pub fn with_input(&self) -> String {
        self.system_format
            .replace("{system}", &self.system_with_input)
            + &self.turn_format
    }

    pub fn no_input(&self) -> String {
        self.system_format
            .replace("{system}", &self.system_no_input)
            + &self.turn_no_input_format
    }
}

/// HF `TrainingArguments` defaults (partial run tree) for scripts configured through it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrainingArguments {
    pub framework: String,
    pub version: String,
    pub values: toml::Table,
    #[serde(default)]
    pub notes: IndexMap<String, String>,
}

pub(crate) fn script_data() -> &'static ScriptData {
    static DATA: OnceLock<ScriptData> = OnceLock::new();
    DATA.get_or_init(|| {
        toml::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/translators/unsloth/script.toml"
        )))
        .unwrap_or_else(|e| panic!("built-in translators/unsloth/script.toml is invalid: {e}"))
    })
}

impl ScriptData {
    pub fn call(&self, key: &str) -> Option<&CallSpec> {
        self.call.iter().find(|c| c.key == key)
    }

    /// A chat template by any of its Unsloth names.
    pub fn template_by_unsloth(&self, name: &str) -> Option<&ChatTemplate> {
        let n = name.to_ascii_lowercase();
        self.chat_template.iter().find(|t| t.unsloth.contains(&n))
    }

    pub fn template_by_ir(&self, ir: &str) -> Option<&ChatTemplate> {
        self.chat_template.iter().find(|t| t.ir == ir)
    }

    pub fn alpaca_style(&self, name: &str) -> Option<&AlpacaStyle> {
        self.alpaca_style
            .iter()
            .find(|s| s.names.iter().any(|n| n == name))
    }
}
