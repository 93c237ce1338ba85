//! `tunebridge new`: a starting config for a model, a method and a dataset, from the built-in
//! template `translators/new/run.toml.j2` (as `tune cp` copies a recipe config).

use crate::diag::{Diagnostic, Source};
use crate::ir::{validate, Origin, Resolved};
use crate::translate::families;

/// What the user asked for.
pub struct NewRequest<'a> {
    pub model: &'a str,
    pub method: &'a str,
    pub dataset: &'a str,
    /// `alpaca`, `chat_template`, `completion`; guessed from the dataset when empty.
    pub format: &'a str,
    pub devices: u32,
}

/// Global batch the template aims for; accumulation is derived from it and the devices.
const TARGET_GLOBAL_BATCH: u32 = 16;
const MICRO_BATCH: u32 = 2;

pub fn template_text() -> &'static str {
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/translators/new/run.toml.j2"
    ))
}

/// Build the spec. Errors name what is wrong with the request.
pub fn build(req: &NewRequest) -> Result<Resolved, Diagnostic> {
    if !matches!(req.method, "lora" | "qlora" | "full") {
        return Err(
            Diagnostic::error("bad-argument", format!("unknown method `{}`", req.method))
                .with_help("use lora, qlora or full"),
        );
    }
    let family = families::detect(req.model).ok_or_else(|| {
        Diagnostic::error(
            "unknown-family",
            format!("cannot tell the model family of `{}`", req.model),
        )
        .with_help(format!(
            "supported families: {}",
            families::all()
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let devices = req.devices.max(1);
    let per_step = MICRO_BATCH * devices;
    let grad_accum = if TARGET_GLOBAL_BATCH % per_step == 0 {
        TARGET_GLOBAL_BATCH / per_step
    } else {
        1
    };
    let format = if req.format.is_empty() {
        guess_format(req.dataset)
    } else {
        req.format
    };
    let loader = match std::path::Path::new(req.dataset)
        .extension()
        .and_then(|e| e.to_str())
    {
        Some("json" | "jsonl") => "json",
        Some("parquet") => "parquet",
        Some("csv") => "csv",
        _ => "",
    };
    let slug: String = req
        .model
        .rsplit('/')
        .next()
        .unwrap_or(req.model)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let env = super::template::environment();
    let text = env
        .render_str(
            template_text(),
            minijinja::context! {
                model => req.model, family => family.name, size => families::size_tag(req.model),
                chat_template => family.chat_template, method => req.method, targets => family.linear,
                dataset => req.dataset, loader => loader, format => format, devices => devices,
                micro_batch => MICRO_BATCH, grad_accum => grad_accum, slug => format!("{slug}-{}", req.method),
            },
        )
        .map_err(|e| Diagnostic::error("template", format!("built-in template failed: {e}")))?;
    let source = Source::new("translators/new/run.toml.j2", text);
    let mut resolved = Resolved::from_toml(&source)?;
    for path in resolved.spec.flat().keys() {
        resolved.provenance.set(
            path.clone(),
            // The template's values are deliberate choices, not framework defaults.
            Origin::Explicit {
                key: format!("tunebridge new --method {}", req.method),
                line: None,
                column: None,
            },
        );
    }
    validate::derive(&mut resolved);
    if let Some(e) = validate::validate(&resolved)
        .into_iter()
        .find(|d| d.severity == crate::diag::Severity::Error)
    {
        return Err(e);
    }
    Ok(resolved)
}

fn guess_format(dataset: &str) -> &'static str {
    let lower = dataset.to_ascii_lowercase();
    if lower.contains("chat")
        || lower.contains("conversation")
        || lower.contains("messages")
        || lower.contains("sharegpt")
    {
        "chat_template"
    } else if lower.contains("text") || lower.contains("completion") || lower.contains("wiki") {
        "completion"
    } else {
        "alpaca"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BaseWeights, Strategy};

    #[test]
    fn new_lora_for_four_gpus_keeps_global_batch() {
        let r = build(&NewRequest {
            model: "meta-llama/Llama-3.1-8B",
            method: "qlora",
            dataset: "tatsu-lab/alpaca",
            format: "",
            devices: 4,
        })
        .unwrap();
        assert_eq!(r.spec.model.family, "llama3_1");
        assert_eq!(r.spec.quantization.base_weights, BaseWeights::Nf4);
        assert_eq!(
            (r.spec.batch.grad_accum_steps, r.spec.batch.global_batch),
            (2, 16)
        );
        assert_eq!(r.spec.parallel.strategy, Strategy::Ddp);
        assert_eq!(r.spec.adapter.target_modules.len(), 7);
    }

    #[test]
    fn unknown_model_family_is_a_clear_error() {
        let e = build(&NewRequest {
            model: "acme/unknown-7b",
            method: "lora",
            dataset: "x",
            format: "",
            devices: 1,
        })
        .unwrap_err();
        assert_eq!(e.id, "unknown-family");
    }
}
