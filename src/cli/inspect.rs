//! `tunebridge inspect INPUT`: the IR a config resolves to, with where each value came from.

use super::args::{InputArgs, JsonArgs, OverrideArgs};
use super::exit::EXIT_OK;
use super::input;
use crate::ir::Origin;

/// Show the IR a config resolves to, with the provenance of every value.
#[derive(clap::Args)]
#[command(
    mut_arg("config", |a| a.value_name("INPUT")),
    mut_arg("json", |a| a.help("Print JSON (`{spec, provenance}`) instead of the annotated table"))
)]
pub struct InspectArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    #[command(flatten)]
    pub print: JsonArgs,
    /// Print `run.toml` (with a [provenance] table), ready for `tunebridge run`.
    #[arg(long)]
    pub toml: bool,
}

pub fn run(a: InspectArgs) -> anyhow::Result<u8> {
    let loaded = match input::load_with_overrides(&a.input, &a.overrides.overrides, false)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let r = &loaded.parsed.resolved;
    if a.print.json {
        println!("{}", serde_json::to_string_pretty(&r.to_json())?);
    } else if a.toml {
        print!("{}", r.to_toml(true));
    } else {
        println!(
            "{} ({}) resolves to:\n",
            loaded.source.name, loaded.framework
        );
        let flat = r.spec.flat();
        let width = flat.keys().map(String::len).max().unwrap_or(10);
        for (path, value) in &flat {
            let origin = r.provenance.get(path);
            let tag = origin.map(Origin::short).unwrap_or("?");
            let why = origin.map(Origin::describe).unwrap_or_default();
            println!(
                "  {path:<width$}  {:<28}  {tag:<8}  {why}",
                crate::translate::report::compact(value)
            );
        }
    }
    Ok(EXIT_OK)
}
