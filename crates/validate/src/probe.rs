//! Reading the node's `/metrics` and `/health`: a parser of the Prometheus text
//! format, a probe that samples breaker states every [`PERIOD`] while the scenario
//! runs, and one that samples health components as often.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

/// How often the probe reads `/metrics`.
pub const PERIOD: Duration = Duration::from_millis(50);

/// One series of an exposition: name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The metric name as exposed (`plexus_calls_total`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// Every series of a Prometheus text exposition (comments skipped, malformed lines
/// ignored).
pub fn parse(text: &str) -> Vec<Series> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Series> {
    let (series, value) = line.trim().rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Series {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        });
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next()? {
                    'n' => val.push('\n'),
                    other => val.push(other),
                },
                '"' => break,
                c => val.push(c),
            }
        }
        labels.insert(key.trim().to_owned(), val);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Series {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The sum of the series called `name` that carry every label of `labels`; `None`
/// when there is none.
pub fn sum(series: &[Series], name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
    let matching: Vec<f64> = series
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// The breaker states of some services at one moment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Scenario seconds.
    pub at_s: f64,
    /// Per service, each instance's state (`closed`, `open`, `half_open`, …).
    pub states: BTreeMap<String, BTreeMap<String, String>>,
}

impl Sample {
    /// Whether any instance of `service` is open.
    pub fn any_open(&self, service: &str) -> bool {
        self.states
            .get(service)
            .is_some_and(|i| i.values().any(|s| s == "open" || s == "forced_open"))
    }

    /// Whether every instance of `service` is closed (and it has some).
    pub fn all_closed(&self, service: &str) -> bool {
        self.states
            .get(service)
            .is_some_and(|i| !i.is_empty() && i.values().all(|s| s == "closed"))
    }
}

/// Fetches `/metrics` once.
pub async fn scrape(client: &reqwest::Client, url: &str) -> Option<Vec<Series>> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    Some(parse(&response.text().await.ok()?))
}

/// Samples the breaker states of `services` every [`PERIOD`] from `t0` until `end`.
pub async fn breakers(
    client: reqwest::Client,
    url: String,
    services: BTreeSet<String>,
    t0: Instant,
    end: Duration,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    if services.is_empty() {
        return samples;
    }
    let mut tick = tokio::time::interval_at(t0, PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while t0.elapsed() < end {
        tick.tick().await;
        let Some(series) = scrape(&client, &url).await else {
            continue;
        };
        let mut states: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for s in series
            .iter()
            .filter(|s| s.name == "plexus_breaker_state" && s.value >= 1.0)
        {
            let (Some(service), Some(instance), Some(state)) = (
                s.labels.get("service"),
                s.labels.get("instance"),
                s.labels.get("state"),
            ) else {
                continue;
            };
            if services.contains(service) {
                states
                    .entry(service.clone())
                    .or_default()
                    .insert(instance.clone(), state.clone());
            }
        }
        samples.push(Sample {
            at_s: t0.elapsed().as_secs_f64(),
            states,
        });
    }
    samples
}

/// The statuses of some health components at one moment, from `/health`.
#[derive(Clone, Debug)]
pub struct HealthSample {
    /// Scenario seconds.
    pub at_s: f64,
    /// Per component, its status (`unknown`, `healthy`, `degraded`, `unhealthy`);
    /// a component `/health` did not list is absent.
    pub statuses: BTreeMap<String, String>,
}

/// The component statuses of a `/health` document, for `components`.
pub fn health_statuses(
    doc: &serde_json::Value,
    components: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    doc.get("components")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.get("component")?.as_str()?;
            let status = c.get("status")?.as_str()?;
            components
                .contains(name)
                .then(|| (name.to_owned(), status.to_lowercase()))
        })
        .collect()
}

/// Samples the status of `components` from `/health` (`url`) every [`PERIOD`] from
/// `t0` until `end`. A sample whose request failed is left out.
pub async fn health(
    client: reqwest::Client,
    url: String,
    components: BTreeSet<String>,
    t0: Instant,
    end: Duration,
) -> Vec<HealthSample> {
    let mut samples = Vec::new();
    if components.is_empty() {
        return samples;
    }
    let mut tick = tokio::time::interval_at(t0, PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while t0.elapsed() < end {
        tick.tick().await;
        let Ok(response) = client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        else {
            continue;
        };
        // 503 (the system is Critical) still carries the document.
        let Ok(doc) = response.json::<serde_json::Value>().await else {
            continue;
        };
        samples.push(HealthSample {
            at_s: t0.elapsed().as_secs_f64(),
            statuses: health_statuses(&doc, &components),
        });
    }
    samples
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn series_are_parsed_and_summed_by_label() {
        let text = "# HELP x\nplexus_calls_total{service=\"a\",method=\"w\",outcome=\"ok\"} 3\n\
                    plexus_calls_total{service=\"a\",method=\"r\",outcome=\"ok\"} 4\n\
                    plexus_calls_total{service=\"b\",method=\"w\",outcome=\"ok\"} 10\n\
                    odd{k=\"q\\\"uote\"} 1.5\nplain 2\n";
        let series = parse(text);
        assert_eq!(series.len(), 5);
        let a: BTreeMap<String, String> = [("service".to_owned(), "a".to_owned())].into();
        assert_eq!(sum(&series, "plexus_calls_total", &a), Some(7.0));
        assert_eq!(
            sum(&series, "plexus_calls_total", &BTreeMap::new()),
            Some(17.0)
        );
        assert_eq!(series[3].labels["k"], "q\"uote");
        assert_eq!(sum(&series, "missing", &BTreeMap::new()), None);
    }

    #[test]
    fn health_components_are_read_from_the_document() {
        let doc = serde_json::json!({"status": "degraded", "components": [
            {"component": "database", "status": "unhealthy", "reason": "x"},
            {"component": "echo-1", "status": "healthy"},
            {"component": "other", "status": "healthy"},
        ]});
        let wanted: BTreeSet<String> = ["database".to_owned(), "echo-1".to_owned()].into();
        let got = health_statuses(&doc, &wanted);
        assert_eq!(got.len(), 2);
        assert_eq!(got["database"], "unhealthy");
        assert_eq!(got["echo-1"], "healthy");
    }
}
