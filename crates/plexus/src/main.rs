//! `plexus`: the command line of the Plexus service backbone.
//!
//! A thin layer over the library crates: it parses arguments, runs one command, and
//! prints a table for people or JSON for scripts (`--json`).
//!
//! Exit status: 0 on success; 1 when the command failed (the node answered with an
//! error, or a benchmark or demo failed; the whole error chain is printed to
//! standard error); 2 when the arguments, the configuration or the token are wrong;
//! 3 when no node is reachable at the address. `plexus validate` exits 1 when an
//! assertion fails and 2 when the scenario file is invalid. When standard output is closed early
//! (`plexus services --json | head -c1`), the command stops quietly with 0, as a
//! filter does.

/// Prints a line on standard output like `println!`, but a closed pipe ends the
/// command quietly (status 0) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::emit(format_args!($($arg)*))
    };
}

mod ask;
#[cfg(feature = "bench")]
mod bench;
mod bridge;
mod cluster;
mod dashboards;
#[cfg(feature = "demo")]
mod demo;
mod jobs;
mod remote;
mod repl;
mod run;
mod serve;
mod top;
#[cfg(feature = "validate")]
mod validate;

use std::process::ExitCode;

/// With feature `mimalloc`, the allocator the soak figures compare with the system's.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use plexus_client::ClientError;

/// Plexus: a service backbone — event bus, registry, resilience, gateway.
#[derive(Debug, Parser)]
#[command(
    name = "plexus",
    version,
    about,
    propagate_version = true,
    after_help = "Exit status: 0 ok; 1 the command failed (the node answered with an error); \
2 usage, configuration or token error; 3 no node reachable (start one with `plexus serve`).\n\
Commands against a node read PLEXUS_URL (default http://127.0.0.1:7700) and PLEXUS_TOKEN."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: services, supervised processes, and the gateway (JSON-RPC /rpc,
    /// WebSocket /ws, MCP /mcp, /metrics, /health) on 127.0.0.1:7700 by default.
    /// SIGINT or SIGTERM drains and stops it.
    Serve(serve::ServeArgs),
    /// MCP over stdin and stdout (for MCP clients that launch their servers):
    /// relayed to the running node, or a node of its own when none answers.
    Mcp(serve::McpArgs),
    /// Call a method of a running node: `plexus call node.services`.
    Call(remote::CallArgs),
    /// Check a program of the command language (docs/dsl.md) on a running node,
    /// then run it as the caller: `plexus run cases.plx` (`-` reads stdin).
    Run(run::RunArgs),
    /// Have a model write a program from plain language (`dsl.ask`): it is shown,
    /// checked, and run only on confirmation: `plexus ask "open a KYC case for ACME"`.
    Ask(ask::AskArgs),
    /// The command language interactively on a running node: completion of verbs
    /// and keys from its registry, history.
    Repl(repl::ReplArgs),
    /// Publish an event on a running node.
    Publish(remote::PublishArgs),
    /// Print a running node's events on a pattern until Ctrl-C.
    Subscribe(remote::SubscribeArgs),
    /// List a running node's services and their status.
    Services(remote::ListArgs),
    /// Show a running node's health, component by component.
    Health(remote::ListArgs),
    /// Read, change, list and roll back a running node's configuration.
    Config(remote::ConfigArgs),
    /// The live picture of a running node: services, calls/s, errors, p99
    /// (`--once` for one picture, `--json` for scripts).
    Top(top::TopArgs),
    /// The nodes of a cluster as this node sees them: `plexus cluster status`.
    Cluster(cluster::ClusterArgs),
    /// A running node's job queue: `plexus jobs list|stats|dead|retry|requeue|pause|resume`.
    Jobs(jobs::JobsArgs),
    /// Write the Grafana dashboards (deploy/grafana) from the metrics the node
    /// exports; `--check` compares them and the alert rules with those metrics.
    Dashboards(dashboards::DashboardsArgs),
    /// Measure one part beside its ceiling in the same run.
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Run a scenario (a file or a built-in: seed-001, seed-002): load, faults, assertions,
    /// and a report (Markdown, JSON, HTML) of measured figures; status 1 when an
    /// assertion fails.
    #[cfg(feature = "validate")]
    Validate(validate::ValidateArgs),
    /// Run a demonstration.
    #[cfg(feature = "demo")]
    #[command(subcommand)]
    Demo(demo::DemoCommand),
}

/// Writes one line to standard output; see [`out!`].
pub(crate) fn emit(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {error}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(&args).map_err(anyhow::Error::from),
        Command::Mcp(args) => serve::run_mcp(&args),
        Command::Call(args) => remote::call(&args),
        Command::Run(args) => run::run(&args),
        Command::Ask(args) => ask::run(&args),
        Command::Repl(args) => repl::run(&args),
        Command::Publish(args) => remote::publish(&args),
        Command::Subscribe(args) => remote::subscribe(&args),
        Command::Services(args) => remote::services(&args),
        Command::Health(args) => remote::health(&args),
        Command::Config(args) => remote::config(&args),
        Command::Dashboards(args) => dashboards::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Cluster(args) => cluster::run(&args),
        Command::Jobs(args) => jobs::run(&args),
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench::run(&args),
        #[cfg(feature = "validate")]
        Command::Validate(args) => validate::run(&args),
        #[cfg(feature = "demo")]
        Command::Demo(command) => demo::run(&command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit_status(&error))
        }
    }
}

/// The documented exit status of a failure.
fn exit_status(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return match e {
                ClientError::NotRunning { .. }
                | ClientError::Http { .. }
                | ClientError::WebSocket { .. }
                | ClientError::Closed { .. } => 3,
                ClientError::Unauthorized { .. }
                | ClientError::InvalidUrl { .. }
                | ClientError::InvalidArgument { .. } => 2,
                _ => 1,
            };
        }
        if cause.downcast_ref::<remote::Usage>().is_some() {
            return 2;
        }
        #[cfg(feature = "validate")]
        if let Some(e) = cause.downcast_ref::<plexus_validate::ValidateError>() {
            return if e.is_scenario() { 2 } else { 1 };
        }
        if let Some(e) = cause.downcast_ref::<plexus_app::AppError>() {
            return if e.is_config() { 2 } else { 1 };
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn failures_map_to_the_documented_exit_status() {
        let not_running = anyhow::Error::from(ClientError::NotRunning {
            url: "http://127.0.0.1:1".into(),
        });
        assert_eq!(exit_status(&not_running), 3);
        let rpc = anyhow::Error::from(ClientError::Rpc {
            code: -32602,
            message: "bad".into(),
            data: None,
        })
        .context("calling");
        assert_eq!(exit_status(&rpc), 1);
        let unauthorized = anyhow::Error::from(ClientError::Unauthorized {
            url: String::new(),
            message: String::new(),
        });
        assert_eq!(exit_status(&unauthorized), 2);
        assert_eq!(exit_status(&remote::Usage("x".into()).into()), 2);
        assert_eq!(exit_status(&anyhow::anyhow!("a benchmark failed")), 1);
    }
}
