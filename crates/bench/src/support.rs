//! What every benchmark shares: options, result rows, the report and its printing.

use std::time::Duration;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// How a benchmark run is asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// A short run for CI smoke tests: the same measurements on less work.
    pub quick: bool,
    /// Show a progress bar on standard error.
    pub progress: bool,
}

/// The median of `values` (sorted in place); 0 for none.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What `value` adds over `direct`, to a tenth; below the noise a layer can measure
/// as faster than no layer, which reports as zero.
pub(crate) fn overhead(value: f64, direct: f64) -> f64 {
    ((value - direct).max(0.0) * 10.0).round() / 10.0
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The runtime or a measured component failed.
    #[error("benchmark {bench} failed: {reason}")]
    Failed {
        /// Which benchmark.
        bench: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl BenchError {
    /// Benchmark `bench` failed, for `reason`.
    pub fn failed(bench: &'static str, reason: impl ToString) -> Self {
        Self::Failed {
            bench,
            reason: reason.to_string(),
        }
    }
}

/// The unit of a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Unit {
    /// Events delivered per second.
    #[serde(rename = "events/s")]
    EventsPerSecond,
    /// Calls per second.
    #[serde(rename = "calls/s")]
    CallsPerSecond,
    /// Store operations per second.
    #[serde(rename = "ops/s")]
    OpsPerSecond,
    /// HTTP requests per second.
    #[serde(rename = "requests/s")]
    RequestsPerSecond,
    /// Request/response round trips per second.
    #[serde(rename = "round trips/s")]
    RoundTripsPerSecond,
    /// Microseconds.
    #[serde(rename = "us")]
    Micros,
    /// Nanoseconds.
    #[serde(rename = "ns")]
    Nanos,
    /// A number of things (loads, retries).
    #[serde(rename = "count")]
    Count,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::EventsPerSecond => "events/s",
            Unit::CallsPerSecond => "calls/s",
            Unit::OpsPerSecond => "ops/s",
            Unit::RequestsPerSecond => "requests/s",
            Unit::RoundTripsPerSecond => "round trips/s",
            Unit::Micros => "us",
            Unit::Nanos => "ns",
            Unit::Count => "count",
        }
    }
}

/// One figure, with its ceiling when it has one.
#[derive(Clone, Debug, Serialize)]
pub struct Result {
    /// The stable result name, such as `delivered_1to1`.
    pub name: String,
    /// Its unit.
    pub unit: Unit,
    /// The measured value.
    pub value: f64,
    /// What the ceiling is, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<String>,
    /// The ceiling measured in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_value: Option<f64>,
    /// `value / ceiling_value`, or the inverse when lower is better.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Whether a higher value is better.
    pub higher_is_better: bool,
    /// The target this figure is held to, when the design sets one (same unit, or a
    /// ratio when `target_is_ratio`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Result {
    /// A figure with no ceiling.
    pub fn new(name: &str, unit: Unit, value: f64, higher_is_better: bool) -> Self {
        Self {
            name: name.to_owned(),
            unit,
            value,
            ceiling: None,
            ceiling_value: None,
            ratio: None,
            higher_is_better,
            target: None,
        }
    }

    /// Adds the ceiling measured in the same run and computes the ratio.
    pub fn with_ceiling(mut self, ceiling: &str, ceiling_value: f64) -> Self {
        let ratio = if self.higher_is_better {
            self.value / ceiling_value
        } else {
            ceiling_value / self.value
        };
        self.ceiling = Some(ceiling.to_owned());
        self.ceiling_value = Some(ceiling_value);
        self.ratio = ratio.is_finite().then_some(round(ratio, 3));
        self
    }

    /// Notes the target this figure is held to, for the table.
    pub fn with_target(mut self, target: &str) -> Self {
        self.target = Some(target.to_owned());
        self
    }
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// The results of one benchmark run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Which part was measured, such as `bus`.
    pub bench: String,
    /// The cores the machine offers.
    pub cores: usize,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// The figures.
    pub results: Vec<Result>,
}

impl Report {
    /// An empty report for `bench`.
    pub fn new(bench: &str, options: Options) -> Self {
        Self {
            bench: bench.to_owned(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            quick: options.quick,
            results: Vec::new(),
        }
    }

    /// The figure called `name`.
    pub fn get(&self, name: &str) -> Option<&Result> {
        self.results.iter().find(|r| r.name == name)
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        // Serializing plain numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a table for people.
    pub fn to_table(&self) -> Table {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
            "result",
            "value",
            "unit",
            "ceiling",
            "ceiling value",
            "ratio",
            "target",
        ]);
        for r in &self.results {
            let opt = |v: Option<f64>| v.map(format_value).unwrap_or_default();
            table.add_row(vec![
                Cell::new(&r.name),
                Cell::new(format_value(r.value)).set_alignment(CellAlignment::Right),
                Cell::new(r.unit.label()),
                Cell::new(r.ceiling.clone().unwrap_or_default()),
                Cell::new(opt(r.ceiling_value)).set_alignment(CellAlignment::Right),
                Cell::new(r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default())
                    .set_alignment(CellAlignment::Right),
                Cell::new(r.target.clone().unwrap_or_default()),
            ]);
        }
        table
    }
}

/// Formats a figure with thousands separators, keeping one decimal below 1000.
pub fn format_value(value: f64) -> String {
    if value.abs() < 1000.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

/// A progress bar over the steps of a benchmark; hidden unless asked for.
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar of `steps` steps, shown when `options.progress` is set.
    pub fn new(options: Options, steps: u64) -> Self {
        let bar = if options.progress {
            ProgressBar::new(steps)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        Self(bar)
    }

    /// Starts a step, naming it.
    pub fn step(&self, name: &str) {
        self.0.set_message(name.to_owned());
    }

    /// Ends a step.
    pub fn done_step(&self) {
        self.0.inc(1);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A `--quick` run of a benchmark, for its smoke test: panics unless every figure
/// in `names` is there, positive, beside a positive ceiling, with its ratio.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
pub(crate) fn quick_run_with_ceilings(
    run: fn(Options) -> std::result::Result<Report, BenchError>,
    names: &[&str],
) -> Report {
    let report = run(Options {
        quick: true,
        progress: false,
    })
    .unwrap();
    for name in names {
        let r = report.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(r.value > 0.0, "{name}");
        assert!(r.ceiling_value.is_some_and(|c| c > 0.0), "{name}");
        assert!(r.ratio.is_some(), "{name}");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_inverted_when_lower_is_better() {
        let fast = Result::new("x", Unit::EventsPerSecond, 60.0, true).with_ceiling("c", 100.0);
        assert_eq!(fast.ratio, Some(0.6));
        let lat = Result::new("y", Unit::Micros, 50.0, false).with_ceiling("c", 25.0);
        assert_eq!(lat.ratio, Some(0.5));
    }

    #[test]
    fn values_get_thousands_separators() {
        assert_eq!(format_value(12_500_000.4), "12,500,000");
        assert_eq!(format_value(35.25), "35.2");
        assert_eq!(format_value(-1234.0), "-1,234");
    }
}
