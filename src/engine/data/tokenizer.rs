//! The model's tokenizer: `tokenizer.json` through the `tokenizers` crate (the same Rust code
//! under Python's `tokenizers` and transformers' fast tokenizers), plus the special tokens and
//! chat template of `tokenizer_config.json`.
//!
//! `encode(text, true)` = HF `tokenizer(text)` (the post-processor adds BOS where the model
//! does); `encode(text, false)` = `add_special_tokens=False`, which is also what TorchTune's
//! `encode(…, add_bos=False, add_eos=False)` gives for text without special-token strings.

use super::super::error::{read_json, EngineError, Result};
use std::path::{Path, PathBuf};

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub bos: Option<Special>,
    pub eos: Special,
    pub pad: Option<Special>,
    /// The Jinja chat template, when the tokenizer has one.
    pub chat_template: Option<String>,
    pub path: PathBuf,
    /// The SentencePiece emulation ([`Tokenizer::encode_sentencepiece`]), built on first use.
    spm: std::sync::OnceLock<std::result::Result<SentencePiece, String>>,
}

/// A SentencePiece model's `encode` through its converted `tokenizer.json`: the bare model
/// (BPE with byte fallback), no normaliser, pre-tokenizer or added tokens, on
/// `"▁" + text.replace(" ", "▁")` (`"▁"` only when the model adds a dummy prefix). This is
/// what `spm.encode(text)` computes, and differs from `encode(text, false)` where the
/// tokenizer.json's `Metaspace(prepend_scheme = always | first)` skips the prefix on text that
/// starts with a space, and where text holds an added token's string (SentencePiece reads
/// `<s>` or `[INST]` in text as plain characters).
struct SentencePiece {
    bare: tokenizers::Tokenizer,
    dummy_prefix: bool,
}

impl SentencePiece {
    /// From the tokenizer.json: spaces must become `▁` (a `Replace(" ", "▁")` normaliser or a
    /// `Metaspace` pre-tokenizer), else it is no SentencePiece conversion; the dummy prefix is
    /// a `Prepend("▁")` normaliser or a `Metaspace` that prepends.
    fn of(
        inner: &tokenizers::Tokenizer,
        json: &serde_json::Value,
    ) -> std::result::Result<Self, String> {
        let mut parts = Vec::new();
        collect(&json["normalizer"], "normalizers", &mut parts);
        collect(&json["pre_tokenizer"], "pretokenizers", &mut parts);
        let kind = |p: &serde_json::Value| p["type"].as_str().unwrap_or("").to_string();
        let replaces = parts.iter().any(|p| {
            (kind(p) == "Replace" && p["pattern"]["String"] == " " && p["content"] == "\u{2581}")
                || kind(p) == "Metaspace"
        });
        if !replaces {
            return Err(
                "its tokenizer.json is no SentencePiece conversion (spaces are not \
                        replaced by `▁`)"
                    .into(),
            );
        }
        let dummy_prefix = parts.iter().any(|p| match kind(p).as_str() {
            "Prepend" => p["prepend"] == "\u{2581}",
            "Metaspace" => {
                p["add_prefix_space"] == true
                    || matches!(p["prepend_scheme"].as_str(), Some("always" | "first"))
            }
            _ => false,
        });
        Ok(SentencePiece {
            bare: tokenizers::Tokenizer::new(inner.get_model().clone()),
            dummy_prefix,
        })
    }
}

/// A normaliser or pre-tokenizer and, for a `Sequence`, its members.
fn collect<'a>(v: &'a serde_json::Value, list: &str, out: &mut Vec<&'a serde_json::Value>) {
    if v["type"] == "Sequence" {
        for m in v[list].as_array().into_iter().flatten() {
            collect(m, list, out);
        }
    } else if v.is_object() {
        out.push(v);
    }
}

/// A special token's text and id.
#[derive(Debug, Clone, PartialEq)]
pub struct Special {
    pub text: String,
    pub id: i64,
}

/// `"<s>"` or `{"content": "<s>", …}` in `tokenizer_config.json`.
fn token_text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(String::from),
        _ => None,
    }
}

impl Tokenizer {
    /// Load from a model folder (or a file inside one, e.g. TorchTune's `vocab.json` path).
    pub fn load(location: &Path) -> Result<Tokenizer> {
        let dir = if location.is_file() {
            location.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            location.to_path_buf()
        };
        let file = dir.join("tokenizer.json");
        if !file.is_file() {
            return Err(EngineError::bad_file(
                &dir,
                "no tokenizer.json (slow SentencePiece/tiktoken tokenizers are not read)",
            ));
        }
        let inner = tokenizers::Tokenizer::from_file(&file)
            .map_err(|e| EngineError::bad_file(&file, e.to_string()))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = if cfg_path.is_file() {
            read_json(&cfg_path)?
        } else {
            serde_json::Value::Null
        };
        let special = |key: &str| -> Result<Option<Special>> {
            match token_text(cfg.get(key)) {
                None => Ok(None),
                Some(text) => {
                    let id = inner.token_to_id(&text).ok_or_else(|| {
                        EngineError::bad_file(
                            &cfg_path,
                            format!("{key} `{text}` is not in the vocabulary"),
                        )
                    })?;
                    Ok(Some(Special {
                        text,
                        id: i64::from(id),
                    }))
                }
            }
        };
        let eos = special("eos_token")?.ok_or_else(|| {
            EngineError::bad_file(&cfg_path, "no eos_token in tokenizer_config.json")
        })?;
        let chat_template = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(String::from)),
            _ => {
                let jinja = dir.join("chat_template.jinja");
                jinja
                    .is_file()
                    .then(|| std::fs::read_to_string(&jinja).ok())
                    .flatten()
            }
        };
        Ok(Tokenizer {
            bos: special("bos_token")?,
            pad: special("pad_token")?,
            eos,
            chat_template,
            inner,
            path: file,
            spm: std::sync::OnceLock::new(),
        })
    }

    /// Token ids of `text`; with `add_special`, as the post-processor frames it (BOS …).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<i64>> {
        let enc = self
            .inner
            .encode(text, add_special)
            .map_err(|e| EngineError::Data(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Ids with each token's byte range in `text`.
    pub fn encode_with_offsets(
        &self,
        text: &str,
        add_special: bool,
    ) -> Result<Vec<(i64, (usize, usize))>> {
        let enc = self
            .inner
            .encode(text, add_special)
            .map_err(|e| EngineError::Data(format!("tokenizer: {e}")))?;
        Ok(enc
            .get_ids()
            .iter()
            .zip(enc.get_offsets())
            .map(|(&i, &o)| (i64::from(i), o))
            .collect())
    }

    /// SentencePiece `encode(text, add_bos=False, add_eos=False)` of the model this
    /// tokenizer.json was converted from (see `SentencePiece`); an error for a tokenizer that
    /// is no SentencePiece conversion.
    pub fn encode_sentencepiece(&self, text: &str) -> Result<Vec<i64>> {
        let spm = self
            .spm
            .get_or_init(|| {
                let json = read_json(&self.path).map_err(|e| e.to_string())?;
                SentencePiece::of(&self.inner, &json)
            })
            .as_ref()
            .map_err(|m| {
                EngineError::bad_file(
                    &self.path,
                    format!("a SentencePiece tokenizer is needed: {m}"),
                )
            })?;
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let mut s = String::with_capacity(text.len() + 3);
        if spm.dummy_prefix {
            s.push('\u{2581}');
        }
        s.push_str(&text.replace(' ', "\u{2581}"));
        let enc = spm
            .bare
            .encode(s.as_str(), false)
            .map_err(|e| EngineError::Data(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    pub fn decode(&self, ids: &[i64]) -> String {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.inner.decode(&ids, false).unwrap_or_default()
    }

    /// Id used to pad input_ids (its value never reaches the loss): pad, else EOS.
    pub fn pad_id(&self) -> i64 {
        self.pad.as_ref().map_or(self.eos.id, |p| p.id)
    }
}
