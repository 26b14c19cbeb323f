//! `plexus`: the command line of the Plexus service backbone.
//!
//! A thin layer over the library crates: it parses arguments, runs one command, and
//! prints a table for people or JSON for scripts (`--json`).
//!
//! Exit status: 0 on success, 1 when the command failed (the whole error chain is
//! printed to standard error), 2 when the arguments are wrong.

mod bench;
mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Plexus: a service backbone — event bus, registry, resilience, gateway.
#[derive(Debug, Parser)]
#[command(name = "plexus", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure one part beside its ceiling in the same run.
    Bench(bench::BenchArgs),
    /// Run a demonstration.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Demo(command) => demo::run(&command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
