//! `plexus demo ...`: demonstrations that double as end-to-end checks.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use plexus_bench::format_value;
use plexus_demo::assistant::{PipelineConfig, PipelineReport, run_pipeline};

/// The demonstrations.
#[derive(Debug, Subcommand)]
pub(crate) enum DemoCommand {
    /// The eight-module desktop assistant: captured activities flow DataCapture →
    /// Storage → AnalysisEngine → Gamification → AI → CuteFigurine over the bus.
    Pipeline(PipelineArgs),
}

/// Arguments of `plexus demo pipeline`.
#[derive(Debug, Args)]
pub(crate) struct PipelineArgs {
    /// Activities to capture.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Concurrent capture publishers.
    #[arg(long, default_value_t = 4)]
    publishers: u32,
    /// Capacity of each subscriber lane.
    #[arg(long, default_value_t = 1024)]
    capacity: usize,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: &DemoCommand) -> anyhow::Result<()> {
    match command {
        DemoCommand::Pipeline(args) => pipeline(args),
    }
}

fn pipeline(args: &PipelineArgs) -> anyhow::Result<()> {
    if args.publishers == 0 {
        bail!("--publishers must be at least 1");
    }
    if args.capacity == 0 {
        bail!("--capacity must be at least 1");
    }
    let config = PipelineConfig {
        captured: args.events,
        publishers: args.publishers,
        capacity: args.capacity,
        ..PipelineConfig::default()
    };
    let bar = ProgressBar::new(args.events);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} journeys complete",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let report = runtime
        .block_on(run_pipeline(&config, |done| bar.set_position(done)))
        .context("the pipeline demo did not complete")?;
    bar.finish_and_clear();

    if args.json {
        out!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    if report.lost + report.duplicated + report.chain_broken > 0 {
        bail!(
            "the pipeline lost {}, duplicated {} and mis-linked {} events",
            report.lost,
            report.duplicated,
            report.chain_broken
        );
    }
    Ok(())
}

fn print_report(report: &PipelineReport) {
    let mut stages = Table::new();
    stages
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["stage", "events"]);
    for (stage, count) in &report.stages.0 {
        stages.add_row(vec![
            Cell::new(stage),
            Cell::new(format_value(*count as f64)).set_alignment(CellAlignment::Right),
        ]);
    }
    out!("{stages}");

    let mut modules = Table::new();
    modules
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["module", "registry status"]);
    for module in &report.modules {
        modules.add_row(vec![Cell::new(&module.name), Cell::new(&module.status)]);
    }
    out!("{modules}");
    out!("system health: {}", report.system_health);

    let mut summary = Table::new();
    summary
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["measure", "value"]);
    let rows: [(&str, String); 10] = [
        ("captured", format_value(report.captured as f64)),
        ("publishers", report.publishers.to_string()),
        ("lost", report.lost.to_string()),
        ("duplicated", report.duplicated.to_string()),
        ("causation links broken", report.chain_broken.to_string()),
        ("events/s (end to end)", format_value(report.events_per_s)),
        ("elapsed", format!("{:.2} s", report.elapsed_s)),
        (
            "modules started / stopped",
            format!("{} / {}", report.modules_started, report.modules_stopped),
        ),
        ("health pings answered", report.health_checks.to_string()),
        (
            "undelivered at shutdown",
            report.undelivered_at_shutdown.to_string(),
        ),
    ];
    for (name, value) in rows {
        summary.add_row(vec![
            Cell::new(name),
            Cell::new(value).set_alignment(CellAlignment::Right),
        ]);
    }
    out!("{summary}");
}
