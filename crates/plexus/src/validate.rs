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
    /// Run the scenario N times, one after another: each run's report goes into
    /// `OUT/run-K/`, and `OUT/repeat.md` and `OUT/repeat.json` give each headline
    /// figure's median and range across the runs; an assertion passes only if it
    /// passed in every run.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100), conflicts_with = "compare")]
    repeat: u32,
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
    if args.repeat > 1 {
        return repeat(args, &scenario);
    }
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

/// `--repeat N`: N runs, each report in `OUT/run-K/`, the summary in `OUT/repeat.*`.
fn repeat(args: &ValidateArgs, scenario: &Scenario) -> anyhow::Result<()> {
    let options = Options {
        quick: args.quick,
        progress: !args.json,
        data_dir: None,
    };
    let n = args.repeat as usize;
    let mut written = Ok(());
    let (repeated, _) = plexus_validate::run_repeated(scenario, &options, n, |i, report| {
        let dir = args.out.join(format!("run-{i}"));
        if let Err(e) = report.write(&dir) {
            written = Err(e);
        }
        if !args.json {
            out!(
                "run {i} of {n}: {} ({} assertions failed), report in {}",
                if report.passed { "PASSED" } else { "FAILED" },
                report.failures(),
                dir.display()
            );
        }
    })
    .with_context(|| format!("running scenario {}", args.scenario))?;
    written?;
    let (json, markdown) = repeated.write(&args.out)?;
    if args.json {
        out!("{}", repeated.to_json());
    } else {
        out!(
            "{} × {n} {}: an assertion passes only if it passed in every run",
            repeated.scenario,
            if repeated.passed { "PASSED" } else { "FAILED" },
        );
        for a in &repeated.assertions {
            let value = a.value.as_ref().map_or_else(
                || a.measured.join("; "),
                |s| format!("median {:.3}, range {:.3}–{:.3}", s.median, s.min, s.max),
            );
            out!(
                "  {:?} in {} of {n} runs  {} — {value}",
                a.status,
                a.passed_runs,
                a.assertion
            );
        }
        for l in &repeated.loads {
            out!(
                "  load `{}`: p50 {:.2} ms ({:.2}–{:.2}), p99 {:.2} ms ({:.2}–{:.2}), {:.1} ok/s ({:.1}–{:.1})",
                l.name,
                l.p50_ms.median,
                l.p50_ms.min,
                l.p50_ms.max,
                l.p99_ms.median,
                l.p99_ms.min,
                l.p99_ms.max,
                l.ok_per_s.median,
                l.ok_per_s.min,
                l.ok_per_s.max
            );
        }
        out!("summary: {} {}", markdown.display(), json.display());
    }
    let failed = repeated.failures();
    if failed > 0 {
        return Err(Failed {
            failed,
            total: repeated.assertions.len(),
            dir: args.out.display().to_string(),
        }
        .into());
    }
    Ok(())
}
