//! Assertions checked against what the run measured: each gives its measured value,
//! the bound, and pass, fail or skipped (with the reason).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::faults::FaultRecord;
use crate::load::{BUCKET, Counts, Recorder};
use crate::probe::{HealthSample, Sample, Series, sum};
use crate::scenario::{AssertionSpec, Window};
use crate::writes::ReadBack;

/// The verdict of one assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It held.
    Pass,
    /// It did not.
    Fail,
    /// It could not be checked (a proxy's upstream is not configured).
    Skipped,
}

/// One assertion's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssertionResult {
    /// What was asserted, in words.
    pub assertion: String,
    /// What was measured, in words.
    pub measured: String,
    /// The measured figure, when there is one.
    pub value: Option<f64>,
    /// The verdict.
    pub status: Status,
    /// Why it failed or was skipped, beyond the figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Everything assertions read.
pub struct Measured<'a> {
    /// Each load's recorder, start and end (scenario seconds).
    pub loads: BTreeMap<String, (&'a Recorder, f64, f64)>,
    /// The faults as they happened.
    pub faults: &'a [FaultRecord],
    /// The breaker samples.
    pub breakers: &'a [Sample],
    /// The health samples.
    pub health: &'a [HealthSample],
    /// The read-backs of write loads, by [`read_key`].
    pub read_backs: &'a BTreeMap<String, ReadBack>,
    /// `/metrics` at the end.
    pub metrics: &'a [Series],
    /// The end of the warm-up.
    pub warmup_s: f64,
}

/// A load's figures over a window.
pub struct WindowStats {
    /// The counts.
    pub counts: Counts,
    /// The latencies (µs).
    pub latency: Histogram<u64>,
    /// The window's length in seconds (inside the load).
    pub seconds: f64,
    /// Whether the generator dropped requests, or sent over 1 % of them more than
    /// [`crate::load::SATURATION_LAG_US`] late, in it.
    pub saturated: bool,
}

/// The figures of `rec` (a load from `start` to `end`) over `window`.
pub fn window(rec: &Recorder, start: f64, end: f64, window: &Window, warmup_s: f64) -> WindowStats {
    let from = window.from_s.unwrap_or(warmup_s).max(start);
    let to = window.to_s.unwrap_or(end).min(end);
    let width = BUCKET.as_secs_f64();
    let mut counts = Counts::default();
    let mut latency = crate::load::histogram(2);
    let mut late = 0;
    for (i, b) in rec.buckets.iter().enumerate() {
        let at = i as f64 * width;
        if at + 1e-9 < from || at >= to {
            continue;
        }
        counts.due += b.counts.due;
        counts.ok += b.counts.ok;
        counts.failed += b.counts.failed;
        counts.timed_out += b.counts.timed_out;
        counts.dropped += b.counts.dropped;
        let _ = latency.add(&b.latency);
        late += b.late;
    }
    // Held: nothing dropped and at most 1 % sent late (a p99 send lag within bounds).
    let saturated = counts.dropped > 0 || late * 100 > counts.due;
    WindowStats {
        counts,
        latency,
        seconds: (to - from).max(0.0),
        saturated,
    }
}

/// The key of a `no_lost_writes` assertion's read-back: the load and the read.
pub fn read_key(load: &str, read: &crate::scenario::CallSpec) -> String {
    format!("{load}\n{}", read.body())
}

/// The statuses `component` went through, repeats merged, each with the scenario
/// second it was first seen; `unknown` (not checked yet: just added, or registered
/// again) left out unless `expected` names it.
pub fn transitions(
    samples: &[HealthSample],
    component: &str,
    expected: &[String],
) -> Vec<(String, f64)> {
    let keep_unknown = expected.iter().any(|s| s == "unknown");
    let mut seen: Vec<(String, f64)> = Vec::new();
    for sample in samples {
        let Some(status) = sample.statuses.get(component) else {
            continue;
        };
        if status == "unknown" && !keep_unknown {
            continue;
        }
        if seen.last().is_none_or(|(s, _)| s != status) {
            seen.push((status.clone(), sample.at_s));
        }
    }
    seen
}

fn window_words(w: &Window) -> String {
    match (w.from_s, w.to_s) {
        (None, None) => String::new(),
        (Some(a), None) => format!(" from {a} s"),
        (None, Some(b)) => format!(" until {b} s"),
        (Some(a), Some(b)) => format!(" from {a} s to {b} s"),
    }
}

/// Checks `spec` against `m`.
pub fn check(spec: &AssertionSpec, m: &Measured<'_>) -> AssertionResult {
    let result = |assertion: String,
                  measured: String,
                  value: Option<f64>,
                  pass: bool,
                  note: Option<String>| AssertionResult {
        assertion,
        measured,
        value,
        status: if pass { Status::Pass } else { Status::Fail },
        note,
    };
    let stats = |load: &str, w: &Window| {
        m.loads
            .get(load)
            .map(|(rec, start, end)| window(rec, *start, *end, w, m.warmup_s))
    };
    match spec {
        AssertionSpec::Latency {
            load,
            percentile,
            max_ms,
            window: w,
        } => {
            let assertion = format!(
                "p{percentile} latency of `{load}`{} ≤ {max_ms} ms",
                window_words(w)
            );
            let Some(s) = stats(load, w) else {
                return result(assertion, "no such load".into(), None, false, None);
            };
            if s.latency.is_empty() {
                return result(
                    assertion,
                    "no request ended in the window".into(),
                    None,
                    false,
                    None,
                );
            }
            let ms = s.latency.value_at_quantile(percentile / 100.0) as f64 / 1000.0;
            let note = s.saturated.then(|| {
                "the generator could not hold the rate in this window (send lag or dropped requests): the latency is not trustworthy".to_owned()
            });
            result(
                assertion,
                format!("{ms:.2} ms over {} requests", s.latency.len()),
                Some(ms),
                ms <= *max_ms && !s.saturated,
                note,
            )
        }
        AssertionSpec::ErrorRate {
            load,
            min,
            max,
            window: w,
        } => {
            let bounds = match (min, max) {
                (Some(a), Some(b)) => format!("between {a} and {b}"),
                (Some(a), None) => format!("≥ {a}"),
                (None, Some(b)) => format!("≤ {b}"),
                (None, None) => String::new(),
            };
            let assertion = format!("error rate of `{load}`{} {bounds}", window_words(w));
            let Some(s) = stats(load, w) else {
                return result(assertion, "no such load".into(), None, false, None);
            };
            let ended = s.counts.ok + s.counts.failed + s.counts.timed_out;
            if ended == 0 {
                return result(
                    assertion,
                    "no request ended in the window".into(),
                    None,
                    false,
                    None,
                );
            }
            let rate = (s.counts.failed + s.counts.timed_out) as f64 / ended as f64;
            let pass = min.is_none_or(|a| rate >= a) && max.is_none_or(|b| rate <= b);
            let measured = format!(
                "{rate:.4} ({} failed + {} timed out of {ended})",
                s.counts.failed, s.counts.timed_out
            );
            result(assertion, measured, Some(rate), pass, None)
        }
        AssertionSpec::Throughput {
            load,
            min_per_s,
            window: w,
        } => {
            let assertion = format!("ok answers of `{load}`{} ≥ {min_per_s}/s", window_words(w));
            let Some(s) = stats(load, w) else {
                return result(assertion, "no such load".into(), None, false, None);
            };
            let rate = if s.seconds > 0.0 {
                s.counts.ok as f64 / s.seconds
            } else {
                0.0
            };
            result(
                assertion,
                format!("{rate:.1}/s ({} ok in {:.2} s)", s.counts.ok, s.seconds),
                Some(rate),
                rate >= *min_per_s,
                None,
            )
        }
        AssertionSpec::Breaker {
            service,
            fault,
            opens_within_s,
            closes_within_s,
        } => {
            let assertion = format!(
                "a breaker of `{service}` opens within {opens_within_s} s of `{fault}` and all close within {closes_within_s} s of its end"
            );
            let Some(record) = m.faults.iter().find(|f| &f.name == fault) else {
                return result(assertion, "no such fault".into(), None, false, None);
            };
            if let Some(reason) = &record.skipped {
                return AssertionResult {
                    assertion,
                    measured: "not run".into(),
                    value: None,
                    status: Status::Skipped,
                    note: Some(reason.clone()),
                };
            }
            let (Some(applied), Some(lifted)) = (record.applied_at_s, record.lifted_at_s) else {
                return result(assertion, "the fault did not run".into(), None, false, None);
            };
            let opened = m
                .breakers
                .iter()
                .find(|s| s.at_s >= applied && s.any_open(service))
                .map(|s| s.at_s - applied);
            let Some(open_after) = opened else {
                return result(
                    assertion,
                    "never opened".into(),
                    None,
                    false,
                    Some(format!("{} samples of /metrics", m.breakers.len())),
                );
            };
            let closed = m
                .breakers
                .iter()
                .find(|s| s.at_s >= lifted && s.all_closed(service))
                .map(|s| s.at_s - lifted);
            let measured = match closed {
                Some(c) => format!(
                    "opened {open_after:.2} s after the fault, all closed {c:.2} s after its end"
                ),
                None => {
                    format!("opened {open_after:.2} s after the fault, not closed again by the end")
                }
            };
            let pass =
                open_after <= *opens_within_s && closed.is_some_and(|c| c <= *closes_within_s);
            result(assertion, measured, Some(open_after), pass, None)
        }
        AssertionSpec::Health {
            component,
            sequence,
            fault,
        } => {
            let assertion = format!(
                "health of `{component}` goes {}{}",
                sequence.join(" → "),
                fault
                    .as_ref()
                    .map_or(String::new(), |f| format!(" across `{f}`"))
            );
            if let Some(reason) = fault
                .as_ref()
                .and_then(|f| m.faults.iter().find(|r| &r.name == f))
                .and_then(|r| r.skipped.clone())
            {
                return AssertionResult {
                    assertion,
                    measured: "not run".into(),
                    value: None,
                    status: Status::Skipped,
                    note: Some(reason),
                };
            }
            let observed = transitions(m.health, component, sequence);
            if observed.is_empty() {
                return result(
                    assertion,
                    "not in /health".into(),
                    None,
                    false,
                    Some(format!("{} samples of /health", m.health.len())),
                );
            }
            let measured = observed
                .iter()
                .map(|(s, at)| format!("{s} at {at:.2} s"))
                .collect::<Vec<_>>()
                .join(" → ");
            let pass = observed.len() == sequence.len()
                && observed.iter().zip(sequence).all(|((s, _), e)| s == e);
            result(
                assertion,
                measured,
                Some((observed.len() - 1) as f64),
                pass,
                Some(format!("{} samples of /health", m.health.len())),
            )
        }
        AssertionSpec::NoLostWrites { load, read } => {
            let assertion = format!(
                "no write of `{load}` answered ok is lost (read back with {})",
                read.call
            );
            let Some(back) = m.read_backs.get(&read_key(load, read)) else {
                return result(assertion, "not read back".into(), None, false, None);
            };
            let unreadable: u64 = back.unreadable.values().sum();
            let mut measured = format!(
                "{} lost of {} acknowledged ({} read back",
                back.missing_count, back.acked, back.found
            );
            if unreadable > 0 {
                let kinds: Vec<String> = back
                    .unreadable
                    .iter()
                    .map(|(k, n)| format!("{k} × {n}"))
                    .collect();
                let _ = write!(measured, ", {unreadable} unreadable: {}", kinds.join(", "));
            }
            measured.push(')');
            let note = (!back.missing.is_empty()).then(|| {
                let seqs: Vec<String> = back.missing.iter().map(u64::to_string).collect();
                format!("lost: ${{seq}} = {}", seqs.join(", "))
            });
            let pass = back.missing_count == 0 && unreadable == 0 && back.acked > 0;
            let note = note.or_else(|| {
                (back.acked == 0).then(|| "no write was acknowledged: nothing shown".to_owned())
            });
            result(
                assertion,
                measured,
                Some(back.missing_count as f64),
                pass,
                note,
            )
        }
        AssertionSpec::Metric {
            name,
            labels,
            min,
            max,
            equals,
        } => {
            let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let series = format!("{name}{{{}}}", shown.join(","));
            let expected = equals.as_ref().and_then(|e| {
                let (load, what) = e.rsplit_once('.')?;
                let (rec, _, _) = m.loads.get(load)?;
                Some(match what {
                    "ok" => rec.totals.ok,
                    "failed" => rec.totals.failed,
                    _ => rec.totals.sent(),
                } as f64)
            });
            let mut bounds = Vec::new();
            if let Some(a) = min {
                bounds.push(format!("≥ {a}"));
            }
            if let Some(b) = max {
                bounds.push(format!("≤ {b}"));
            }
            if let (Some(e), Some(v)) = (equals, expected) {
                bounds.push(format!("= {e} ({v})"));
            }
            let assertion = format!("{series} {}", bounds.join(" and "));
            let Some(value) = sum(m.metrics, name, labels) else {
                return result(
                    assertion,
                    "no such series in /metrics".into(),
                    None,
                    false,
                    None,
                );
            };
            let pass = min.is_none_or(|a| value >= a)
                && max.is_none_or(|b| value <= b)
                && (equals.is_none() || expected == Some(value));
            result(assertion, format!("{value}"), Some(value), pass, None)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn samples(statuses: &[&str]) -> Vec<HealthSample> {
        statuses
            .iter()
            .enumerate()
            .map(|(i, s)| HealthSample {
                at_s: i as f64 * 0.05,
                statuses: [("database".to_owned(), (*s).to_owned())].into(),
            })
            .collect()
    }

    fn check_health(observed: &[&str], expected: &[&str]) -> AssertionResult {
        let health = samples(observed);
        let m = Measured {
            loads: BTreeMap::new(),
            faults: &[],
            breakers: &[],
            health: &health,
            read_backs: &BTreeMap::new(),
            metrics: &[],
            warmup_s: 0.0,
        };
        let spec = AssertionSpec::Health {
            component: "database".into(),
            sequence: expected.iter().map(|s| (*s).to_owned()).collect(),
            fault: None,
        };
        check(&spec, &m)
    }

    #[test]
    fn health_transitions_must_match_in_order() {
        let seq = ["healthy", "unhealthy", "healthy"];
        let r = check_health(
            &[
                "unknown",
                "healthy",
                "healthy",
                "unhealthy",
                "unhealthy",
                "healthy",
            ],
            &seq,
        );
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(
            r.measured,
            "healthy at 0.05 s → unhealthy at 0.15 s → healthy at 0.25 s"
        );
        // It never came back.
        let r = check_health(&["healthy", "unhealthy"], &seq);
        assert_eq!(r.status, Status::Fail, "{r:?}");
        // It flapped.
        let r = check_health(
            &["healthy", "unhealthy", "healthy", "unhealthy", "healthy"],
            &seq,
        );
        assert_eq!(r.status, Status::Fail, "{r:?}");
        // `unknown` (not checked yet, as after registering again) counts only when
        // the sequence names it.
        let r = check_health(&["healthy", "unhealthy", "unknown", "healthy"], &seq);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        let r = check_health(&["unknown", "healthy"], &["unknown", "healthy"]);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        let r = check_health(
            &["healthy", "unknown", "healthy"],
            &["healthy", "unknown", "healthy"],
        );
        assert_eq!(r.status, Status::Pass, "{r:?}");
        let r = check_health(&[], &seq);
        assert_eq!(r.status, Status::Fail, "{r:?}");
    }
}
