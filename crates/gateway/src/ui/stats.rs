//! Per-method call figures read back from the node's own exposition: calls, errors,
//! and the 99th percentile estimated from `plexus_call_duration_seconds` the way
//! Prometheus's `histogram_quantile` does (linear within the bucket).
//!
//! The dashboard and `plexus top` show the same numbers Prometheus would compute,
//! from the one place the metrics are defined.

use std::collections::BTreeMap;

use serde::Serialize;

/// One method's totals since the node started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MethodStats {
    /// The service.
    pub service: String,
    /// The method.
    pub method: String,
    /// Calls that ended, whatever their outcome.
    pub calls: u64,
    /// Calls that ended with an error.
    pub errors: u64,
    /// The estimated 99th percentile of the call duration, in milliseconds (null
    /// before the first call).
    pub p99_ms: Option<f64>,
    #[serde(skip)]
    buckets: Vec<(f64, f64)>,
}

/// The value of label `name` in a series' label text (`a="x",b="y"`).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = labels;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        // Label values the node writes never hold a quote; an escaped one would end
        // the value early, which only mislabels that series.
        let (value, tail) = after.split_once('"')?;
        if key.trim_start_matches(',') == name {
            return Some(value);
        }
        rest = tail;
    }
    None
}

/// Reads every method's figures from a Prometheus text exposition, sorted by
/// service and method.
pub fn method_stats(exposition: &str) -> Vec<MethodStats> {
    let mut by: BTreeMap<(String, String), MethodStats> = BTreeMap::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let labels = labels.trim_end_matches('}');
        let is_calls = name == "plexus_calls_total";
        let is_bucket = name == "plexus_call_duration_seconds_bucket";
        if !is_calls && !is_bucket {
            continue;
        }
        let (Some(service), Some(method)) = (label(labels, "service"), label(labels, "method"))
        else {
            continue;
        };
        let entry = by
            .entry((service.to_owned(), method.to_owned()))
            .or_insert_with(|| MethodStats {
                service: service.to_owned(),
                method: method.to_owned(),
                ..MethodStats::default()
            });
        if is_calls {
            let n = value as u64;
            entry.calls += n;
            if label(labels, "outcome") != Some("ok") {
                entry.errors += n;
            }
        } else if let Some(le) = label(labels, "le") {
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            entry.buckets.push((le, value));
        }
    }
    by.into_values()
        .map(|mut s| {
            s.p99_ms = quantile(0.99, &mut s.buckets).map(|secs| secs * 1000.0);
            s
        })
        .collect()
}

/// `histogram_quantile(q, …)` over cumulative `(le, count)` buckets: `None` when
/// empty; the highest finite bound when the quantile falls in `+Inf`.
pub fn quantile(q: f64, buckets: &mut [(f64, f64)]) -> Option<f64> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets.iter() {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let width = count - prev.1;
            let into = if width > 0.0 {
                (rank - prev.1) / width
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * into);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_errors_and_p99_come_from_the_exposition() {
        let text = "\
# TYPE plexus_calls_total counter
plexus_calls_total{service=\"echo\",method=\"say\",outcome=\"ok\"} 98
plexus_calls_total{service=\"echo\",method=\"say\",outcome=\"timeout\"} 2
plexus_call_duration_seconds_bucket{le=\"0.001\",service=\"echo\",method=\"say\"} 50
plexus_call_duration_seconds_bucket{le=\"0.01\",service=\"echo\",method=\"say\"} 90
plexus_call_duration_seconds_bucket{le=\"0.1\",service=\"echo\",method=\"say\"} 100
plexus_call_duration_seconds_bucket{le=\"+Inf\",service=\"echo\",method=\"say\"} 100
plexus_call_duration_seconds_count{service=\"echo\",method=\"say\"} 100
";
        let stats = method_stats(text);
        assert_eq!(stats.len(), 1);
        let s = &stats[0];
        assert_eq!((s.calls, s.errors), (100, 2));
        // Rank 99 of 100 falls 9/10 into the (0.01, 0.1] bucket: 0.091 s.
        let p99 = s.p99_ms.unwrap();
        assert!((p99 - 91.0).abs() < 1e-6, "{p99}");
    }

    #[test]
    fn an_empty_histogram_has_no_quantile_and_inf_gives_the_last_bound() {
        assert_eq!(quantile(0.99, &mut []), None);
        assert_eq!(
            quantile(0.99, &mut [(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        let mut b = [(1.0, 1.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.99, &mut b), Some(1.0));
    }
}
