//! TorchTune YAML → IR.
//!
//! A TorchTune config is an OmegaConf tree whose `_component_` nodes name Python callables.
//! The simple top-level keys come from `translators/torchtune/fields.toml`; this file reads the
//! component nodes against `builders.toml` / `components.toml`: the model builder (family,
//! size, LoRA/QLoRA and its targets), tokenizer (chat framing, sequence length), checkpointer
//! (base weights), datasets, optimizer, LR scheduler, loss and metric logger. `${…}`
//! interpolations are resolved first, as OmegaConf does. The device count is not in a config:
//! it is the `--nproc_per_node` of the `tune run` command that TorchTune configs document in
//! their header comment, which is read when present.
//!
//! Left out on purpose: running Python. A component tunebridge does not know is an error
//! naming the ones it does; RL, distillation, vision, evaluation, generation and quantisation
//! configs are refused (`not supported`).

use super::common::FW;
use super::interpolate::interpolate;
use super::launch;
use super::read_data::read_datasets;
use super::read_model::read_model;
use super::read_model_files::{read_checkpointer, read_tokenizer};
use super::read_training::{
    read_clip, read_logger, read_loss, read_optimizer, read_parallel, read_resume, read_scheduler,
    read_seed,
};
use super::tables;
use crate::diag::{Diagnostic, Source, Span};
use crate::ir::Origin;
use crate::translate::node::Node;
use crate::translate::reader::{Parsed, ReadError, Reader};
use crate::translate::{data, yaml};
use serde_json::json;

/// Keys every fine-tuning recipe reads with attribute access (a missing one fails in TorchTune).
const REQUIRED: [&str; 17] = [
    "output_dir",
    "model",
    "tokenizer",
    "checkpointer",
    "resume_from_checkpoint",
    "dataset",
    "seed",
    "shuffle",
    "batch_size",
    "epochs",
    "max_steps_per_epoch",
    "gradient_accumulation_steps",
    "optimizer",
    "loss",
    "metric_logger",
    "device",
    "dtype",
];

pub fn read(source: &Source) -> Result<Parsed, ReadError> {
    let parsed = yaml::parse(source).map_err(ReadError::Syntax)?;
    if parsed.as_map().is_none() {
        return Err(ReadError::Syntax(
            Diagnostic::error("syntax", "a TorchTune config is a YAML mapping of keys")
                .at(Some(parsed.span()))
                .locate(source),
        ));
    }
    let mut referenced = Vec::new();
    let root = interpolate(&parsed, &parsed, &mut referenced);
    let mut r = Reader::new(source, &root, data::table(FW), data::defaults(FW));
    r.check_unsupported()?;
    check_components(&r, &root)?;
    for k in &referenced {
        // Top-level keys that only serve as `${…}` variables.
        if !REQUIRED.contains(&k.as_str()) && r.table.field.iter().all(|f| f.key != *k) {
            r.consume(k);
        }
    }
    for key in REQUIRED {
        if r.get(key).is_none() {
            r.warn(
                Diagnostic::error(
                    "missing-key",
                    format!("`{key}` is missing: TorchTune's fine-tuning recipes read `cfg.{key}`"),
                )
                .with_help(format!(
                    "add `{key}:` (see `tune cp <recipe config>` for an example)"
                )),
            );
        }
    }
    r.apply_table();
    let launch = launch::find(&source.text);
    let Some(model) = read_model(&mut r)? else {
        return r.finish(FW.name());
    };
    read_tokenizer(&mut r, &model);
    read_checkpointer(&mut r);
    read_datasets(&mut r);
    read_seed(&mut r);
    read_clip(&mut r);
    read_optimizer(&mut r);
    read_scheduler(&mut r, &model);
    read_loss(&mut r);
    read_logger(&mut r);
    read_resume(&mut r);
    read_parallel(&mut r, &launch, &model);
    let dtype = r
        .ir_value("precision.compute_dtype")
        .cloned()
        .unwrap_or(json!("fp32"));
    r.set(
        "adapter.weight_dtype",
        dtype,
        Origin::Derived {
            from: vec!["precision.compute_dtype".into()],
            rule: "TorchTune builds the adapters in the recipe dtype, like the rest of the model"
                .into(),
        },
    );
    let mut parsed_out = r.finish(FW.name())?;
    // Kept keys come back as written, `${…}` included, so they follow the values they name.
    for (k, v) in parsed_out.resolved.spec.passthrough.iter_mut() {
        let raw = k
            .strip_prefix(&format!("{}.", FW.name()))
            .and_then(|key| parsed.lookup(key));
        if let Some(e) = raw {
            *v = e.node.to_value();
        }
    }
    Ok(parsed_out)
}

// ------------------------------------------------------------------- scope

/// Refuse configs whose components belong to runs tunebridge does not port.
fn check_components(r: &Reader, root: &Node) -> Result<(), ReadError> {
    let t = tables::get();
    let mut found: Option<(String, Span, &'static str)> = None;
    fn walk(node: &Node, out: &mut Vec<(String, Span)>) {
        match node {
            Node::Map { entries, .. } => {
                for (k, e) in entries {
                    if k == "_component_" {
                        if let Some(s) = e.node.as_str() {
                            out.push((s.to_string(), e.node.span()));
                        }
                    }
                    walk(&e.node, out);
                }
            }
            Node::Seq { items, .. } => items.iter().for_each(|n| walk(n, out)),
            Node::Scalar { .. } => {}
        }
    }
    let mut components = Vec::new();
    walk(root, &mut components);
    for (c, span) in components {
        let reward = tables::split_model_path(&c)
            .is_some_and(|(_, name)| name.contains("reward") || name.contains("classifier"));
        if let Some(u) = t.unsupported(&c) {
            found = Some((c, span, u.feature.as_str()));
            break;
        }
        if reward {
            found = Some((c, span, "reward-model / classifier training"));
            break;
        }
    }
    if let Some((c, span, feature)) = found {
        return Err(ReadError::NotSupported(
            Diagnostic::error("not-supported", format!("not supported: {feature} (`{c}`)"))
                .at(Some(span))
                .with_help(
                    "tunebridge ports and runs supervised fine-tuning of text models (LoRA, QLoRA, full)",
                )
                .locate(r.source),
        ));
    }
    Ok(())
}
