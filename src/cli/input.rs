//! Loading an input file of any format, printing its diagnostics as ruff does.

use super::args::InputArgs;
use super::exit::{EXIT_BAD_INPUT, EXIT_NOT_SUPPORTED};
use crate::diag::{Diagnostic, Severity, Source};
use crate::translate::{self, Framework, Parsed, ReadError};
use anyhow::Context;

/// A read input: its format, text and parsed form; or the exit code already reported.
pub struct Loaded {
    pub framework: Framework,
    pub source: Source,
    pub parsed: Parsed,
}

#[cfg(feature = "engine")]
pub fn load(input: &InputArgs, quiet: bool) -> anyhow::Result<Result<Loaded, u8>> {
    load_with_overrides(input, &[], quiet)
}

/// Load an input, applying `key=value` overrides first as `tune run` does (TorchTune
/// configs only: the other formats have no such command line).
pub fn load_with_overrides(
    input: &InputArgs,
    overrides: &[String],
    quiet: bool,
) -> anyhow::Result<Result<Loaded, u8>> {
    let path = &input.config;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut source = Source::new(path.display().to_string(), text);
    let framework = match input.from.or_else(|| Framework::detect(path, &source.text)) {
        Some(f) => f,
        None => {
            eprint!(
                "{}",
                Diagnostic::error(
                    "unknown-format",
                    "cannot tell which framework this file is for"
                )
                .with_help("pass --from axolotl|torchtune|unsloth|ir")
                .locate(&source)
                .render(Some(&source))
            );
            return Ok(Err(EXIT_BAD_INPUT));
        }
    };
    if !overrides.is_empty() {
        if framework != Framework::Torchtune {
            eprint!(
                "{}",
                Diagnostic::error(
                    "bad-override",
                    format!(
                        "`{}`: key=value overrides apply to TorchTune configs only",
                        overrides[0]
                    )
                )
                .with_help(format!(
                    "edit the {framework} file instead, or use `tunebridge gen --set`"
                ))
                .render(None)
            );
            return Ok(Err(EXIT_BAD_INPUT));
        }
        match translate::torchtune::apply_overrides(&source.text, overrides) {
            Ok(text) => source.text = text,
            Err(d) => {
                eprint!("{}", d.render(None));
                return Ok(Err(EXIT_BAD_INPUT));
            }
        }
    }
    match translate::read(framework, &source) {
        Ok(parsed) => {
            if !quiet {
                print_diagnostics(&parsed.diagnostics, &source, Severity::Warning);
            }
            Ok(Ok(Loaded {
                framework,
                source,
                parsed,
            }))
        }
        Err(e) => {
            print_diagnostics(&e.diagnostics(), &source, Severity::Info);
            let code = if matches!(e, ReadError::NotSupported(_)) {
                EXIT_NOT_SUPPORTED
            } else {
                EXIT_BAD_INPUT
            };
            let n = e.diagnostics().len();
            eprintln!(
                "error: could not read {} as {framework} ({n} problem{})",
                source.name,
                if n == 1 { "" } else { "s" }
            );
            Ok(Err(code))
        }
    }
}

pub fn print_diagnostics(ds: &[Diagnostic], source: &Source, min: Severity) {
    for d in ds.iter().filter(|d| d.severity >= min) {
        let src = (d.file == source.name).then_some(source);
        eprint!("{}", d.render(src));
    }
}
