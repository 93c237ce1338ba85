//! Dataset rows → (input_ids, labels), exactly as each framework tokenizes them.
//!
//! Labels are *unshifted* (same length as input_ids, -100 = no loss); the shift happens in the
//! loss. What differs per framework, for the same `alpaca` row:
//!
//! | | Axolotl 0.19 (`type: alpaca`) | TorchTune 0.6.1 (`alpaca_dataset`) | Unsloth notebooks (TRL SFT) |
//! |---|---|---|---|
//! | text | prompt (Stanford strings) then output | prompt as a *user* message, output as *assistant*, in the tokenizer's chat framing | one string, `### Input:` always present, + EOS text |
//! | tokenized as | two strings: prompt with BOS, output without BOS + EOS | per message, no BOS (Qwen) | one string with BOS |
//! | masked | prompt (incl. BOS) unless `train_on_inputs` | user turn unless `train_on_input`; the last token's label always (truncate() quirk) | nothing |
//! | too long | each part truncated to `sequence_len`, then the sample dropped if longer | truncated to `max_seq_len`, last token forced to EOS | truncated |
//!
//! Sources: axolotl `prompt_tokenizers.py::InstructionPromptTokenizingStrategy`,
//! `prompters.py::AlpacaPrompter`; torchtune `data/_messages.py::AlpacaToMessages`,
//! `models/qwen2/_tokenizer.py::tokenize_messages`, `data/_utils.py::truncate`; unsloth
//! `Llama3.1_(8B)-Alpaca` notebook, `unsloth_zoo/dataset_utils.py`.

use super::super::error::{EngineError, Result, Unsupported};
use super::sample::Sample;
use super::template::{ChatTemplate, Message};
use super::tokenizer::Tokenizer;
use super::tt_framing::TtMessage;
use crate::engine::flavour::Flavour;
use crate::ir::{DatasetFormat, Overlong};
use serde_json::{Map, Value};

pub const IGNORE: i64 = -100;

/// The Stanford Alpaca prompt pair (`translators/prompts.toml`, table `alpaca`); Axolotl's
/// AlpacaPrompter "instruct" style and TorchTune's AlpacaToMessages use the same text.
#[derive(Debug, Clone, PartialEq)]
pub struct AlpacaStrings {
    pub with_input: String,
    pub no_input: String,
}

static PROMPTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/translators/prompts.toml"
));

impl AlpacaStrings {
    /// The strings of a `prompts.toml` table; `templates` from the IR (`format`,
    /// `no_input_format`) override them.
    pub fn resolve(
        style: &str,
        templates: &indexmap::IndexMap<String, String>,
        flavour: Flavour,
    ) -> Result<Self, Unsupported> {
        let table: toml::Table = toml::from_str(PROMPTS).expect("prompts.toml is valid TOML");
        // `alpaca_chat_template`: the same strings, framed as a chat turn (see `alpaca`)
        let style = style.strip_suffix("_chat_template").unwrap_or(style);
        let style = if style.is_empty() { "alpaca" } else { style };
        let entry = table.get(style).and_then(|v| v.as_table());
        let get = |key: &str| {
            entry
                .and_then(|t| t.get(key))
                .and_then(|v| v.as_str())
                .map(String::from)
        };
        let with_input = templates
            .get("format")
            .cloned()
            .or_else(|| get("with_input"));
        let no_input = match templates.get("no_input_format") {
            Some(t) => Some(t.clone()),
            // The Unsloth notebook's one template always has the Input section.
            None if flavour == Flavour::Unsloth => with_input.clone(),
            None => get("no_input").or_else(|| with_input.clone()),
        };
        match (with_input, no_input) {
            (Some(with_input), Some(no_input)) => Ok(AlpacaStrings {
                with_input,
                no_input,
            }),
            _ => Err(Unsupported::new(
                "data.datasets.prompt_style",
                style,
                "no such prompt format in translators/prompts.toml",
            )),
        }
    }

    /// Python `str.format` of the Alpaca placeholders.
    fn fill(template: &str, instruction: &str, input: &str) -> String {
        template
            .replace("{instruction}", instruction)
            .replace("{input}", input)
    }

    /// The prompt for a row: the with-input form when `input` is non-empty.
    pub fn prompt(&self, instruction: &str, input: &str) -> String {
        if input.is_empty() {
            Self::fill(&self.no_input, instruction, input)
        } else {
            Self::fill(&self.with_input, instruction, input)
        }
    }
}

/// What the formatters need besides the row.
#[derive(Clone)]
pub struct FormatCtx<'a> {
    pub flavour: Flavour,
    pub tok: &'a Tokenizer,
    pub train_on_inputs: bool,
    pub sequence_len: usize,
    /// `truncate` or `drop` (`split` and `raise` are refused earlier).
    pub overlong: Overlong,
    pub add_eos: bool,
    pub alpaca: AlpacaStrings,
    pub columns: &'a indexmap::IndexMap<String, String>,
    pub roles_to_train: &'a [String],
    pub chat: Option<&'a ChatTemplate>,
    /// Model family (`qwen2`, `llama3_2`, …) for TorchTune's message framing.
    pub family: &'a str,
    /// Alpaca framed as a user/assistant exchange (`prompt_style = "…_chat_template"`).
    pub chat_framed: bool,
}

impl FormatCtx<'_> {
    fn col<'r>(&self, row: &'r Map<String, Value>, field: &str) -> Option<&'r Value> {
        let name = self.columns.get(field).map(String::as_str).unwrap_or(field);
        row.get(name)
    }

    fn text(&self, row: &Map<String, Value>, field: &str, required: bool) -> Result<String> {
        match self.col(row, field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None if !required => Ok(String::new()),
            Some(other) if !required => Ok(other.to_string()),
            _ => Err(EngineError::Data(format!(
                "row has no `{}` column (columns: {})",
                self.columns.get(field).map(String::as_str).unwrap_or(field),
                row.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// Format one row into its samples (one, except Axolotl `completion`, which splits a long
/// text into `sequence_len` chunks); `None` for a sample the framework drops (too long,
/// nothing to train on).
pub fn format_row(
    ctx: &FormatCtx,
    format: DatasetFormat,
    row: &Map<String, Value>,
) -> Result<Vec<Option<Sample>>> {
    if format == DatasetFormat::Completion && ctx.flavour == Flavour::Axolotl {
        return Ok(axolotl_completion(ctx, row)?
            .into_iter()
            .map(|s| overlong(ctx, s))
            .collect());
    }
    let sample = match format {
        // `instruct`: user-defined prompt strings (IR `templates`), the Alpaca machinery
        DatasetFormat::Alpaca | DatasetFormat::Instruct => alpaca(ctx, row)?,
        DatasetFormat::Completion => completion(ctx, row)?,
        DatasetFormat::InputOutput => input_output(ctx, row)?,
        DatasetFormat::ChatTemplate => chat(ctx, row)?,
    };
    Ok(vec![overlong(ctx, sample)])
}

/// Axolotl drops samples longer than `sequence_len` (and shorter than 2); the others
/// truncate in their tokenizers (already done by the formatters).
fn overlong(ctx: &FormatCtx, s: Sample) -> Option<Sample> {
    let n = s.input_ids.len();
    if n < 2 && ctx.flavour == Flavour::Axolotl {
        return None;
    }
    if n <= ctx.sequence_len {
        return Some(s);
    }
    match ctx.overlong {
        Overlong::Drop => None,
        Overlong::Truncate | Overlong::Split | Overlong::Raise => Some(Sample {
            doc_lens: Vec::new(),
            input_ids: s.input_ids[..ctx.sequence_len].to_vec(),
            labels: s.labels[..ctx.sequence_len].to_vec(),
        }),
    }
}

fn alpaca(ctx: &FormatCtx, row: &Map<String, Value>) -> Result<Sample> {
    let instruction = ctx.text(row, "instruction", true)?;
    let input = ctx.text(row, "input", false)?;
    let output = ctx.text(row, "output", true)?;
    match ctx.flavour {
        // A TorchTune-style chat-framed Alpaca run on an HF stack: the HF chat template.
        Flavour::Axolotl | Flavour::Unsloth if ctx.chat_framed => {
            let prompt = ctx.alpaca.prompt(&instruction, &input);
            let row = serde_json::json!({"messages": [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": output},
            ]});
            let map = row.as_object().expect("a JSON object literal");
            let roles = ["assistant".to_string()];
            let inner = FormatCtx {
                roles_to_train: &roles,
                columns: &indexmap::IndexMap::new(),
                ..ctx.clone()
            };
            chat(&inner, map)
        }
        Flavour::Axolotl => {
            let prompt = ctx.alpaca.prompt(&instruction, &input);
            axolotl_two_part(ctx, &prompt, &output)
        }
        Flavour::TorchTune => {
            let prompt = ctx.alpaca.prompt(&instruction, &input);
            let messages = [
                TtMessage {
                    role: "user",
                    content: prompt,
                    masked: !ctx.train_on_inputs,
                },
                TtMessage {
                    role: "assistant",
                    content: output,
                    masked: false,
                },
            ];
            torchtune_messages(ctx, &messages)
        }
        Flavour::Unsloth => {
            // The notebook's `alpaca_prompt.format(instruction, input, output) + EOS_TOKEN`
            let text = ctx.alpaca.prompt(&instruction, &input)
                + &output
                + if ctx.add_eos {
                    ctx.tok.eos.text.as_str()
                } else {
                    ""
                };
            let ids = truncate(ctx.tok.encode(&text, true)?, ctx.sequence_len);
            Ok(Sample {
                doc_lens: Vec::new(),
                labels: ids.clone(),
                input_ids: ids,
            })
        }
    }
}

fn truncate(mut ids: Vec<i64>, max: usize) -> Vec<i64> {
    ids.truncate(max);
    ids
}

/// Axolotl `_tokenize`: HF tokenizer call with truncation to `sequence_len`; EOS appended
/// unless already last or the text filled `sequence_len`; a leading BOS stripped on request.
fn axolotl_tokenize(
    ctx: &FormatCtx,
    text: &str,
    add_eos: bool,
    strip_bos: bool,
) -> Result<Vec<i64>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = truncate(ctx.tok.encode(text, true)?, ctx.sequence_len);
    if ids.is_empty() {
        return Ok(ids);
    }
    if add_eos && *ids.last().expect("non-empty") != ctx.tok.eos.id && ids.len() < ctx.sequence_len
    {
        ids.push(ctx.tok.eos.id);
    }
    if strip_bos && ctx.tok.bos.as_ref().map(|b| b.id) == Some(ids[0]) {
        ids.remove(0);
    }
    Ok(ids)
}

/// Axolotl's instruction strategy: prompt and response tokenized separately and joined.
fn axolotl_two_part(ctx: &FormatCtx, prompt: &str, response: &str) -> Result<Sample> {
    let p = axolotl_tokenize(ctx, prompt, false, false)?;
    let r = axolotl_tokenize(ctx, response, true, true)?;
    let mut labels = if ctx.train_on_inputs {
        p.clone()
    } else {
        vec![IGNORE; p.len()]
    };
    labels.extend(&r);
    let mut input_ids = p;
    input_ids.extend(r);
    Ok(Sample {
        doc_lens: Vec::new(),
        input_ids,
        labels,
    })
}

/// Whether TorchTune's message framing (alpaca, instruct and chat datasets) is implemented for
/// `family` (`translators/torchtune/framing.toml`, [`super::tt_framing`]).
pub fn check_torchtune_family(family: &str) -> Result<(), Unsupported> {
    super::tt_framing::of(family).map(|_| ())
}

/// TorchTune's model tokenizer `tokenize_messages(messages, add_eos=True)` with
/// `max_seq_len = sequence_len`, then `SFTTransform`'s labels (-100 where masked). The style
/// per family is in `translators/torchtune/framing.toml`; the SentencePiece families are
/// framed by [`super::tt_framing::sentencepiece`].
///
/// Qwen2/2.5 (ChatML): `<|im_start|>{role}\n` + content + `<|im_end|>\n` per message, except
/// that the final assistant message gets no footer; then EOS (`<|im_end|>`) with the last
/// message's mask; then `truncate`, which forces the last token to EOS **and the last mask to
/// True** (so the final EOS is never trained).
fn torchtune_messages(ctx: &FormatCtx, messages: &[TtMessage]) -> Result<Sample> {
    use super::tt_framing::Style;
    let framing = super::tt_framing::of(ctx.family)?;
    match framing.style {
        Style::Llama3 => return torchtune_llama3_messages(ctx, messages),
        Style::Sentencepiece | Style::Phi3 => {
            let (tokens, mask) = match framing.style {
                Style::Phi3 => super::tt_framing::phi3(ctx.tok, messages, ctx.sequence_len)?,
                _ => super::tt_framing::sentencepiece(
                    ctx.tok,
                    &framing.template,
                    messages,
                    ctx.sequence_len,
                )?,
            };
            let labels = tokens
                .iter()
                .zip(&mask)
                .map(|(&t, &m)| if m { IGNORE } else { t })
                .collect();
            return Ok(Sample {
                doc_lens: Vec::new(),
                input_ids: tokens,
                labels,
            });
        }
        Style::Chatml | Style::Refused => {}
    }
    let tok = ctx.tok;
    let special = |t: &str| {
        tok.token_id(t)
            .ok_or_else(|| EngineError::Data(format!("tokenizer has no `{t}` token")))
    };
    let im_start = special("<|im_start|>")?;
    let im_end = special("<|im_end|>")?;
    let eos = im_end;
    let max = ctx.sequence_len;
    let mut tokens: Vec<i64> = Vec::new();
    let mut mask: Vec<bool> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let mut t = vec![im_start];
        t.extend(tok.encode(&format!("{}\n", m.role), false)?);
        t.extend(tok.encode(&m.content, false)?);
        if m.role != "assistant" || i != messages.len() - 1 {
            t.push(im_end);
            t.extend(tok.encode("\n", false)?);
        }
        mask.extend(std::iter::repeat_n(m.masked, t.len()));
        tokens.extend(t);
        if tokens.len() >= max {
            break;
        }
    }
    tokens.push(eos);
    mask.push(*mask.last().unwrap_or(&true));
    tokens.truncate(max);
    mask.truncate(max);
    if let Some(last) = tokens.last_mut() {
        *last = eos;
    }
    if let Some(last) = mask.last_mut() {
        *last = true;
    }
    let labels = tokens
        .iter()
        .zip(&mask)
        .map(|(&t, &m)| if m { IGNORE } else { t })
        .collect();
    Ok(Sample {
        doc_lens: Vec::new(),
        input_ids: tokens,
        labels,
    })
}

/// TorchTune 0.6.1 `Llama3Tokenizer.tokenize_messages(messages, add_end_tokens=True)` with
/// `max_seq_len = sequence_len` (llama3, 3.1, 3.2, 3.3), then `SFTTransform`'s labels:
///
/// - `<|begin_of_text|>` (mask True);
/// - per message: `<|start_header_id|>` + role.strip() + `<|end_header_id|>` + "\n\n" +
///   content.strip() + `<|eot_id|>`, every token with the message's mask (so the assistant
///   header and its `<|eot_id|>` are trained); each piece is encoded on its own;
/// - stop adding messages once the length reaches `max_seq_len`;
/// - `<|end_of_text|>` (mask True), then `truncate`: the last token becomes `<|end_of_text|>`
///   and the last mask True.
fn torchtune_llama3_messages(ctx: &FormatCtx, messages: &[TtMessage]) -> Result<Sample> {
    let tok = ctx.tok;
    let special = |t: &str| {
        tok.token_id(t)
            .ok_or_else(|| EngineError::Data(format!("tokenizer has no `{t}` token")))
    };
    let bos = special("<|begin_of_text|>")?;
    let eos = special("<|end_of_text|>")?;
    let start_header = special("<|start_header_id|>")?;
    let end_header = special("<|end_header_id|>")?;
    let eot = special("<|eot_id|>")?;
    let max = ctx.sequence_len;
    let mut tokens: Vec<i64> = vec![bos];
    let mut mask: Vec<bool> = vec![true];
    for m in messages {
        let mut t = vec![start_header];
        t.extend(tok.encode(py_strip(m.role), false)?);
        t.push(end_header);
        t.extend(tok.encode("\n\n", false)?);
        t.extend(tok.encode(py_strip(&m.content), false)?);
        t.push(eot);
        mask.extend(std::iter::repeat_n(m.masked, t.len()));
        tokens.extend(t);
        if tokens.len() >= max {
            break;
        }
    }
    tokens.push(eos);
    mask.push(true);
    tokens.truncate(max);
    mask.truncate(max);
    if let Some(last) = tokens.last_mut() {
        *last = eos;
    }
    if let Some(last) = mask.last_mut() {
        *last = true;
    }
    let labels = tokens
        .iter()
        .zip(&mask)
        .map(|(&t, &m)| if m { IGNORE } else { t })
        .collect();
    Ok(Sample {
        doc_lens: Vec::new(),
        input_ids: tokens,
        labels,
    })
}

/// Python's `str.strip()`: whitespace off both ends as `str.isspace` defines it, which is
/// Unicode `White_Space` plus the separators U+001C–U+001F.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Plain text, every token trained (Axolotl: [`axolotl_completion`]).
/// TorchTune `text_completion_dataset`: BOS + text + EOS, truncated. Unsloth: text as is.
fn completion(ctx: &FormatCtx, row: &Map<String, Value>) -> Result<Sample> {
    let text = ctx.text(row, "text", true)?;
    let mut ids = ctx.tok.encode(&text, true)?;
    if ctx.add_eos && ctx.flavour != Flavour::Unsloth && ids.last() != Some(&ctx.tok.eos.id) {
        ids.push(ctx.tok.eos.id);
    }
    let ids = truncate(ids, ctx.sequence_len);
    Ok(Sample {
        doc_lens: Vec::new(),
        labels: ids.clone(),
        input_ids: ids,
    })
}

/// Axolotl 0.19 `completion` (`CompletionPromptTokenizingStrategy`, batched): the text with
/// the tokenizer's BOS, truncated to `64 · sequence_len`, EOS appended unless already last or
/// the text filled that limit; then the ids are cut into consecutive `sequence_len` chunks and
/// each chunk is its own sample (only the first has the BOS, only the last the EOS). Every
/// token is trained.
fn axolotl_completion(ctx: &FormatCtx, row: &Map<String, Value>) -> Result<Vec<Sample>> {
    let text = ctx.text(row, "text", true)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let max = ctx.sequence_len * 64;
    let mut ids = truncate(ctx.tok.encode(&text, true)?, max);
    if ctx.add_eos && ids.last() != Some(&ctx.tok.eos.id) && ids.len() < max {
        ids.push(ctx.tok.eos.id);
    }
    Ok(ids
        .chunks(ctx.sequence_len.max(1))
        .map(|c| Sample {
            doc_lens: Vec::new(),
            input_ids: c.to_vec(),
            labels: c.to_vec(),
        })
        .collect())
}

/// Axolotl `input_output`: segments tokenized without special tokens, each trained if its
/// `label` is true (or `train_on_inputs`).
fn input_output(ctx: &FormatCtx, row: &Map<String, Value>) -> Result<Sample> {
    let segments = ctx
        .col(row, "segments")
        .and_then(Value::as_array)
        .ok_or_else(|| EngineError::Data("row has no `segments` list".into()))?;
    let mut s = Sample::default();
    for seg in segments {
        let text = seg.get("text").and_then(Value::as_str).unwrap_or("");
        let label = seg.get("label").and_then(Value::as_bool).unwrap_or(true);
        let ids = ctx.tok.encode(text, false)?;
        let trained = label || ctx.train_on_inputs;
        s.labels
            .extend(ids.iter().map(|&i| if trained { i } else { IGNORE }));
        s.input_ids.extend(ids);
    }
    Ok(s)
}

/// A conversation rendered with the model's chat template. Tokens inside trainable turns
/// (`roles_to_train`, or every turn with `train_on_inputs`) are trained: each message's span
/// is found by rendering the conversation up to it and up to the one before, and a token is
/// trained when it starts inside a trainable span (HF `return_assistant_tokens_mask`
/// semantics, including the turn's closing EOS/EOT that the template writes).
///
/// TorchTune (`chat_dataset`, OpenAI or ShareGPT style) does not use the HF template: its
/// model tokenizer frames the messages (see [`torchtune_messages`]), and a message is trained
/// when it is the assistant's or `train_on_input` is set (`OpenAIToMessages`,
/// `ShareGPTToMessages`: `masked = role != "assistant" and not train_on_input`).
fn chat(ctx: &FormatCtx, row: &Map<String, Value>) -> Result<Sample> {
    let list = ctx
        .col(row, "messages")
        .and_then(Value::as_array)
        .ok_or_else(|| EngineError::Data("row has no `messages` list".into()))?;
    let messages: Vec<Message> = list
        .iter()
        .map(|m| {
            let role = m
                .get("role")
                .or_else(|| m.get("from"))
                .and_then(Value::as_str);
            let content = m
                .get("content")
                .or_else(|| m.get("value"))
                .and_then(Value::as_str);
            match (role, content) {
                (Some(r), Some(c)) => Ok(Message {
                    role: match r {
                        "human" => "user".into(),
                        "gpt" => "assistant".into(),
                        other => other.into(),
                    },
                    content: c.into(),
                }),
                _ => Err(EngineError::Data("a message lacks role/content".into())),
            }
        })
        .collect::<Result<_>>()?;
    if ctx.flavour == Flavour::TorchTune {
        let tt: Vec<TtMessage> = messages
            .iter()
            .map(|m| TtMessage {
                role: m.role.as_str(),
                content: m.content.clone(),
                masked: m.role != "assistant" && !ctx.train_on_inputs,
            })
            .collect();
        return torchtune_messages(ctx, &tt);
    }
    let chat = ctx.chat.ok_or_else(|| {
        EngineError::Data("chat_template data needs a tokenizer with a chat template".into())
    })?;
    let full = chat.render(&messages, false)?;
    // Byte spans of trainable turns in the rendered text.
    // Byte spans of trainable turns in the rendered text, and whether the turn's EOS that
    // follows the span is trained on its own (Axolotl).
    let mut spans: Vec<(usize, usize, bool)> = Vec::new();
    let mut prev_len = 0;
    for i in 0..messages.len() {
        let upto = chat.render(&messages[..=i], false)?;
        let end = if full.starts_with(&upto) {
            upto.len()
        } else {
            prev_len
        };
        let trained =
            ctx.train_on_inputs || ctx.roles_to_train.iter().any(|r| r == &messages[i].role);
        if trained && end > prev_len {
            // The assistant header the next generation prompt would add is not trained.
            let start = if messages[i].role == "assistant" && i > 0 {
                let gen = chat.render(&messages[..i], true)?;
                if full.starts_with(&gen) {
                    gen.len()
                } else {
                    prev_len
                }
            } else {
                prev_len
            };
            // Axolotl (`ChatTemplateStrategy`, train_on_eos/train_on_eot "turn", eot_tokens =
            // [eos_token]): the message content only, plus the first EOS within 3 tokens
            // after it; the template's text around the content (headers, the "\n" after
            // ChatML's <|im_end|>) stays masked.
            let content = messages[i].content.as_str();
            let found = (ctx.flavour == Flavour::Axolotl && !content.is_empty())
                .then(|| full[start..end].find(content))
                .flatten();
            match found {
                Some(p) => spans.push((start + p, start + p + content.len(), true)),
                None => spans.push((start, end, false)),
            }
        }
        prev_len = end;
    }
    let enc = ctx.tok.encode_with_offsets(&full, false)?;
    let mut s = Sample::default();
    for &(id, (a, _b)) in &enc {
        let trained = spans.iter().any(|&(lo, hi, _)| a >= lo && a < hi);
        s.input_ids.push(id);
        s.labels.push(if trained { id } else { IGNORE });
    }
    for &(_, hi, eos_after) in &spans {
        if !eos_after {
            continue;
        }
        let turn_end = enc
            .iter()
            .position(|&(_, (a, _))| a >= hi)
            .unwrap_or(enc.len());
        if let Some(k) = (turn_end..enc.len()).find(|&k| enc[k].0 == ctx.tok.eos.id) {
            if k - turn_end <= 3 {
                s.labels[k] = s.input_ids[k];
            }
        }
    }
    Ok(s)
}
