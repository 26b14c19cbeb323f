//! Per-method call figures read back from the node's own exposition: calls, errors,
//! and the 99th percentile estimated from `plexus_call_duration_seconds` the way
//! Prometheus's `histogram_quantile` does (linear within the bucket); and the
//! inference family's tokens, cost and requests per model
//! (`plexus_inference_*`).
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

impl MethodStats {
    /// The duration histogram's cumulative buckets `(le seconds, count)`, by bound
    /// (the page takes two readings' difference for a p99 over that window).
    pub fn buckets(&self) -> &[(f64, f64)] {
        &self.buckets
    }
}

/// One model's inference usage since the node started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelUsage {
    /// The model label: the model at its provider for tokens and cost, the name
    /// asked for (an alias or `provider/model`) for requests.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Estimated cost in US dollars.
    pub cost_usd: f64,
    /// Requests answered by a provider.
    pub ok: u64,
    /// Requests answered from the response cache.
    pub cached: u64,
    /// Requests that failed.
    pub errors: u64,
}

/// Reads each model's tokens, cost and requests from a Prometheus text exposition
/// (`plexus_inference_tokens_total`, `_cost_usd_total`, `_requests_total`), sorted
/// by model.
pub fn model_usage(exposition: &str) -> Vec<ModelUsage> {
    let mut by: BTreeMap<String, ModelUsage> = BTreeMap::new();
    for (name, labels, value) in samples(exposition) {
        if !name.starts_with("plexus_inference_") {
            continue;
        }
        let Some(model) = label(labels, "model") else {
            continue;
        };
        let entry = by.entry(model.to_owned()).or_insert_with(|| ModelUsage {
            model: model.to_owned(),
            ..ModelUsage::default()
        });
        let n = value as u64;
        match (name, label(labels, "kind"), label(labels, "outcome")) {
            ("plexus_inference_tokens_total", Some("prompt"), _) => entry.prompt_tokens += n,
            ("plexus_inference_tokens_total", Some("completion"), _) => {
                entry.completion_tokens += n;
            }
            ("plexus_inference_cost_usd_total", _, _) => entry.cost_usd += value,
            ("plexus_inference_requests_total", _, Some("ok")) => entry.ok += n,
            ("plexus_inference_requests_total", _, Some("cached")) => entry.cached += n,
            ("plexus_inference_requests_total", _, Some(_)) => entry.errors += n,
            _ => {}
        }
    }
    by.into_values().collect()
}

/// The sum of metric `name`'s samples by the value of `label` (series without
/// it are skipped), e.g. failures by deployment.
pub fn sum_by(exposition: &str, name: &str, label_name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (metric, labels, value) in samples(exposition) {
        if metric == name
            && let Some(key) = label(labels, label_name)
        {
            *out.entry(key.to_owned()).or_insert(0.0) += value;
        }
    }
    out
}

/// Every sample of an exposition as `(name, label text, value)`; comments and
/// lines that do not parse are skipped.
fn samples(exposition: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            Some((name, labels.trim_end_matches('}'), value))
        })
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
    for (name, labels, value) in samples(exposition) {
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
    fn tokens_cost_and_requests_per_model_come_from_the_exposition() {
        let text = "\
# TYPE plexus_inference_tokens_total counter
plexus_inference_tokens_total{model=\"p0/m0\",kind=\"prompt\"} 14
plexus_inference_tokens_total{model=\"p0/m0\",kind=\"completion\"} 10
plexus_inference_cost_usd_total{model=\"p0/m0\"} 0.000034
plexus_inference_requests_total{model=\"chain\",outcome=\"ok\"} 2
plexus_inference_requests_total{model=\"chain\",outcome=\"cached\"} 1
plexus_inference_requests_total{model=\"chain\",outcome=\"error\"} 3
plexus_inference_budget_refusals_total 4
plexus_calls_total{service=\"inference\",method=\"chat\",outcome=\"ok\"} 3
";
        let usage = model_usage(text);
        let models: Vec<&str> = usage.iter().map(|u| u.model.as_str()).collect();
        assert_eq!(models, ["chain", "p0/m0"]);
        assert_eq!((usage[0].ok, usage[0].cached, usage[0].errors), (2, 1, 3));
        assert_eq!(
            (usage[1].prompt_tokens, usage[1].completion_tokens),
            (14, 10)
        );
        assert!((usage[1].cost_usd - 0.000034).abs() < 1e-12);
        let calls = sum_by(text, "plexus_inference_tokens_total", "model");
        assert_eq!(calls.get("p0/m0"), Some(&24.0));
        assert!(sum_by(text, "plexus_inference_budget_refusals_total", "model").is_empty());
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
