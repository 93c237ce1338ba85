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

/// Recognise a family. A local model folder is recognised from its own files first
/// (`config.json` `model_type`, and for Llama which tokenizer it ships), since a folder name
/// such as `tiny-llama` says little; otherwise from the hub id or path
/// (`meta-llama/Llama-3.2-1B` → llama3_2).
pub fn detect(model: &str) -> Option<&'static Family> {
    detect_from_folder(Path::new(model)).or_else(|| by_pattern(model))
}

fn by_pattern(model: &str) -> Option<&'static Family> {
    let lower = model.to_ascii_lowercase();
    all()
        .iter()
        .find(|f| f.name_patterns.iter().any(|p| lower.contains(p.as_str())))
}

/// The family of a local Hugging Face folder. Llama versions share `model_type = "llama"`:
/// a Llama 3 tokenizer (`<|begin_of_text|>`) means Llama 3, with `rope_type = "llama3"`
/// scaling Llama 3.1 or later; a folder name that names a version wins over both.
fn detect_from_folder(dir: &Path) -> Option<&'static Family> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let model_type = config.get("model_type")?.as_str()?;
    if model_type != "llama" {
        return by_pattern(&dir.display().to_string())
            .filter(|f| f.hf_model_type == model_type)
            .or_else(|| all().iter().rev().find(|f| f.hf_model_type == model_type));
    }
    if let Some(f) = by_pattern(&dir.display().to_string())
        .filter(|f| f.name != "llama" && f.hf_model_type == "llama")
    {
        return Some(f);
    }
    let tokenizer = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .or_else(|_| std::fs::read_to_string(dir.join("tokenizer.json")))
        .unwrap_or_default();
    let rope_type = config
        .get("rope_scaling")
        .or_else(|| config.get("rope_parameters"))
        .and_then(|r| r.get("rope_type"))
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let name = if tokenizer.contains("<|begin_of_text|>") {
        if rope_type == "llama3" {
            "llama3_1"
        } else {
            "llama3"
        }
    } else {
        "llama"
    };
    by_name(name)
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
            ("google/gemma-3-1b-it", "gemma3"),
            ("unsloth/gemma-3-270m-it", "gemma3"),
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
    fn local_folders_are_recognised_from_their_files() {
        let root = env!("CARGO_MANIFEST_DIR");
        let family =
            |m: &str| detect(&format!("{root}/fixtures/models/{m}")).map(|f| f.name.as_str());
        assert_eq!(family("tiny-llama"), Some("llama3"), "a Llama 3 tokenizer");
        assert_eq!(family("tiny-qwen2"), Some("qwen2"));
        assert_eq!(family("tiny-mistral"), Some("mistral"));
        assert_eq!(family("tiny-qwen3"), Some("qwen3"));
        assert_eq!(family("tiny-gemma2"), Some("gemma2"));
        assert_eq!(
            family("tiny-gemma3"),
            Some("gemma3"),
            "model_type gemma3_text"
        );
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
