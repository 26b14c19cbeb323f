//! `plexus bench PART`: run one benchmark and print its report.

use anyhow::Context;
use clap::{Args, ValueEnum};
use plexus_bench::{Options, Report};

/// Arguments of `plexus bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The part to measure.
    part: Part,
    /// A short run, for smoke tests in CI.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The parts that have a benchmark.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Part {
    /// The in-process event bus.
    Bus,
    /// Circuit breaker, retry, deadline, bulkhead, balancer: overhead per call.
    Resilience,
    /// The whole call path to an in-process service: overhead per call.
    Callpath,
    /// DataStore put / get / query on SQLite and PostgreSQL beside bare sqlx.
    Store,
    /// JSON-RPC over HTTP and WebSocket, and MCP tool calls, beside a bare axum handler.
    Gateway,
    /// Cache, locks and rate limits on Redis beside the raw redis crate; the local cache beside moka.
    Redis,
    /// Scripts through the `script` service beside a bare rhai engine and a direct call.
    Script,
    /// Calls and events across nodes on NATS beside raw async-nats; durable topics on JetStream.
    Cluster,
    /// Chat completions through the OpenAI-compatible endpoint beside the same
    /// requests straight to a fake provider, 16 concurrent clients.
    Inference,
    /// Programs through `dsl.run` beside the same calls sent directly; checking a program.
    Dsl,
    /// The job queue on SQLite, PostgreSQL and Redis: enqueues/s, jobs processed/s,
    /// latency from `run_at` to start.
    Jobs,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let options = Options {
        quick: args.quick,
        progress: true,
    };
    let report: Report = match args.part {
        Part::Bus => plexus_bench::bus::run(options).context("the bus benchmark failed")?,
        Part::Resilience => {
            plexus_bench::resilience::run(options).context("the resilience benchmark failed")?
        }
        Part::Callpath => {
            plexus_bench::callpath::run(options).context("the call path benchmark failed")?
        }
        Part::Store => plexus_bench::store::run(options).context("the store benchmark failed")?,
        Part::Gateway => {
            plexus_bench::gateway::run(options).context("the gateway benchmark failed")?
        }
        Part::Redis => plexus_bench::redis::run(options).context("the redis benchmark failed")?,
        Part::Script => {
            plexus_bench::script::run(options).context("the script benchmark failed")?
        }
        Part::Cluster => {
            plexus_bench::cluster::run(options).context("the cluster benchmark failed")?
        }
        Part::Inference => {
            plexus_bench::inference::run(options).context("the inference benchmark failed")?
        }
        Part::Dsl => plexus_bench::dsl::run(options).context("the dsl benchmark failed")?,
        Part::Jobs => plexus_bench::jobs::run(options).context("the jobs benchmark failed")?,
    };
    if args.json {
        out!("{}", report.to_json());
    } else {
        out!(
            "bench {} on {} cores{}",
            report.bench,
            report.cores,
            if report.quick { " (quick)" } else { "" }
        );
        out!("{}", report.to_table());
    }
    Ok(())
}
