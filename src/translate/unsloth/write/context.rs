//! What every section of the Unsloth writer reads ([`Src`]) and fills ([`Ctx`]: the script's
//! lines by section, its datasets and their formatting functions), and the recomputation
//! value they share.

use crate::ir::{Recompute, Resolved};
use crate::translate::emitter::Emitter;
use crate::translate::framework::WriteOptions;
use serde::Serialize;
use serde_json::{json, Value};

/// What every writer section reads.
#[derive(Clone, Copy)]
pub(super) struct Src<'a> {
    pub(super) spec: &'a crate::ir::RunSpec,
    pub(super) resolved: &'a Resolved,
    pub(super) opts: &'a WriteOptions,
    pub(super) from: &'a str,
    /// The source is not an Unsloth script.
    pub(super) foreign: bool,
    /// A full fine-tune (no adapter).
    pub(super) full: bool,
}

/// Calls after training that save or export the model (kept verbatim from an Unsloth source).
pub(super) const SAVE_CALLS: [&str; 8] = [
    "save_pretrained",
    "save_pretrained_merged",
    "push_to_hub",
    "push_to_hub_merged",
    "save_pretrained_gguf",
    "push_to_hub_gguf",
    "save_pretrained_torchao",
    "save_pretrained_ggml",
];

#[derive(Serialize)]
pub(super) struct Func {
    pub(super) name: String,
    /// `prompt` (one template), `prompt2` (with/without input), `chat`, `chat_prompt` (Alpaca
    /// text as the user turn of a chat template), `text`.
    pub(super) kind: &'static str,
    pub(super) prompt_var: String,
    pub(super) prompt: String,
    pub(super) prompt_no_input: String,
    /// (role, column) of the row fields the function reads, in zip order.
    pub(super) roles: Vec<(String, String)>,
    /// Variables passed to the template's `format`, in slot order.
    pub(super) format_args: Vec<String>,
    /// Variables passed to the no-input template's `format`.
    pub(super) format_args_no_input: Vec<String>,
    pub(super) eos: bool,
    pub(super) column: String,
}

#[derive(Serialize)]
pub(super) struct Ds {
    pub(super) var: String,
    pub(super) load: String,
    /// `standardize_sharegpt` (ShareGPT `from`/`value` keys) or `standardize_data_formats`.
    pub(super) standardize: String,
    pub(super) func: Option<Func>,
    pub(super) remove_columns: bool,
}

#[derive(Serialize, Default)]
pub(super) struct Ctx {
    pub(super) from: String,
    pub(super) source: String,
    pub(super) file_name: String,
    pub(super) launch: String,
    pub(super) notes: Vec<String>,
    pub(super) loader: String,
    pub(super) constants: Vec<String>,
    pub(super) from_pretrained: Vec<String>,
    pub(super) tokenizer_lines: Vec<String>,
    pub(super) chat_template: String,
    pub(super) chat_template_args: Vec<String>,
    /// Names imported from unsloth.chat_templates.
    pub(super) chat_imports: Vec<String>,
    pub(super) peft: Vec<String>,
    pub(super) has_peft: bool,
    pub(super) datasets: Vec<Ds>,
    pub(super) concat: bool,
    pub(super) needs_eos: bool,
    pub(super) split: String,
    pub(super) trainer_class: String,
    pub(super) config_class: String,
    pub(super) trainer_args: Vec<String>,
    pub(super) config: Vec<String>,
    pub(super) responses_only: bool,
    pub(super) responses_only_args: Vec<String>,
    pub(super) train_args: String,
    pub(super) saves: Vec<String>,
}

/// `use_gradient_checkpointing` for the IR's recomputation mode, with its comment.
pub(super) fn gc_value(em: &Emitter) -> (Value, String) {
    let m = &em.resolved.spec.memory;
    match m.gradient_checkpointing {
        Recompute::Offload => (
            json!("unsloth"),
            "\"unsloth\": recompute with CPU-offloaded activations".into(),
        ),
        Recompute::On if m.activation_offloading => (
            json!("unsloth"),
            "\"unsloth\": recompute with CPU-offloaded activations".into(),
        ),
        Recompute::On => (
            json!(true),
            em.parity_comment("memory.gradient_checkpointing", &json!(Recompute::On)),
        ),
        Recompute::Off => (
            json!(false),
            em.parity_comment("memory.gradient_checkpointing", &json!(Recompute::Off)),
        ),
    }
}
