//! `tunebridge port INPUT --to FRAMEWORK`: translate a config and report every field.

use super::args::{InputArgs, JsonArgs, OverrideArgs};
use super::exit::{EXIT_DIFFERS, EXIT_OK};
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
#[command(
    mut_arg("config", |a| a.value_name("INPUT").help("Config or script to port")),
    mut_arg("json", |a| a.help("Print the report as JSON (for CI) instead of text"))
)]
pub struct PortArgs {
    /// Target format.
    #[arg(long, value_enum)]
    pub to: Framework,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
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
    #[command(flatten)]
    pub print: JsonArgs,
    /// List every field in the report, not only the lossy ones.
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn run(a: PortArgs) -> anyhow::Result<u8> {
    let json = a.print.json;
    let loaded = match input::load_with_overrides(&a.input, &a.overrides.overrides, json)? {
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
            if !json {
                eprintln!(
                    "wrote {} — run it with: {}",
                    path.display(),
                    written
                        .command
                        .replace(a.to.default_file_name(), &path.display().to_string())
                );
                if let Some(line) = engine_launch_line(a.devices, &path.display().to_string()) {
                    eprintln!("or on tunebridge's engine: {line}");
                }
            }
        }
        None if !json => print!("{}", written.text),
        None => {}
    }
    if json {
        let mut v = serde_json::to_value(&written.report)?;
        v["command"] = serde_json::json!(written.command);
        let config = a
            .output
            .as_ref()
            .map_or("CONFIG".to_string(), |p| p.display().to_string());
        if let Some(line) = engine_launch_line(a.devices, &config) {
            v["engine_command"] = serde_json::json!(line);
        }
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
        return Ok(EXIT_DIFFERS);
    }
    Ok(EXIT_OK)
}

/// `port --devices N` plans for N GPUs; the same config then runs on N ranks of the engine.
fn engine_launch_line(devices: Option<u32>, config: &str) -> Option<String> {
    devices
        .filter(|&d| d > 1)
        .map(|d| format!("tunebridge run {config} --nproc-per-node {d} --device cuda"))
}
