//! `--repeat N`: the same scenario run N times, and its headline figures given as the
//! median and the range (min–max) across the runs: each assertion's measured value,
//! each load's p50, p99 and ok answers per second. An assertion passes only if it
//! passed in every run (one failure in N fails it); it is skipped only if it was
//! skipped in every run.
//!
//! Run-to-run drift is larger than the spread inside one run (see
//! `docs/validate.md`, "Comparing runs"): the range over repeated runs is the honest
//! noise band of a headline figure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ValidateError;
use crate::assertions::Status;
use crate::env::Environment;
use crate::report::Report;
use crate::run::{Options, run};
use crate::scenario::Scenario;

/// One figure across the runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median (of an even count, the mean of the two middle values).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// Each run's value, in run order.
    pub runs: Vec<f64>,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: values,
        })
    }

    fn words(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// One assertion across the runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepeatedAssertion {
    /// What was asserted.
    pub assertion: String,
    /// Pass only if it passed in every run; skipped only if skipped in every run.
    pub status: Status,
    /// In how many runs it passed.
    pub passed_runs: usize,
    /// Its measured value across the runs that measured one.
    pub value: Option<Spread>,
    /// What each run measured, in words.
    pub measured: Vec<String>,
}

/// One load's headline figures across the runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepeatedLoad {
    /// The load.
    pub name: String,
    /// Median latency, ms.
    pub p50_ms: Spread,
    /// 99th percentile, ms.
    pub p99_ms: Spread,
    /// Ok answers per second.
    pub ok_per_s: Spread,
    /// In how many runs the generator could not hold its rate.
    pub saturated_runs: usize,
}

/// A scenario run N times.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Repeated {
    /// The scenario.
    pub scenario: String,
    /// How many runs.
    pub runs: usize,
    /// Whether the times were scaled down.
    pub quick: bool,
    /// Where it ran (the first run's).
    pub environment: Environment,
    /// Each assertion, in the scenario's order.
    pub assertions: Vec<RepeatedAssertion>,
    /// Each load.
    pub loads: Vec<RepeatedLoad>,
    /// Whether every assertion passed (or was skipped) in every run.
    pub passed: bool,
}

impl Repeated {
    /// The summary of `reports`, runs of one scenario (the same assertions and loads,
    /// in the same order).
    pub fn of(reports: &[Report]) -> Self {
        let first = reports.first();
        let assertions = first.map(|r| r.assertions.len()).unwrap_or_default();
        let assertions = (0..assertions)
            .map(|i| {
                let each: Vec<_> = reports.iter().filter_map(|r| r.assertions.get(i)).collect();
                let passed_runs = each.iter().filter(|a| a.status == Status::Pass).count();
                let status = if each.iter().all(|a| a.status == Status::Skipped) {
                    Status::Skipped
                } else if passed_runs == reports.len() {
                    Status::Pass
                } else {
                    Status::Fail
                };
                RepeatedAssertion {
                    assertion: each
                        .first()
                        .map(|a| a.assertion.clone())
                        .unwrap_or_default(),
                    status,
                    passed_runs,
                    value: Spread::of(each.iter().filter_map(|a| a.value).collect()),
                    measured: each.iter().map(|a| a.measured.clone()).collect(),
                }
            })
            .collect();
        let loads = first
            .map(|r| r.loads.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|load| {
                let each: Vec<_> = reports
                    .iter()
                    .filter_map(|r| r.loads.iter().find(|l| l.name == load.name))
                    .collect();
                let spread = |f: fn(&crate::report::LoadReport) -> f64| {
                    Spread::of(each.iter().map(|l| f(l)).collect())
                };
                Some(RepeatedLoad {
                    name: load.name.clone(),
                    p50_ms: spread(|l| l.latency_ms.p50)?,
                    p99_ms: spread(|l| l.latency_ms.p99)?,
                    ok_per_s: spread(|l| l.ok_per_s)?,
                    saturated_runs: each.iter().filter(|l| l.saturated.is_some()).count(),
                })
            })
            .collect();
        let passed = reports.iter().all(|r| r.passed);
        Self {
            scenario: first.map(|r| r.scenario.clone()).unwrap_or_default(),
            runs: reports.len(),
            quick: first.is_some_and(|r| r.quick),
            environment: first.map_or_else(Environment::detect, |r| r.environment.clone()),
            assertions,
            loads,
            passed,
        }
    }

    /// How many assertions failed (in at least one run).
    pub fn failures(&self) -> usize {
        self.assertions
            .iter()
            .filter(|a| a.status == Status::Fail)
            .count()
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// As Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let e = &self.environment;
        let _ = writeln!(
            md,
            "# plexus validate `{}` × {}: {verdict}\n\nThe same scenario run {} times one after another{}, from {}, plexus {} at commit {}, on {} cores ({}). Each figure is the median across the runs, then the range (min–max); an assertion passes only if it passed in every run.\n",
            self.scenario,
            self.runs,
            self.runs,
            if self.quick { " (--quick)" } else { "" },
            e.started_at,
            e.plexus_version,
            e.commit.as_deref().unwrap_or("unknown"),
            e.cores,
            e.cpu.as_deref().unwrap_or("cpu unknown"),
        );
        let _ = writeln!(
            md,
            "## Assertions\n\n| | assertion | passed in | measured value: median (min–max) |\n| --- | --- | ---: | --- |"
        );
        for a in &self.assertions {
            let mark = match a.status {
                Status::Pass => "pass",
                Status::Fail => "**FAIL**",
                Status::Skipped => "skipped",
            };
            let value = match &a.value {
                Some(s) => s.words(3),
                None => a.measured.join("; "),
            };
            let _ = writeln!(
                md,
                "| {mark} | {} | {} of {} runs | {} |",
                a.assertion.replace('|', "\\|"),
                a.passed_runs,
                self.runs,
                value.replace('|', "\\|")
            );
        }
        let _ = writeln!(
            md,
            "\n## Loads\n\n| load | p50 ms | p99 ms | ok/s | generator saturated in |\n| --- | --- | --- | --- | ---: |"
        );
        for l in &self.loads {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} of {} runs |",
                l.name,
                l.p50_ms.words(2),
                l.p99_ms.words(2),
                l.ok_per_s.words(1),
                l.saturated_runs,
                self.runs
            );
        }
        md
    }

    /// Writes `repeat.json` and `repeat.md` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), ValidateError> {
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|source| ValidateError::Write {
                    path: path.clone(),
                    source,
                })?;
            Ok::<_, ValidateError>(path)
        };
        Ok((
            write("repeat.json", self.to_json())?,
            write("repeat.md", self.to_markdown())?,
        ))
    }
}

/// Runs `scenario` `n` times (at least once), one after another, each on a runtime
/// of its own; calls `each` with every run's number (from 1) and report as it ends.
pub fn run_repeated(
    scenario: &Scenario,
    options: &Options,
    n: usize,
    mut each: impl FnMut(usize, &Report),
) -> Result<(Repeated, Vec<Report>), ValidateError> {
    let mut reports = Vec::new();
    for i in 1..=n.max(1) {
        let report = run(scenario.clone(), options)?;
        each(i, &report);
        reports.push(report);
    }
    Ok((Repeated::of(&reports), reports))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = Spread::of(vec![4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(s.runs, [4.0, 1.0, 3.0, 2.0]);
        assert_eq!(Spread::of(vec![5.0, 1.0, 3.0]).unwrap().median, 3.0);
        assert_eq!(Spread::of(vec![]), None);
    }
}
