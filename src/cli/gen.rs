//! `tunebridge new` and `tunebridge gen`: starting configs and sweeps.

use super::args::InputArgs;
use super::exit::{EXIT_BAD_INPUT, EXIT_OK};
use crate::diag::Diagnostic;
use crate::gen::{self, grid, new::NewRequest, Template};
use crate::translate::{self, Framework, WriteOptions};
use anyhow::Context;
use std::path::PathBuf;

/// Write a starting config for a model, a method and a dataset (like `tune cp`), with
/// sensible values written explicitly.
#[derive(clap::Args)]
pub struct NewArgs {
    /// Hub id or local folder of the base model (`meta-llama/Llama-3.1-8B`).
    #[arg(long)]
    pub model: String,
    #[arg(long, value_parser = ["lora", "qlora", "full"])]
    pub method: String,
    /// Hub id or local file of the training data.
    #[arg(long)]
    pub dataset: String,
    /// Dataset format (alpaca, chat_template, completion); guessed from the name otherwise.
    #[arg(long, default_value = "")]
    pub format: String,
    #[arg(long, default_value_t = 1)]
    pub devices: u32,
    #[arg(long, value_enum)]
    pub to: Framework,
    /// Output file or folder; standard output otherwise.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn new(a: NewArgs) -> anyhow::Result<u8> {
    let req = NewRequest {
        model: &a.model,
        method: &a.method,
        dataset: &a.dataset,
        format: &a.format,
        devices: a.devices,
    };
    let resolved = match gen::new::build(&req) {
        Ok(r) => r,
        Err(d) => {
            eprint!("{}", d.render(None));
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let opts = WriteOptions {
        strict: false,
        source_name: format!("tunebridge new ({} {})", a.method, a.model),
    };
    let written = translate::write(a.to, &resolved, "ir", &opts);
    match a.output {
        Some(out) => {
            let path = if out.is_dir() {
                out.join(a.to.default_file_name())
            } else {
                out
            };
            std::fs::write(&path, &written.text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {} — run it with: {}",
                path.display(),
                written.command
            );
        }
        None => print!("{}", written.text),
    }
    Ok(EXIT_OK)
}

/// Expand a template over `--set`, `--grid` and `--zip` values into configs, each validated
/// through the IR, listed in `index.csv`.
#[derive(clap::Args)]
#[command(
    mut_arg("config", |a| a.value_name("TEMPLATE").help(
        "A run.toml or a config in any format, with minijinja expressions (`{{ lr }}`)"
    )),
    mut_arg("from", |a| a.help("Template format, when detection guesses wrong"))
)]
pub struct GenArgs {
    /// A value for every point: NAME=VALUE (a template variable or an IR field such as
    /// `adapter.rank`).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// A list to sweep: NAME=V1,V2,… (cartesian product across --grid flags).
    #[arg(long = "grid", value_name = "NAME=V1,V2")]
    pub grids: Vec<String>,
    /// Lists walked in lockstep: NAME=V1,V2,… (all --zip lists have one length).
    #[arg(long = "zip", value_name = "NAME=V1,V2")]
    pub zips: Vec<String>,
    /// Target format(s), comma separated.
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    pub to: Vec<Framework>,
    /// The template and `--from`.
    #[command(flatten)]
    pub template: InputArgs,
    /// Output folder (one subfolder per format, plus index.csv).
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn gen(a: GenArgs) -> anyhow::Result<u8> {
    let template = match Template::load(&a.template.config, a.template.from) {
        Ok(t) => t,
        Err(d) => {
            eprint!(
                "{}",
                d.render(
                    std::fs::read_to_string(&a.template.config)
                        .ok()
                        .map(|t| crate::diag::Source::new(
                            a.template.config.display().to_string(),
                            t
                        ))
                        .as_ref()
                )
            );
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let points = match grid::expand(&a.sets, &a.grids, &a.zips) {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", Diagnostic::error("bad-argument", e).render(None));
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let results = gen::generate(&template, &points, &a.to, &a.output)
        .with_context(|| format!("cannot write into {}", a.output.display()))?;
    let ok = results.iter().filter(|r| r.status == "ok").count();
    for r in results.iter().filter(|r| r.status != "ok") {
        eprintln!(
            "impossible point {} ({}):\n  {}\n",
            r.name,
            r.framework,
            r.status.replace('\n', "\n  ")
        );
    }
    eprintln!(
        "generated {ok} of {} configs from {} point(s) into {} (index: {})",
        results.len(),
        points.len(),
        a.output.display(),
        a.output.join("index.csv").display()
    );
    Ok(if ok == results.len() {
        EXIT_OK
    } else {
        EXIT_BAD_INPUT
    })
}
