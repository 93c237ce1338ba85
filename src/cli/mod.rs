//! The command line: parses flags, calls the library, maps results to exit codes.
//!
//! Exit codes: 0 ok, 1 a verdict of "differs" (diff/verify) or a strict port with lossy
//! fields, 2 bad input, 3 a feature tunebridge does not support ([`exit`]). Flags that
//! several commands share are declared once, in [`args`].

pub mod args;
#[cfg(feature = "engine")]
mod bench;
mod diff;
pub mod exit;
mod gen;
mod input;
mod inspect;
pub mod mappings;
mod port;
#[cfg(feature = "engine")]
mod run;
#[cfg(feature = "engine")]
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use exit::{EXIT_BAD_INPUT, EXIT_DIFFERS, EXIT_NOT_SUPPORTED, EXIT_OK};

#[derive(Parser)]
#[command(
    name = "tunebridge",
    version,
    about = "Port, run and verify LLM fine-tunes across Unsloth, Axolotl and TorchTune"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Port(port::PortArgs),
    Diff(diff::DiffArgs),
    Inspect(inspect::InspectArgs),
    Mappings(mappings::MappingsArgs),
    New(gen::NewArgs),
    Gen(gen::GenArgs),
    #[cfg(feature = "engine")]
    Run(run::RunArgs),
    #[cfg(feature = "engine")]
    Bench(bench::BenchArgs),
    #[cfg(feature = "engine")]
    Verify(verify::VerifyArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Port(a) => port::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Mappings(a) => mappings::run(a),
        Command::New(a) => gen::new(a),
        Command::Gen(a) => gen::gen(a),
        #[cfg(feature = "engine")]
        Command::Run(a) => run::run(a),
        #[cfg(feature = "engine")]
        Command::Bench(a) => bench::run(a),
        #[cfg(feature = "engine")]
        Command::Verify(a) => verify::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap's own checks of every command (positional order, conflicting names, defaults
    /// that parse), which otherwise only run when a command is first used.
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
