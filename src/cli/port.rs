//! `tunebridge port INPUT --to FRAMEWORK`: translate a config and report every field.

use super::input;
use crate::translate::{self, Framework, Status, WriteOptions};
use anyhow::Context;
use std::path::PathBuf;

/// Translate a config into another framework's format, reporting every field.
///
/// The input format is detected (a `_component_` tree is TorchTune, `base_model` is Axolotl, a
/// `.py` file is an Unsloth script, `.toml` is a tunebridge run spec). The report lists each
/// IR field as carried, defaulted, approximated or not expressible.
#[derive(clap::Args)]
pub struct PortArgs {
    /// Config or script to port.
    pub input: PathBuf,
    /// TorchTune `key=value` overrides, applied as `tune run … key=value` does
    /// (`optimizer.lr=1e-4 model.lora_rank=16`).
    #[arg(value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Target format.
    #[arg(long, value_enum)]
    pub to: Framework,
    /// Source format, when detection guesses wrong.
    #[arg(long, value_enum)]
    pub from: Option<Framework>,
    /// Write the translated config here (a file, or a folder to get the default file name);
    /// without it the config goes to standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Plan the run for this many GPUs; gradient accumulation is rescaled to keep the global batch.
    #[arg(long)]
    pub devices: Option<u32>,
    /// Fail (exit 1) if any field is approximated or not expressible; turn off numerics-changing
    /// optimisations in the target.
    #[arg(long)]
    pub strict: bool,
    /// Print the report as JSON (for CI) instead of text.
    #[arg(long)]
    pub json: bool,
    /// List every field in the report, not only the lossy ones.
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn run(a: PortArgs) -> anyhow::Result<u8> {
    let loaded = match input::load_with_overrides(&a.input, a.from, &a.overrides, a.json)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let mut resolved = loaded.parsed.resolved.clone();
    let mut notes = loaded.parsed.diagnostics.clone();
    if let Some(d) = a.devices {
        notes.extend(translate::retarget_devices(&mut resolved, d));
    }
    let opts = WriteOptions {
        strict: a.strict,
        source_name: loaded.source.name.clone(),
    };
    let mut written = translate::write(a.to, &resolved, loaded.framework.name(), &opts);
    written.report.warnings.splice(0..0, notes);

    match &a.output {
        Some(out) => {
            let path = if out.is_dir() {
                out.join(a.to.default_file_name())
            } else {
                out.clone()
            };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&path, &written.text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if !a.json {
                eprintln!(
                    "wrote {} — run it with: {}",
                    path.display(),
                    written
                        .command
                        .replace(a.to.default_file_name(), &path.display().to_string())
                );
            }
        }
        None if !a.json => print!("{}", written.text),
        None => {}
    }
    if a.json {
        let mut v = serde_json::to_value(&written.report)?;
        v["command"] = serde_json::json!(written.command);
        if a.output.is_none() {
            v["text"] = serde_json::json!(written.text);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        eprint!("\n{}", written.report.render(a.verbose));
    }
    let lossy =
        written.report.count(Status::Approximated) + written.report.count(Status::NotExpressible);
    if a.strict && lossy > 0 {
        eprintln!("error: --strict: {lossy} field(s) would not carry over exactly");
        return Ok(super::EXIT_DIFFERS);
    }
    Ok(super::EXIT_OK)
}
