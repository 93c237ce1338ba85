//! Model families (`translators/families.toml`): recognising a family from a model name or a
//! local `config.json`, and the names each framework gives it.

use serde::Deserialize;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    pub name: String,
    pub hf_model_type: String,
    pub name_patterns: Vec<String>,
    pub torchtune_module: String,
    pub torchtune_model_type: String,
    pub chat_template: String,
    /// Module names "every linear layer" expands to (lm_head excluded, as PEFT and Axolotl do).
    pub linear: Vec<String>,
}

#[derive(Deserialize)]
struct File {
    family: Vec<Family>,
}

pub fn all() -> &'static [Family] {
    static F: OnceLock<Vec<Family>> = OnceLock::new();
    F.get_or_init(|| {
        toml::from_str::<File>(super::data::families_text())
            .unwrap_or_else(|e| panic!("translators/families.toml: {e}"))
            .family
    })
}

pub fn by_name(name: &str) -> Option<&'static Family> {
    all().iter().find(|f| f.name == name)
}

/// Recognise a family from a hub id or path (`meta-llama/Llama-3.2-1B` → llama3_2). A local
/// folder's `config.json` `model_type` is the fallback.
pub fn detect(model: &str) -> Option<&'static Family> {
    let lower = model.to_ascii_lowercase();
    let by_pattern = all()
        .iter()
        .find(|f| f.name_patterns.iter().any(|p| lower.contains(p.as_str())));
    by_pattern.or_else(|| {
        let text = std::fs::read_to_string(Path::new(model).join("config.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let mt = v.get("model_type")?.as_str()?;
        all()
            .iter()
            .find(|f| {
                f.hf_model_type == mt
                    && f.name_patterns.iter().any(|p| p == mt || p.starts_with(mt))
            })
            .or_else(|| all().iter().rev().find(|f| f.hf_model_type == mt))
    })
}

/// Parameter-count tag in a model name (`Llama-3.2-1B-Instruct` → `1B`, `Qwen2.5-0.5B` → `0.5B`).
pub fn size_tag(model: &str) -> String {
    let name = model.rsplit('/').next().unwrap_or(model);
    for part in name.split(['-', '_']) {
        let (num, unit) = part.split_at(part.len().saturating_sub(1));
        if matches!(unit, "B" | "b" | "M" | "m")
            && !num.is_empty()
            && num.chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            return format!("{num}{}", unit.to_ascii_uppercase());
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_families_from_names() {
        let cases = [
            ("meta-llama/Llama-3.2-1B-Instruct", "llama3_2"),
            ("meta-llama/Meta-Llama-3.1-8B", "llama3_1"),
            ("NousResearch/Llama-2-7b-hf", "llama2"),
            ("Qwen/Qwen2.5-0.5B", "qwen2_5"),
            ("Qwen/Qwen3-8B", "qwen3"),
            ("mistralai/Mistral-7B-v0.1", "mistral"),
            ("unsloth/Llama-3.3-70B-Instruct-bnb-4bit", "llama3_3"),
            ("google/gemma-2-2b", "gemma2"),
            ("microsoft/Phi-3-mini-4k-instruct", "phi3"),
        ];
        for (model, family) in cases {
            assert_eq!(
                detect(model).map(|f| f.name.as_str()),
                Some(family),
                "{model}"
            );
        }
    }

    #[test]
    fn size_tags() {
        assert_eq!(size_tag("meta-llama/Llama-3.2-1B-Instruct"), "1B");
        assert_eq!(size_tag("Qwen/Qwen2.5-0.5B"), "0.5B");
        assert_eq!(size_tag("NousResearch/Llama-2-7b-hf"), "7B");
        assert_eq!(size_tag("HuggingFaceTB/SmolLM2-135M"), "135M");
        assert_eq!(size_tag("fixtures/models/tiny-llama"), "");
    }
}
