//! `--compare OLD.json`: the headline figures of each load beside a previous report's,
//! with a noise band measured in the two runs themselves.
//!
//! The band of a figure is the spread of that figure across the 250 ms buckets of
//! both runs after the warm-up: half the interquartile range of the per-bucket
//! values, relative to their median (at least 2 %). A change inside the band is
//! reported as noise, not as a regression or an improvement.

use serde::{Deserialize, Serialize};

use crate::report::{LoadReport, Point, Report};

/// One figure of one load, old and new.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delta {
    /// The load.
    pub load: String,
    /// The figure (`p50_ms`, `p99_ms`, `ok_per_s`).
    pub figure: String,
    /// The old value.
    pub old: f64,
    /// The new value.
    pub new: f64,
    /// The change in percent of the old value.
    pub change_pct: f64,
    /// The noise band in percent.
    pub band_pct: f64,
    /// `noise`, `better` or `worse`.
    pub verdict: String,
}

type Figure = (
    &'static str,
    fn(&LoadReport) -> f64,
    fn(&Point) -> Option<f64>,
    bool,
);

/// The figures compared: name, whole-load value, per-bucket value, higher is better.
const FIGURES: [Figure; 3] = [
    (
        "p50_ms",
        |l| l.latency_ms.p50,
        |p| (p.counts.ok > 0).then_some(p.p50_ms),
        false,
    ),
    (
        "p99_ms",
        |l| l.latency_ms.p99,
        |p| (p.counts.ok > 0).then_some(p.p99_ms),
        false,
    ),
    (
        "ok_per_s",
        |l| l.ok_per_s,
        |p| Some(p.counts.ok as f64),
        true,
    ),
];

fn quartiles(mut values: Vec<f64>) -> Option<(f64, f64, f64)> {
    if values.len() < 4 {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Some((at(0.25), at(0.5), at(0.75)))
}

/// The points of `load` inside its own span, after the warm-up.
fn in_span(load: &LoadReport, warmup_s: f64) -> impl Iterator<Item = &Point> {
    let from = load.start_s.max(warmup_s);
    load.timeline
        .iter()
        .filter(move |p| p.t_s >= from && p.t_s < load.end_s)
}

/// The loads both reports have, figure by figure.
pub fn compare(old: &Report, new: &Report) -> Vec<Delta> {
    let mut deltas = Vec::new();
    for n in &new.loads {
        let Some(o) = old.loads.iter().find(|o| o.name == n.name) else {
            continue;
        };
        for (figure, whole, bucket, higher_is_better) in FIGURES {
            let (ov, nv) = (whole(o), whole(n));
            let per_bucket: Vec<f64> = [(o, old.warmup_s), (n, new.warmup_s)]
                .iter()
                .flat_map(|(l, warmup)| in_span(l, *warmup).filter_map(bucket))
                .collect();
            let band_pct = quartiles(per_bucket)
                .filter(|(_, median, _)| *median > 0.0)
                .map_or(2.0, |(q1, median, q3)| (50.0 * (q3 - q1) / median).max(2.0));
            let change_pct = if ov != 0.0 {
                100.0 * (nv - ov) / ov
            } else {
                0.0
            };
            let verdict = if change_pct.abs() <= band_pct {
                "noise"
            } else if (change_pct > 0.0) == higher_is_better {
                "better"
            } else {
                "worse"
            };
            deltas.push(Delta {
                load: n.name.clone(),
                figure: figure.to_owned(),
                old: ov,
                new: nv,
                change_pct,
                band_pct,
                verdict: verdict.to_owned(),
            });
        }
    }
    deltas
}

/// The comparison as a Markdown section.
pub fn markdown(old: &Report, deltas: &[Delta]) -> String {
    let mut md = format!(
        "\n## Compared with the run of {} (commit {})\n\n| load | figure | old | new | change | noise band | verdict |\n| --- | --- | ---: | ---: | ---: | ---: | --- |\n",
        old.environment.started_at,
        old.environment.commit.as_deref().unwrap_or("unknown")
    );
    for d in deltas {
        md.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:+.1} % | ± {:.1} % | {} |\n",
            d.load, d.figure, d.old, d.new, d.change_pct, d.band_pct, d.verdict
        ));
    }
    md
}
