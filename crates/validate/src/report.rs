//! The report of a run: every figure measured in that run. Written as JSON (for
//! machines and `--compare`), Markdown (for people and pull requests) and one HTML
//! file with inline SVG charts (see [`crate::html`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::ValidateError;
use crate::assertions::{AssertionResult, Status};
use crate::env::Environment;
use crate::faults::FaultRecord;
use crate::load::ws::SessionStats;
use crate::load::{BUCKET, Counts, Recorder, SATURATION_LAG_US};
use crate::process::ProcessReport;

/// A latency distribution, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many values.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// The largest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

/// One point of a load's timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    /// The bucket's start, in scenario seconds.
    pub t_s: f64,
    /// Its counts (by intended send time).
    pub counts: Counts,
    /// Median latency (ms) of the requests due in it.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The largest.
    pub max_ms: f64,
}

/// What one load did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadReport {
    /// Its name.
    pub name: String,
    /// What it sent.
    pub target: String,
    /// Its model, in words (`open 200/s`, `open 100→400/s`, `closed 8 clients`).
    pub model: String,
    /// Whether latency runs from the intended send time (open model).
    pub from_intended_time: bool,
    /// The rate the schedule offered (open model), per second.
    pub offered_per_s: Option<f64>,
    /// When it ran, in scenario seconds.
    pub start_s: f64,
    /// Its end.
    pub end_s: f64,
    /// Every request, warm-up included.
    pub totals: Counts,
    /// Requests due after the warm-up.
    pub measured: Counts,
    /// Ok answers per second after the warm-up.
    pub ok_per_s: f64,
    /// Latency after the warm-up, every ended request (timed-out ones at the time
    /// they were given up).
    pub latency_ms: Percentiles,
    /// How late the generator sent requests (open model).
    pub send_lag_ms: Option<Percentiles>,
    /// Why the generator is marked saturated, if it is.
    pub saturated: Option<String>,
    /// Failures after the warm-up, by kind.
    pub errors: BTreeMap<String, u64>,
    /// The timeline, one point per 250 ms.
    pub timeline: Vec<Point>,
    /// How its WebSocket sessions fared, for a load over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionStats>,
}

impl LoadReport {
    /// The report of a finished load.
    pub(crate) fn new(
        name: &str,
        target: String,
        model: String,
        offered: Option<f64>,
        span: (f64, f64),
        warmup_s: f64,
        rec: &Recorder,
    ) -> Self {
        let (start_s, end_s) = span;
        let width = BUCKET.as_secs_f64();
        let mut measured = Counts::default();
        for (i, b) in rec.buckets.iter().enumerate() {
            if i as f64 * width + 1e-9 >= warmup_s {
                measured.due += b.counts.due;
                measured.ok += b.counts.ok;
                measured.failed += b.counts.failed;
                measured.timed_out += b.counts.timed_out;
                measured.dropped += b.counts.dropped;
            }
        }
        let seconds = (end_s - start_s.max(warmup_s)).max(1e-9);
        let from_intended_time = offered.is_some();
        let send_lag_ms = from_intended_time.then(|| Percentiles::of(&rec.lag));
        let saturated = if !from_intended_time {
            None
        } else if measured.dropped > 0 {
            Some(format!(
                "{} requests dropped: max_in_flight were out",
                measured.dropped
            ))
        } else if rec.lag.value_at_quantile(0.99) > SATURATION_LAG_US {
            Some(format!(
                "p99 send lag {:.1} ms over {} ms: the generator fell behind its schedule",
                rec.lag.value_at_quantile(0.99) as f64 / 1000.0,
                SATURATION_LAG_US / 1000
            ))
        } else {
            None
        };
        let timeline = rec
            .buckets
            .iter()
            .enumerate()
            .filter(|(i, b)| {
                let at = *i as f64 * width;
                // The load's own span: no zeros before it started.
                at + width > start_s && (b.counts.due > 0 || at < end_s)
            })
            .map(|(i, b)| Point {
                t_s: i as f64 * width,
                counts: b.counts,
                p50_ms: b.latency.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: b.latency.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: b.latency.max() as f64 / 1000.0,
            })
            .collect();
        Self {
            name: name.to_owned(),
            target,
            model,
            from_intended_time,
            offered_per_s: offered,
            start_s,
            end_s,
            totals: rec.totals,
            measured,
            ok_per_s: measured.ok as f64 / seconds,
            latency_ms: Percentiles::of(&rec.latency),
            send_lag_ms,
            saturated,
            errors: rec.errors.clone(),
            timeline,
            sessions: rec.sessions,
        }
    }
}

/// A fault proxy of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProxyReport {
    /// Its name.
    pub name: String,
    /// Its upstream, when it ran.
    pub upstream: Option<String>,
    /// The address clients used.
    pub addr: Option<String>,
    /// Its control API.
    pub control: Option<String>,
    /// Connections accepted and cut.
    pub accepted: u64,
    /// Connections the proxy cut.
    pub cut: u64,
    /// Why it did not run.
    pub skipped: Option<String>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// What it shows.
    pub description: String,
    /// Whether the times were scaled down (`--quick`).
    pub quick: bool,
    /// The run's length in seconds.
    pub duration_s: f64,
    /// The warm-up left out of the figures.
    pub warmup_s: f64,
    /// Where it ran.
    pub environment: Environment,
    /// The loads.
    pub loads: Vec<LoadReport>,
    /// The faults, as they happened.
    pub faults: Vec<FaultRecord>,
    /// The proxies.
    pub proxies: Vec<ProxyReport>,
    /// The process services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessReport>,
    /// The assertions.
    pub assertions: Vec<AssertionResult>,
    /// Whether no assertion failed.
    pub passed: bool,
    /// The report compared with (`--compare`): its start time and commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_with: Option<Box<Report>>,
    /// The figures beside the compared report's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparison: Vec<crate::compare::Delta>,
}

/// The three files a report is written as.
#[derive(Clone, Debug)]
pub struct Written {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
}

impl Report {
    /// Compares with `old` (its loads and environment are kept for the report, not
    /// its own comparison).
    pub fn compare_with(&mut self, mut old: Report) {
        self.comparison = crate::compare::compare(&old, self);
        old.comparison.clear();
        old.compared_with = None;
        old.loads.iter_mut().for_each(|l| l.timeline.clear());
        self.compared_with = Some(Box::new(old));
    }

    /// How many assertions failed.
    pub fn failures(&self) -> usize {
        self.assertions
            .iter()
            .filter(|a| a.status == Status::Fail)
            .count()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Reads a JSON report back.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Writes `report.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Written, ValidateError> {
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
        Ok(Written {
            json: write("report.json", self.to_json())?,
            markdown: write("report.md", self.to_markdown())?,
            html: write("report.html", crate::html::render(self))?,
        })
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(md, "# plexus validate `{}`: {verdict}\n", self.scenario);
        if !self.description.is_empty() {
            let _ = writeln!(md, "{}\n", self.description.trim());
        }
        let e = &self.environment;
        let _ = writeln!(
            md,
            "Run {} for {:.1} s (warm-up {:.1} s{}), plexus {} at commit {}, on {} cores ({}), {} MiB, {}.\n",
            e.started_at,
            self.duration_s,
            self.warmup_s,
            if self.quick { ", --quick" } else { "" },
            e.plexus_version,
            e.commit.as_deref().unwrap_or("unknown"),
            e.cores,
            e.cpu.as_deref().unwrap_or("cpu unknown"),
            e.memory_mib.map_or("?".into(), |m| m.to_string()),
            e.os
        );
        let _ = writeln!(
            md,
            "## Assertions\n\n| | assertion | measured | note |\n| --- | --- | --- | --- |"
        );
        for a in &self.assertions {
            let mark = match a.status {
                Status::Pass => "pass",
                Status::Fail => "**FAIL**",
                Status::Skipped => "skipped",
            };
            let _ = writeln!(
                md,
                "| {mark} | {} | {} | {} |",
                cell(&a.assertion),
                cell(&a.measured),
                cell(a.note.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(
            md,
            "\n## Loads\n\nLatency in ms after the warm-up; open-model latency runs from each request's intended send time.\n\n| load | target | model | offered/s | sent | ok | failed | timed out | dropped | ok/s | p50 | p90 | p99 | p99.9 | max | generator |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for l in &self.loads {
            let p = &l.latency_ms;
            let c = &l.measured;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                l.name,
                l.target,
                l.model,
                l.offered_per_s.map_or("-".into(), |r| format!("{r:.1}")),
                c.sent(),
                c.ok,
                c.failed,
                c.timed_out,
                c.dropped,
                l.ok_per_s,
                p.p50,
                p.p90,
                p.p99,
                p.p999,
                p.max,
                match (&l.saturated, &l.send_lag_ms) {
                    (Some(why), _) => format!("**saturated**: {why}"),
                    (None, Some(lag)) => format!("held the rate (p99 send lag {:.2} ms)", lag.p99),
                    (None, None) => "closed model: latency from the actual send".into(),
                }
            );
        }
        let errors: Vec<String> = self
            .loads
            .iter()
            .flat_map(|l| {
                l.errors
                    .iter()
                    .map(move |(k, n)| format!("`{}`: {k} × {n}", l.name))
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\nFailures by kind: {}.", errors.join("; "));
        }
        let sessions: Vec<String> = self
            .loads
            .iter()
            .filter_map(|l| {
                let s = l.sessions?;
                Some(format!(
                    "`{}`: {} opened, {} dropped mid-run ({} requests in flight on them failed), {} reconnected, {} lost",
                    l.name, s.opened, s.dropped, s.failed_in_flight, s.reconnected, s.lost
                ))
            })
            .collect();
        if !sessions.is_empty() {
            let _ = writeln!(md, "\nWebSocket sessions: {}.", sessions.join("; "));
        }
        if !self.faults.is_empty() {
            let _ = writeln!(
                md,
                "\n## Faults\n\n| fault | target | kind | planned (s) | applied at (s) | lifted at (s) |\n| --- | --- | --- | --- | ---: | ---: |"
            );
            for f in &self.faults {
                let t = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.2}–{:.2} | {} | {} |",
                    f.name,
                    f.target,
                    f.kind,
                    f.planned_at_s,
                    f.planned_end_s,
                    f.skipped
                        .as_ref()
                        .map_or_else(|| t(f.applied_at_s), |why| format!("skipped: {why}")),
                    t(f.lifted_at_s)
                );
            }
            for f in self.faults.iter().filter(|f| f.note.is_some()) {
                let _ = writeln!(
                    md,
                    "\nFault `{}`: {}.",
                    f.name,
                    f.note.as_deref().unwrap_or_default()
                );
            }
        }
        if !self.processes.is_empty() {
            let _ = writeln!(md, "\n## Process services\n");
            for p in &self.processes {
                let seen: Vec<String> = p
                    .instances
                    .iter()
                    .map(|i| {
                        format!(
                            "{} {} (registered at {:.2} s)",
                            i.instance, i.status, i.registered_at_s
                        )
                    })
                    .collect();
                let _ = writeln!(
                    md,
                    "- `{}`: `{}`, service `{}`, started {} time(s); instances at the end: {}{}",
                    p.name,
                    p.command,
                    p.service,
                    p.starts,
                    if seen.is_empty() {
                        "none".to_owned()
                    } else {
                        seen.join(", ")
                    },
                    p.exited_on_its_own
                        .as_ref()
                        .map_or(String::new(), |s| format!("; **exited on its own** ({s})"))
                );
            }
        }
        if !self.proxies.is_empty() {
            let _ = writeln!(md, "\n## Fault proxies\n");
            for p in &self.proxies {
                match &p.skipped {
                    Some(why) => {
                        let _ = writeln!(md, "- `{}`: not started: {why}", p.name);
                    }
                    None => {
                        let _ = writeln!(
                            md,
                            "- `{}`: {} → {}, control API http://{}; {} connections accepted, {} cut",
                            p.name,
                            p.addr.as_deref().unwrap_or("?"),
                            p.upstream.as_deref().unwrap_or("?"),
                            p.control.as_deref().unwrap_or("?"),
                            p.accepted,
                            p.cut
                        );
                    }
                }
            }
        }
        if let Some(old) = &self.compared_with {
            md.push_str(&crate::compare::markdown(old, &self.comparison));
        }
        md
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
