//! `plexus validate SCENARIO`: run a scenario (a file, or a built-in one such as
//! `seed-001`), print its verdict and assertions, write the report (JSON, Markdown,
//! HTML) into `--out`, and fail with status 1 when an assertion fails.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use plexus_validate::{Options, Report, Scenario};

/// Arguments of `plexus validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// A scenario file (TOML, see docs/validate.md) or a built-in scenario: seed-001, seed-002.
    scenario: String,
    /// Where the report goes (report.json, report.md, report.html).
    #[arg(long, value_name = "DIR", default_value = "validate-report")]
    out: PathBuf,
    /// Scale every time in the scenario down by its `quick_scale` (for CI).
    #[arg(long)]
    quick: bool,
    /// Compare with an earlier report.json: each load's p50, p99 and ok/s beside
    /// the old figures, with the noise band measured in both runs.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
    /// Print the JSON report on standard output instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Some assertions failed: exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} assertions failed (report in {dir})")]
pub(crate) struct Failed {
    failed: usize,
    total: usize,
    dir: String,
}

pub(crate) fn run(args: &ValidateArgs) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    let old = match &args.compare {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                Report::from_json(&text)
                    .with_context(|| format!("{} is not a report", path.display()))?,
            )
        }
        None => None,
    };
    let options = Options {
        quick: args.quick,
        progress: !args.json,
        data_dir: None,
    };
    let mut report: Report = plexus_validate::run(scenario, &options)
        .with_context(|| format!("running scenario {}", args.scenario))?;
    if let Some(old) = old {
        report.compare_with(old);
    }
    let written = report.write(&args.out)?;
    if args.json {
        out!("{}", report.to_json());
    } else {
        out!(
            "{} {}: {} of {} assertions passed",
            report.scenario,
            if report.passed { "PASSED" } else { "FAILED" },
            report
                .assertions
                .iter()
                .filter(|a| a.status == plexus_validate::assertions::Status::Pass)
                .count(),
            report.assertions.len()
        );
        for a in &report.assertions {
            out!(
                "  {:?}  {} — measured {}",
                a.status,
                a.assertion,
                a.measured
            );
        }
        for l in &report.loads {
            if let Some(why) = &l.saturated {
                out!("  load `{}`: the generator was saturated: {why}", l.name);
            }
        }
        for d in &report.comparison {
            out!(
                "  {} {}: {:.2} → {:.2} ({:+.1} %, band ± {:.1} %): {}",
                d.load,
                d.figure,
                d.old,
                d.new,
                d.change_pct,
                d.band_pct,
                d.verdict
            );
        }
        out!(
            "report: {} {} {}",
            written.markdown.display(),
            written.html.display(),
            written.json.display()
        );
    }
    let failed = report.failures();
    if failed > 0 {
        return Err(Failed {
            failed,
            total: report.assertions.len(),
            dir: args.out.display().to_string(),
        }
        .into());
    }
    Ok(())
}
