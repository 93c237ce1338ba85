//! IR → TorchTune 0.6.1 YAML.
//!
//! Picks the recipe (LoRA or full, single device or distributed), the model builder by family
//! and size (a size-free builder with the dimensions of the model folder's `config.json` when
//! no sized builder fits), the family's tokenizer and checkpointer model type, and writes every
//! value that changes the numbers explicitly, with `# parity:` comments where the source took a
//! default TorchTune does not share. What TorchTune cannot say is reported, never dropped.

use super::common::FW;
use super::tables::{self, Recipe, Tables};
use super::write_common::place;
use super::write_data::write_datasets;
use super::write_model::write_model;
use super::write_model_files::{write_checkpointer, write_tokenizer};
use super::write_training::{
    write_logging, write_loss_and_precision, write_optimizer, write_parallel, write_schedule,
    write_steps,
};
use crate::ir::Strategy;
use crate::ir::{Resolved, RunSpec};
use crate::translate::emitter::{Emitter, Out};
use crate::translate::framework::WriteOptions;
use crate::translate::framework::Written;
use crate::translate::report::Status;
use crate::translate::{data, yaml_out};
use serde_json::json;

/// The recipe that runs a spec: LoRA/QLoRA or full, one device or several.
pub fn recipe_for(spec: &RunSpec) -> &'static Recipe {
    let distributed = spec.batch.devices > 1 || spec.parallel.strategy != Strategy::Single;
    tables::get().recipe(spec.adapter.method, distributed)
}

/// `tune run [--nproc_per_node N] <recipe> --config <file>`.
pub fn command_for(spec: &RunSpec, file: &str) -> String {
    let recipe = recipe_for(spec);
    if recipe.distributed {
        format!(
            "tune run --nproc_per_node {} {} --config {file}",
            spec.batch.devices.max(1),
            recipe.name
        )
    } else {
        format!("tune run {} --config {file}", recipe.name)
    }
}

pub fn write(resolved: &Resolved, from: &str, opts: &WriteOptions) -> Written {
    let spec = &resolved.spec;
    let t = tables::get();
    let mut em = Emitter::new(resolved, FW.name(), data::table(FW), data::defaults(FW));
    let recipe = recipe_for(spec);
    let base = place(&spec.model.base);
    let native = from == FW.name();

    let choice = write_model(&mut em, t, spec, &base);
    write_tokenizer(&mut em, t, spec, &base, &choice);
    write_checkpointer(&mut em, t, spec, &base, &choice);
    write_datasets(&mut em, t, spec, native);
    write_steps(&mut em, spec, from);
    write_optimizer(&mut em, t, spec, from);
    write_schedule(&mut em, t, spec, recipe);
    write_loss_and_precision(&mut em, t, spec);
    write_parallel(&mut em, spec, recipe);
    write_logging(&mut em, t, spec);
    em.apply_table();
    // Keys kept verbatim from a TorchTune source come back as they were.
    let own = format!("{}.", FW.name());
    for (k, v) in &spec.passthrough {
        if let Some(key) = k.strip_prefix(&own) {
            if key.starts_with("model.") && !choice.size_free {
                continue;
            }
            // The source's own spelling replaces what was generated at that spot.
            let child = format!("{key}.");
            em.out.retain(|o| {
                !(key.starts_with(&format!("{}.", o.key)) || o.key.starts_with(&child))
            });
            em.put(key, v.clone(), &[], Status::Carried, "");
        }
    }
    if !em.out.iter().any(|o| o.key == "device") {
        em.put("device", json!("cuda"), &[], Status::Carried, "");
    }
    let command = command_for(spec, FW.default_file_name());
    let (outs, mut report) = em.finish(from, &opts.source_name);
    if native {
        // Defaults of one framework cannot drift from themselves.
        report.warnings.retain(|d| d.id != "default-differs");
    }
    let mut text = render(
        t,
        &outs,
        from,
        &opts.source_name,
        recipe,
        &command,
        base.download.as_deref(),
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Written {
        text,
        command,
        report,
    }
}

// ------------------------------------------------------------------- rendering

/// Lay the keys out as the shipped configs do: sections in order, `_component_` first in
/// every node.
fn render(
    t: &Tables,
    outs: &[Out],
    from: &str,
    source: &str,
    recipe: &Recipe,
    command: &str,
    download: Option<&str>,
) -> String {
    let top = |o: &Out| o.key.split('.').next().unwrap_or("").to_string();
    let section_of = |k: &str| {
        t.c.section
            .iter()
            .position(|s| s.keys.iter().any(|x| x == k))
            .unwrap_or(t.c.section.len())
    };
    let key_rank = |k: &str| {
        t.c.section
            .iter()
            .find_map(|s| s.keys.iter().position(|x| x == k))
            .unwrap_or(usize::MAX)
    };
    let mut order: Vec<(usize, &Out)> = outs.iter().enumerate().collect();
    order.sort_by_key(|(i, o)| {
        let k = top(o);
        let first_of_key = outs.iter().position(|x| top(x) == k).unwrap_or(*i);
        (
            section_of(&k),
            key_rank(&k),
            first_of_key,
            !o.key.ends_with("._component_"),
            *i,
        )
    });
    let mut sections: Vec<yaml_out::Section> = Vec::new();
    let mut current: Option<(usize, Vec<Out>)> = None;
    for (_, o) in order {
        let s = section_of(&top(o));
        match &mut current {
            Some((cs, items)) if *cs == s => items.push(o.clone()),
            _ => {
                if let Some((cs, items)) = current.take() {
                    sections.push(section(t, cs, &items));
                }
                current = Some((s, vec![o.clone()]));
            }
        }
    }
    if let Some((cs, items)) = current {
        sections.push(section(t, cs, &items));
    }
    let env = minijinja::Environment::new();
    env.render_str(
        data::template(FW),
        minijinja::context! { sections => sections, from => from, source => source, recipe => recipe.name, command => command, download => download },
    )
    .expect("the built-in TorchTune template renders")
}

fn section(t: &Tables, index: usize, outs: &[Out]) -> yaml_out::Section {
    yaml_out::Section {
        title: t
            .c
            .section
            .get(index)
            .map_or("Other".to_string(), |s| s.title.clone()),
        body: yaml_out::render(outs),
    }
}
