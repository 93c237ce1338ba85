//! Writing the tokenizer and checkpointer of a TorchTune config: the files of the model
//! folder TorchTune reads.

use super::tables::Tables;
use super::write_common::{carried, place, Place};
use super::write_model::Choice;
use crate::diag::Diagnostic;
use crate::ir::{Attention, Method, Origin, RunSpec};
use crate::translate::emitter::Emitter;
use crate::translate::report::Status;
use serde_json::{json, Value};
use std::path::Path;

pub(super) fn write_tokenizer(
    em: &mut Emitter,
    t: &Tables,
    spec: &RunSpec,
    base: &Place,
    choice: &Choice,
) {
    let Some(tok) = t.tokenizer_for_module(&choice.module) else {
        return;
    };
    carried(em, "tokenizer._component_", json!(tok.component), &[], "");
    let tok_place = if spec.model.tokenizer == spec.model.base || spec.model.tokenizer.is_empty() {
        Place {
            dir: base.dir.clone(),
            download: base.download.clone(),
        }
    } else {
        place(&spec.model.tokenizer)
    };
    for (arg, rel) in &tok.files {
        let file = format!("{}/{rel}", tok_place.dir);
        if Path::new(&tok_place.dir).is_dir() && !Path::new(&file).exists() {
            em.warnings.push(
                Diagnostic::warning("missing-file", format!("{file} does not exist: `{}` needs it", tok.component))
                    .with_help("TorchTune reads the original tokenizer files; download them with `tune download`"),
            );
        }
        carried(
            em,
            &format!("tokenizer.{arg}"),
            json!(file),
            &["model.tokenizer"],
            "",
        );
    }
    if tok_place.download.is_some() {
        em.cover("model.tokenizer", Status::Approximated, "tokenizer.path", "TorchTune reads tokenizer files from a local folder (see the download command in the header)");
    }
    // Sequence length: null keeps a TorchTune source's "no truncation".
    let from_null = matches!(
        em.resolved.provenance.get("data.sequence_len"),
        Some(Origin::Derived { rule, .. }) if rule.starts_with("tokenizer.max_seq_len is")
    );
    let builder_max = choice.max_seq_len.or_else(|| {
        em.out
            .iter()
            .find(|o| o.key == "model.max_seq_len")
            .map(|o| o.value.clone())
            .or_else(|| spec.passthrough.get("torchtune.model.max_seq_len").cloned())
            .and_then(|v| v.as_u64())
    });
    let unbounded =
        from_null && !spec.data.packing && builder_max == Some(spec.data.sequence_len as u64);
    let len = if unbounded {
        Value::Null
    } else {
        json!(spec.data.sequence_len)
    };
    carried(em, "tokenizer.max_seq_len", len, &["data.sequence_len"], "");
    // Chat framing: the tokenizer's own, or a prompt template, or reported.
    let natural = if tok.prompt_template.is_empty() {
        tok.framing.clone()
    } else {
        t.c.prompt_template
            .iter()
            .find(|p| p.component == tok.prompt_template)
            .map_or(tok.framing.clone(), |p| p.chat_template.clone())
    };
    let ct = spec.model.chat_template.as_str();
    let has_template_passthrough = spec
        .passthrough
        .contains_key("torchtune.tokenizer.prompt_template");
    if ct == natural || has_template_passthrough {
        em.cover(
            "model.chat_template",
            Status::Carried,
            "tokenizer._component_",
            "",
        );
    } else if ct == tok.framing {
        carried(
            em,
            "tokenizer.prompt_template",
            Value::Null,
            &["model.chat_template"],
            "",
        );
    } else if let Some(p) =
        t.c.prompt_template
            .iter()
            .find(|p| p.chat_template == ct && tok.framing == "none")
    {
        carried(
            em,
            "tokenizer.prompt_template",
            json!(p.component),
            &["model.chat_template"],
            "",
        );
    } else {
        let note = if ct == "tokenizer_default" {
            format!("TorchTune frames chats with its own {natural} tokenizer code, not the Hugging Face tokenizer's Jinja template (no default system prompt)")
        } else {
            format!(
                "TorchTune's {} frames chats as {natural}; `{ct}` has no TorchTune spelling",
                tok.component.rsplit('.').next().unwrap_or("")
            )
        };
        em.cover(
            "model.chat_template",
            Status::Approximated,
            "tokenizer._component_",
            &note,
        );
    }
    if !spec.model.special_tokens.is_empty() {
        em.cover(
            "model.special_tokens",
            Status::NotExpressible,
            "",
            "TorchTune tokenizers take special tokens from their own tables (pad id included)",
        );
    }
    if spec.model.attention != Attention::Sdpa {
        em.cover("model.attention", Status::Approximated, "", "TorchTune always calls scaled_dot_product_attention, which picks the flash kernel on GPUs that have it");
    }
}

pub(super) fn write_checkpointer(
    em: &mut Emitter,
    t: &Tables,
    spec: &RunSpec,
    base: &Place,
    choice: &Choice,
) {
    let ck =
        t.c.checkpointer
            .iter()
            .find(|c| c.write)
            .map_or("torchtune.training.FullModelHFCheckpointer", |c| {
                c.component.as_str()
            });
    carried(em, "checkpointer._component_", json!(ck), &[], "");
    carried(
        em,
        "checkpointer.checkpoint_dir",
        json!(base.dir),
        &["model.base"],
        "",
    );
    if base.download.is_some() {
        em.cover(
            "model.base",
            Status::Approximated,
            "checkpointer.checkpoint_dir",
            "TorchTune reads weights from a local folder (see the download command in the header)",
        );
    }
    let lower = spec.model.base.to_ascii_lowercase();
    if lower.contains("bnb-4bit")
        || lower.contains("-4bit")
        || lower.ends_with("-awq")
        || lower.contains("gptq")
    {
        em.cover(
            "model.base",
            Status::Approximated,
            "checkpointer.checkpoint_dir",
            "a pre-quantized checkpoint: TorchTune loads bf16/fp32 weights and quantizes them itself (QLoRA builders)",
        );
        em.warnings.push(
            Diagnostic::warning(
                "base-weights",
                format!(
                    "`{}` is a pre-quantized checkpoint TorchTune cannot load",
                    spec.model.base
                ),
            )
            .with_help("point checkpoint_dir at the original 16-bit weights of the same model"),
        );
    }
    let files = checkpoint_files(t, spec, &base.dir, choice).unwrap_or_else(|| {
        em.warnings.push(
            Diagnostic::warning(
                "checkpoint-files",
                "the checkpoint file names are not known; `model.safetensors` is assumed",
            )
            .with_help(
                "list the weight files of the model folder in checkpointer.checkpoint_files",
            ),
        );
        json!(["model.safetensors"])
    });
    carried(em, "checkpointer.checkpoint_files", files, &[], "");
    carried(em, "checkpointer.recipe_checkpoint", Value::Null, &[], "");
    carried(
        em,
        "checkpointer.output_dir",
        json!("${output_dir}"),
        &[],
        "",
    );
    carried(
        em,
        "checkpointer.model_type",
        json!(choice.model_type),
        &[],
        "",
    );
    let resume = !spec.checkpoint.resume_from.is_empty();
    carried(
        em,
        "resume_from_checkpoint",
        json!(resume),
        &["checkpoint.resume_from"],
        "",
    );
    if resume
        && spec.checkpoint.resume_from.trim_end_matches('/')
            != spec.checkpoint.output_dir.trim_end_matches('/')
    {
        em.cover(
            "checkpoint.resume_from",
            Status::Approximated,
            "resume_from_checkpoint",
            "TorchTune resumes from the newest epoch in output_dir, not from a given folder",
        );
    }
}

/// The weight files: the local folder's, else the shipped configs' for this builder.
fn checkpoint_files(t: &Tables, spec: &RunSpec, dir: &str, choice: &Choice) -> Option<Value> {
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let st: Vec<&String> = names
            .iter()
            .filter(|n| n.ends_with(".safetensors") && !n.starts_with("adapter"))
            .collect();
        let bin: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("pytorch_model") && n.ends_with(".bin"))
            .collect();
        if !st.is_empty() {
            return Some(json!(st));
        }
        if !bin.is_empty() {
            return Some(json!(bin));
        }
    }
    let method = match spec.adapter.method {
        Method::Qlora => Method::Lora,
        m @ (Method::Lora | Method::Full) => m,
    };
    let instruct = spec.model.base.to_ascii_lowercase().contains("instruct");
    t.sized(&choice.module, method, &spec.model.size, instruct)
        .or_else(|| t.sized(&choice.module, Method::Full, &spec.model.size, instruct))
        .and_then(|b| b.checkpoint_files.clone())
}
