//! TorchTune's message framing per model family, as `translators/torchtune/framing.toml`
//! lists it: which tokenizer style frames a family's messages, and for the SentencePiece
//! families (Llama 2, Code Llama, Mistral, Gemma) the prompt template and
//! `tokenize_messages_no_special_tokens` (torchtune 0.6.1
//! `modules/transforms/tokenizers/_utils.py`), reproduced here with the model's
//! `tokenizer.json`.
//!
//! SentencePiece through `tokenizer.json`: TorchTune encodes each text piece with the
//! SentencePiece model (`tokenizer.model`), the engine with the bare model of the converted
//! `tokenizer.json` on the text as SentencePiece normalises it
//! ([`Tokenizer::encode_sentencepiece`]): HF's own `encode` differs for a piece that starts
//! with a space (`" [/INST]"`) under a `Metaspace(prepend_scheme = always | first)`
//! pre-tokenizer, and for text holding an added token's string. TorchTune's
//! `trim_leading_whitespace` encodes `"\n" + text` and drops the tokens of `"\n"`; so does
//! the engine. The tiny SentencePiece fixture (`fixtures/tokenizers/tiny-spm-llama`, with
//! both tokenizer.json forms) checks the ids against TorchTune's own samples.

use super::tokenizer::Tokenizer;
use crate::engine::error::{EngineError, Result, Unsupported};
use serde::Deserialize;
use std::sync::OnceLock;

/// The tokenizer style of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    Chatml,
    Llama3,
    Sentencepiece,
    /// `Phi3MiniTokenizer` (SentencePiece with `<|user|>` … `<|end|>` role tokens).
    Phi3,
    Refused,
}

/// What becomes of a system message in a SentencePiece family's template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SystemRule {
    /// A message like the others.
    #[default]
    Message,
    /// An error (MistralChatTemplate).
    Refuse,
    /// Wrapped and put into every later user message, after its prefix (Llama2ChatTemplate).
    IntoUser,
}

/// A SentencePiece family's prompt template.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default)]
    pub system: SystemRule,
    #[serde(default)]
    pub system_wrap: Option<[String; 2]>,
    #[serde(default)]
    pub wrap: indexmap::IndexMap<String, [String; 2]>,
}

/// One entry of `framing.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Framing {
    pub prefixes: Vec<String>,
    pub style: Style,
    #[serde(default)]
    pub template: Template,
    #[serde(default)]
    pub reason: String,
}

#[derive(Deserialize)]
struct Table {
    family: Vec<Framing>,
}

fn table() -> &'static [Framing] {
    static T: OnceLock<Vec<Framing>> = OnceLock::new();
    T.get_or_init(|| {
        toml::from_str::<Table>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/translators/torchtune/framing.toml"
        )))
        .expect("translators/torchtune/framing.toml is valid")
        .family
    })
}

/// The framing of `family`, or why TorchTune's framing of it is not run.
pub fn of(family: &str) -> std::result::Result<&'static Framing, Unsupported> {
    let found = table()
        .iter()
        .find(|f| f.prefixes.iter().any(|p| family.starts_with(p.as_str())));
    match found {
        Some(f) if f.style != Style::Refused => Ok(f),
        Some(f) => Err(Unsupported::new(
            "model.family",
            family,
            format!("TorchTune message framing: {}", f.reason),
        )),
        None => {
            let known: Vec<&str> = table()
                .iter()
                .filter(|f| f.style != Style::Refused)
                .flat_map(|f| f.prefixes.iter().map(String::as_str))
                .collect();
            Err(Unsupported::new(
                "model.family",
                if family.is_empty() {
                    "(unknown)"
                } else {
                    family
                },
                format!(
                    "TorchTune message framing is implemented for the {} tokenizers \
                     (translators/torchtune/framing.toml)",
                    known.join(", ")
                ),
            ))
        }
    }
}

/// A TorchTune `Message` (text content only).
pub struct TtMessage<'a> {
    pub role: &'a str,
    pub content: String,
    pub masked: bool,
}

/// A templated message: its text pieces, each encoded on its own.
struct Pieces<'a> {
    role: &'a str,
    items: Vec<&'a str>,
    masked: bool,
}

/// The prompt template applied (Llama2ChatTemplate, MistralChatTemplate, or none).
fn apply<'a>(t: &'a Template, messages: &'a [TtMessage<'a>]) -> Result<Vec<Pieces<'a>>> {
    let mut system: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for m in messages {
        if m.role == "system" {
            match t.system {
                SystemRule::Refuse => {
                    return Err(EngineError::Data(
                        "System prompts are not supported in MistralChatTemplate (TorchTune \
                         raises on a system message for this family)"
                            .into(),
                    ))
                }
                SystemRule::IntoUser => {
                    let [a, b] = t.system_wrap.as_ref().ok_or_else(|| {
                        EngineError::Data("framing.toml: into_user needs system_wrap".into())
                    })?;
                    system = vec![a.as_str(), m.content.as_str(), b.as_str()];
                    continue;
                }
                SystemRule::Message => {}
            }
        }
        let mut items = Vec::new();
        let wrap = t.wrap.get(m.role);
        if let Some([pre, _]) = wrap {
            items.push(pre.as_str());
        }
        if m.role == "user" {
            items.extend(&system);
        }
        items.push(m.content.as_str());
        if let Some([_, post]) = wrap {
            items.push(post.as_str());
        }
        out.push(Pieces {
            role: m.role,
            items,
            masked: m.masked,
        });
    }
    Ok(out)
}

/// SentencePiece `encode(text, add_bos=False, add_eos=False, trim_leading_whitespace)`.
fn encode(tok: &Tokenizer, text: &str, trim: bool) -> Result<Vec<i64>> {
    if !trim {
        return tok.encode_sentencepiece(text);
    }
    // `encoded_prefix = encode("\n")`; `encode("\n" + text)[len(encoded_prefix):]`
    let prefix = tok.encode_sentencepiece("\n")?;
    let mut ids = tok.encode_sentencepiece(&format!("\n{text}"))?;
    Ok(ids.split_off(prefix.len().min(ids.len())))
}

/// `SentencePieceBaseTokenizer.encodes_whitespace`: whether any of " \n\t\r\v" encodes to a
/// token (only then does `trim_leading_whitespace` trim).
fn encodes_whitespace(tok: &Tokenizer) -> Result<bool> {
    let mut any = false;
    for c in [" ", "\n", "\t", "\r", "\u{b}"] {
        any |= !tok.encode_sentencepiece(c)?.is_empty();
    }
    Ok(any)
}

fn special(tok: &Tokenizer, t: &str) -> Result<i64> {
    tok.token_id(t)
        .ok_or_else(|| EngineError::Data(format!("tokenizer has no `{t}` token")))
}

/// `Phi3MiniTokenizer.__call__` (torchtune 0.6.1 `models/phi3/_tokenizer.py`), which calls
/// `tokenize_messages(messages)` with its default `add_eos=False`, with `max_seq_len = max`:
/// BOS before the first message only (no EOS ends a turn, so no turn starts again); per
/// message the role token (`<|user|>`, `<|assistant|>`, `<|system|>`), `encode("\n")`, the
/// content `.rstrip(" ")` encoded with `trim_leading_whitespace=True`, `<|end|>`, `"\n"`, all
/// with the message's mask; stop once the length reaches `max`, then cut to `max` (no EOS
/// forced: `truncate(…, None)`).
pub fn phi3(tok: &Tokenizer, messages: &[TtMessage], max: usize) -> Result<(Vec<i64>, Vec<bool>)> {
    let bos = tok
        .bos
        .as_ref()
        .ok_or_else(|| EngineError::Data("the tokenizer has no bos_token".into()))?
        .id;
    let end = special(tok, "<|end|>")?;
    let newline = tok.encode_sentencepiece("\n")?;
    let trim = encodes_whitespace(tok)?;
    let mut tokens: Vec<i64> = Vec::new();
    let mut mask: Vec<bool> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = match m.role {
            "user" => special(tok, "<|user|>")?,
            "assistant" => special(tok, "<|assistant|>")?,
            "system" => special(tok, "<|system|>")?,
            other => {
                return Err(EngineError::Data(format!(
                    "Unknown role '{other}' for message: '{}'",
                    m.content
                )))
            }
        };
        let mut t = if i == 0 { vec![bos, role] } else { vec![role] };
        t.extend(&newline);
        t.extend(encode(tok, m.content.trim_end_matches(' '), trim)?);
        t.push(end);
        t.extend(&newline);
        mask.extend(std::iter::repeat_n(m.masked, t.len()));
        tokens.extend(t);
        if tokens.len() >= max {
            break;
        }
    }
    tokens.truncate(max);
    mask.truncate(max);
    Ok((tokens, mask))
}

/// `tokenize_messages_no_special_tokens(tokenizer, template(messages), bos_id, eos_id)` with
/// `max_seq_len = max`: the tokens and their masks (true = not trained).
pub fn sentencepiece(
    tok: &Tokenizer,
    t: &Template,
    messages: &[TtMessage],
    max: usize,
) -> Result<(Vec<i64>, Vec<bool>)> {
    let bos = tok
        .bos
        .as_ref()
        .ok_or_else(|| EngineError::Data("the tokenizer has no bos_token".into()))?
        .id;
    let eos = tok.eos.id;
    let encodes_whitespace = encodes_whitespace(tok)?;
    let mut tokens: Vec<i64> = Vec::new();
    let mut mask: Vec<bool> = Vec::new();
    let mut start_of_turn = true;
    let mut prev_ends_with_space = false;
    let mut last_masked = true;
    for m in apply(t, messages)? {
        last_masked = m.masked;
        if start_of_turn {
            tokens.push(bos);
            mask.push(m.masked);
        }
        let trim = !start_of_turn && !prev_ends_with_space && encodes_whitespace;
        let mut ids = Vec::new();
        for item in &m.items {
            ids.extend(encode(tok, item.trim_end_matches(' '), trim)?);
        }
        prev_ends_with_space = m.items.last().is_some_and(|s| s.ends_with(' '));
        mask.extend(std::iter::repeat_n(m.masked, ids.len()));
        tokens.extend(ids);
        if m.role == "assistant" {
            tokens.push(eos);
            mask.push(m.masked);
            start_of_turn = true;
        } else {
            start_of_turn = false;
        }
        if tokens.len() >= max {
            break;
        }
    }
    // `truncate(tokens, max, eos_id)`, `truncate(mask, max, message.masked)`
    tokens.truncate(max);
    mask.truncate(max);
    if let Some(last) = tokens.last_mut() {
        *last = eos;
    }
    if let Some(last) = mask.last_mut() {
        *last = last_masked;
    }
    Ok((tokens, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_map_to_their_framing() {
        assert_eq!(of("qwen2_5").unwrap().style, Style::Chatml);
        assert_eq!(of("llama3_2").unwrap().style, Style::Llama3);
        for f in ["llama2", "code_llama2", "mistral", "gemma", "gemma2"] {
            assert_eq!(of(f).unwrap().style, Style::Sentencepiece, "{f}");
        }
        assert_eq!(of("phi3_mini").unwrap().style, Style::Phi3);
        let phi4 = of("phi4").unwrap_err().to_string();
        assert!(phi4.contains("Phi4Tokenizer"), "{phi4}");
        let other = of("falcon").unwrap_err().to_string();
        assert!(other.contains("qwen, llama3, llama2"), "{other}");
        assert_eq!(of("llama2").unwrap().template.system, SystemRule::IntoUser);
        assert_eq!(of("mistral").unwrap().template.system, SystemRule::Refuse);
    }
}
