//! The node's metrics, defined in one place: every name, unit, help text and label set.
//!
//! One `prometheus-client` registry per node. Calls are counted and timed on the hot
//! path through handles cached per method ([`MethodMetrics`]); everything else (the
//! bus, the registry, health, breakers) is read from its owner's counters at scrape
//! time by a [`Snapshot`] collector, so the hot paths of those parts carry no metrics
//! code of their own. Names follow the Prometheus conventions: a `plexus_` prefix,
//! base units (`_seconds`), `_total` on counters.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `plexus_calls_total` | counter | service, method, outcome |
//! | `plexus_call_duration_seconds` | histogram | service, method |
//! | `plexus_calls_hedged_total` | counter | service, method |
//! | `plexus_bus_published_total` | counter | |
//! | `plexus_bus_unmatched_total`, `plexus_bus_expired_total`, `plexus_bus_dead_letter_lost_total` | counter | |
//! | `plexus_bus_delivered_total`, `plexus_bus_dropped_total`, `plexus_bus_dead_lettered_total`, `plexus_bus_rejected_total` | counter | subscription |
//! | `plexus_bus_lag` | gauge | subscription |
//! | `plexus_registry_instances` | gauge | status |
//! | `plexus_health_checks_total`, `plexus_health_check_failures_total`, `plexus_health_heal_attempts_total` | counter | component |
//! | `plexus_health_status` | gauge (1 = the component's status) | component, status |
//! | `plexus_breaker_state` | gauge (1 = the breaker's state) | service, instance, state |
//! | `plexus_breaker_calls_total` | counter | service, instance, outcome |
//! | `plexus_breaker_rejected_total` | counter | service, instance |
//!
//! [`Metrics::render`] writes the Prometheus text format (0.0.4) or OpenMetrics.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which exposition format to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an HTTP `Accept` header asks for (Prometheus text unless OpenMetrics
    /// is named).
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }
}

type CallLabels = [(&'static str, String); 3];
type MethodLabels = [(&'static str, String); 2];

/// The node's metrics registry and its hot-path families.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: RwLock<Registry>,
    calls: Family<CallLabels, Counter>,
    durations: Family<MethodLabels, Histogram>,
    hedged: Family<MethodLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn duration_histogram() -> Histogram {
    // 10 µs to about 10 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 11))
}

impl Metrics {
    /// An empty registry with the call families registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let durations = Family::<MethodLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "plexus_calls",
            "Calls through the call path, by service, method and outcome",
            calls.clone(),
        );
        registry.register(
            "plexus_call_duration_seconds",
            "Time from entering the call path to the answer, retries included",
            durations.clone(),
        );
        let hedged = Family::<MethodLabels, Counter>::default();
        registry.register(
            "plexus_calls_hedged",
            "Copies of idempotent calls sent because the first attempt was slow",
            hedged.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: RwLock::new(registry),
                calls,
                durations,
                hedged,
            }),
        }
    }

    /// Handles for one method's counters and histogram, to keep on its route.
    pub fn method(&self, service: &str, method: &str) -> MethodMetrics {
        let labels = [
            ("service", service.to_owned()),
            ("method", method.to_owned()),
        ];
        let duration = self.inner.durations.get_or_create(&labels).clone();
        let hedged = self.inner.hedged.get_or_create(&labels).clone();
        let ok = self
            .inner
            .calls
            .get_or_create(&outcome_labels(service, method, "ok"))
            .clone();
        MethodMetrics {
            service: service.into(),
            method: method.into(),
            ok,
            errors: Arc::new(Mutex::new(Vec::new())),
            duration,
            hedged,
            calls: self.inner.calls.clone(),
        }
    }

    /// Adds a collector read at every scrape.
    pub fn register_collector(&self, collector: impl Collector) {
        self.inner
            .registry
            .write()
            .register_collector(Box::new(collector));
    }

    /// Gives direct access to the registry, for parts that register their own metrics.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.inner.registry.write())
    }

    /// Every metric family registered in the registry, with or without samples, as
    /// `(name, help)` (counters without `_total`), in registration order. The
    /// exposition leaves out a labelled family until its first label set exists, so
    /// a catalogue read from it alone misses those; prometheus-client (0.26) has no
    /// public listing of its descriptors, so they are read from the registry's
    /// `Debug` form (a test below pins that form). Collectors ([`Snapshot`]) are not
    /// included: they always write their descriptors.
    pub fn declared(&self) -> Vec<(String, String)> {
        const NAME: &str = "Descriptor { name: \"";
        const HELP: &str = "\", help: \"";
        const END: &str = "\", unit: ";
        let text = format!("{:?}", *self.inner.registry.read());
        let mut out = Vec::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(NAME) {
            rest = &rest[at + NAME.len()..];
            let Some((name, after)) = rest.split_once(HELP) else {
                break;
            };
            let Some((help, after)) = after.split_once(END) else {
                break;
            };
            let help = help.replace("\\\"", "\"").trim_end_matches('.').to_owned();
            out.push((name.to_owned(), help));
            rest = after;
        }
        out
    }

    /// Renders every metric in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let registry = self.inner.registry.read();
        let written = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        };
        // Writing into a String cannot fail; a collector that fails leaves its part out.
        if written.is_err() {
            tracing::warn!("a metrics collector failed to encode; the exposition is partial");
        }
        out
    }
}

fn outcome_labels(service: &str, method: &str, outcome: &str) -> CallLabels {
    [
        ("service", service.to_owned()),
        ("method", method.to_owned()),
        ("outcome", outcome.to_owned()),
    ]
}

/// One method's call metrics, cached so that recording a call takes no lookup.
#[derive(Clone)]
pub struct MethodMetrics {
    service: Arc<str>,
    method: Arc<str>,
    ok: Counter,
    errors: Arc<Mutex<Vec<(&'static str, Counter)>>>,
    duration: Histogram,
    hedged: Counter,
    calls: Family<CallLabels, Counter>,
}

impl fmt::Debug for MethodMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MethodMetrics({}.{})", self.service, self.method)
    }
}

impl MethodMetrics {
    /// The method's count of hedged calls.
    pub fn hedged(&self) -> Counter {
        self.hedged.clone()
    }

    /// Records one call's outcome (`ok` or a [`CallError::outcome`](crate::CallError::outcome))
    /// and its duration.
    pub fn record(&self, outcome: &'static str, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        if outcome == "ok" {
            self.ok.inc();
            return;
        }
        let mut errors = self.errors.lock();
        if let Some((_, counter)) = errors.iter().find(|(o, _)| *o == outcome) {
            counter.inc();
            return;
        }
        let counter = self
            .calls
            .get_or_create(&outcome_labels(&self.service, &self.method, outcome))
            .clone();
        counter.inc();
        errors.push((outcome, counter));
    }
}

/// One sample of a family read at scrape time: label pairs and a value.
pub type Row = (Vec<(&'static str, String)>, f64);

/// A family of samples read at scrape time.
#[derive(Clone, Debug)]
pub struct SnapshotFamily {
    /// Its name (for counters, without `_total`: the encoder adds it).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: SnapshotKind,
    /// Its samples.
    pub rows: Vec<Row>,
}

/// The type of a [`SnapshotFamily`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A monotonic count.
    Counter,
    /// A value that goes up and down.
    Gauge,
}

impl SnapshotFamily {
    /// A counter family.
    pub fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: SnapshotKind::Counter,
            rows: Vec::new(),
        }
    }

    /// A gauge family.
    pub fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: SnapshotKind::Gauge,
            rows: Vec::new(),
        }
    }

    /// Adds a sample.
    pub fn row(mut self, labels: Vec<(&'static str, String)>, value: impl Into<f64>) -> Self {
        self.rows.push((labels, value.into()));
        self
    }

    /// Adds a sample in place.
    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: impl Into<f64>) {
        self.rows.push((labels, value.into()));
    }
}

/// A collector that calls a function at every scrape for the families to expose.
pub struct Snapshot {
    read: Box<dyn Fn() -> Vec<SnapshotFamily> + Send + Sync>,
}

impl Snapshot {
    /// A collector around `read`.
    pub fn new(read: impl Fn() -> Vec<SnapshotFamily> + Send + Sync + 'static) -> Self {
        Self {
            read: Box::new(read),
        }
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Snapshot")
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        for family in (self.read)() {
            let kind = match family.kind {
                SnapshotKind::Counter => MetricType::Counter,
                SnapshotKind::Gauge => MetricType::Gauge,
            };
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, kind)?;
            for (labels, value) in &family.rows {
                let sample = metric.encode_family(labels)?;
                match family.kind {
                    SnapshotKind::Counter => ConstCounter::new(*value).encode(sample)?,
                    SnapshotKind::Gauge => ConstGauge::new(*value).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// The bus's counters as families (see the table in the module docs).
pub fn bus_families(bus: &plexus_bus::Bus) -> Vec<SnapshotFamily> {
    let stats = bus.stats();
    let mut delivered =
        SnapshotFamily::counter("plexus_bus_delivered", "Events delivered to a subscription");
    let mut dropped = SnapshotFamily::counter(
        "plexus_bus_dropped",
        "Events a subscription dropped (drop-oldest overflow)",
    );
    let mut dead = SnapshotFamily::counter(
        "plexus_bus_dead_lettered",
        "Events a subscription sent to the dead-letter topic",
    );
    let mut rejected = SnapshotFamily::counter(
        "plexus_bus_rejected",
        "Publishes a subscription refused (reject overflow or block timeout)",
    );
    let mut lag = SnapshotFamily::gauge("plexus_bus_lag", "Events queued for a subscription");
    for sub in bus.subscriptions() {
        let name = sub
            .name
            .unwrap_or_else(|| format!("{}#{}", sub.pattern, sub.id));
        let labels = vec![("subscription", name)];
        delivered.push(labels.clone(), sub.stats.delivered as f64);
        dropped.push(labels.clone(), sub.stats.dropped as f64);
        dead.push(labels.clone(), sub.stats.dead_lettered as f64);
        rejected.push(labels.clone(), sub.stats.rejected as f64);
        lag.push(labels, sub.stats.queued as f64);
    }
    vec![
        SnapshotFamily::counter("plexus_bus_published", "Events published on the bus")
            .row(vec![], stats.published as f64),
        SnapshotFamily::counter(
            "plexus_bus_unmatched",
            "Events that matched no subscription",
        )
        .row(vec![], stats.unmatched as f64),
        SnapshotFamily::counter("plexus_bus_expired", "Events that expired before delivery")
            .row(vec![], stats.expired as f64),
        SnapshotFamily::counter(
            "plexus_bus_dead_letter_lost",
            "Dead letters no dead-letter subscriber could take",
        )
        .row(vec![], stats.dead_letter_lost as f64),
        delivered,
        dropped,
        dead,
        rejected,
        lag,
    ]
}

/// The registry's instance counts as a family (see the table in the module docs).
pub fn registry_families(registry: &plexus_registry::Registry) -> Vec<SnapshotFamily> {
    let mut family = SnapshotFamily::gauge(
        "plexus_registry_instances",
        "Registered instances by status",
    );
    for (status, n) in registry.counts() {
        family.push(vec![("status", status.as_str().to_owned())], n as f64);
    }
    vec![family]
}

/// The states a breaker can be in, as the `state` label of `plexus_breaker_state`.
const BREAKER_STATES: [&str; 6] = [
    "closed",
    "open",
    "half_open",
    "forced_open",
    "disabled",
    "metrics_only",
];

/// One instance breaker as its metrics show it: its state, if it is live, and its
/// counts for the life of the process (those of breakers a policy change replaced
/// included, so the counters never go down).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BreakerCounts {
    /// The state of the live breaker (`closed`, `open`, …); `None` when it was
    /// replaced and not rebuilt yet.
    pub state: Option<&'static str>,
    /// Successful calls.
    pub success: u64,
    /// Failed calls.
    pub failure: u64,
    /// Calls whose error the classifier ignored.
    pub ignored: u64,
    /// Calls refused while it was open.
    pub rejected: u64,
}

impl BreakerCounts {
    /// A live breaker's counts.
    pub fn of(breaker: &plexus_resilience::CircuitBreaker) -> Self {
        let m = breaker.metrics();
        Self {
            state: Some(m.state.as_str()),
            success: m.successful_calls_total,
            failure: m.failed_calls_total,
            ignored: m.ignored_calls_total,
            rejected: m.rejected_calls_total,
        }
    }

    /// Adds `other`'s counts to these (the state stays).
    pub fn add(&mut self, other: &BreakerCounts) {
        self.success += other.success;
        self.failure += other.failure;
        self.ignored += other.ignored;
        self.rejected += other.rejected;
    }
}

/// Each instance breaker's state and counts as families (see the table in the
/// module docs), from `(service, instance, counts)` rows.
pub fn breaker_families(
    breakers: impl IntoIterator<Item = (String, String, BreakerCounts)>,
) -> Vec<SnapshotFamily> {
    let mut state = SnapshotFamily::gauge(
        "plexus_breaker_state",
        "Each instance breaker's state (1 for the state it is in)",
    );
    let mut calls = SnapshotFamily::counter(
        "plexus_breaker_calls",
        "Calls recorded by each instance breaker, by outcome",
    );
    let mut rejected = SnapshotFamily::counter(
        "plexus_breaker_rejected",
        "Calls an instance breaker refused",
    );
    for (service, instance, counts) in breakers {
        let labels = |extra: Option<(&'static str, &str)>| {
            let mut l = vec![("service", service.clone()), ("instance", instance.clone())];
            if let Some((k, v)) = extra {
                l.push((k, v.to_owned()));
            }
            l
        };
        if let Some(current) = counts.state {
            for s in BREAKER_STATES {
                let on = if current == s { 1.0 } else { 0.0 };
                state.push(labels(Some(("state", s))), on);
            }
        }
        for (outcome, n) in [
            ("success", counts.success),
            ("failure", counts.failure),
            ("ignored", counts.ignored),
        ] {
            calls.push(labels(Some(("outcome", outcome))), n as f64);
        }
        rejected.push(labels(None), counts.rejected as f64);
    }
    vec![state, calls, rejected]
}

/// Each health component's checks, failures, heals and status as families (see the
/// table in the module docs).
pub fn health_families(health: &plexus_registry::health::HealthMonitor) -> Vec<SnapshotFamily> {
    use plexus_registry::health::ComponentStatus;
    let mut checks =
        SnapshotFamily::counter("plexus_health_checks", "Health checks run, per component");
    let mut failures = SnapshotFamily::counter(
        "plexus_health_check_failures",
        "Health checks that errored or timed out, per component",
    );
    let mut heals = SnapshotFamily::counter(
        "plexus_health_heal_attempts",
        "Heal actions run, per component",
    );
    let mut status = SnapshotFamily::gauge(
        "plexus_health_status",
        "Each component's health status (1 for the status it is in)",
    );
    let mut recoveries = SnapshotFamily::counter(
        "plexus_health_recoveries",
        "Recoveries from unhealthy, per component and cause: healed (a heal that \
         reported success, then a check that passed) or check_passed (no heal helped)",
    );
    for c in health.components() {
        let l = vec![("component", c.component.clone())];
        checks.push(l.clone(), c.checks as f64);
        failures.push(l.clone(), c.check_failures as f64);
        heals.push(l.clone(), c.heal_attempts as f64);
        for (cause, n) in [
            ("healed", c.recoveries_healed),
            ("check_passed", c.recoveries_unaided),
        ] {
            let mut lc = l.clone();
            lc.push(("cause", cause.to_owned()));
            recoveries.push(lc, n as f64);
        }
        for s in [
            ComponentStatus::Unknown,
            ComponentStatus::Healthy,
            ComponentStatus::Degraded,
            ComponentStatus::Unhealthy,
        ] {
            let mut ls = l.clone();
            ls.push(("status", s.as_str().to_owned()));
            status.push(ls, if c.status == s { 1.0 } else { 0.0 });
        }
    }
    vec![checks, failures, heals, status, recoveries]
}

/// Reads one value back from a rendered exposition: the sample `name` whose labels
/// include every pair in `labels`. For tests and for the CLI.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                series_labels
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            if !all {
                return None;
            }
            value.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_render_in_both_formats_and_read_back() {
        let metrics = Metrics::new();
        let echo = metrics.method("echo", "say");
        echo.record("ok", Duration::from_micros(50));
        echo.record("ok", Duration::from_micros(70));
        echo.record("timeout", Duration::from_secs(1));
        let text = metrics.render(Format::Prometheus);
        assert!(text.contains("# TYPE plexus_calls_total counter"), "{text}");
        let ok = [("service", "echo"), ("method", "say"), ("outcome", "ok")];
        assert_eq!(sample(&text, "plexus_calls_total", &ok), Some(2.0));
        assert_eq!(
            sample(&text, "plexus_calls_total", &[("outcome", "timeout")]),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "plexus_call_duration_seconds_count",
                &[("method", "say")]
            ),
            Some(3.0)
        );
        let open = metrics.render(Format::OpenMetrics);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert_eq!(sample(&open, "plexus_calls_total", &ok), Some(2.0));
    }

    #[test]
    fn declared_lists_families_without_samples() {
        let metrics = Metrics::new();
        let empty = Family::<[(&'static str, String); 1], Counter>::default();
        metrics.with_registry(|r| r.register("plexus_test_refused", "Refused \"x\" calls", empty));
        let text = metrics.render(Format::Prometheus);
        assert!(!text.contains("plexus_test_refused"), "{text}");
        let declared = metrics.declared();
        let names: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "plexus_calls",
                "plexus_call_duration_seconds",
                "plexus_calls_hedged",
                "plexus_test_refused"
            ]
        );
        assert_eq!(declared[3].1, "Refused \"x\" calls");
    }

    #[test]
    fn snapshot_families_are_read_at_scrape_time() {
        let metrics = Metrics::new();
        let n = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let read = n.clone();
        metrics.register_collector(Snapshot::new(move || {
            vec![
                SnapshotFamily::gauge("plexus_registry_instances", "Instances by status").row(
                    vec![("status", "healthy".to_owned())],
                    read.load(std::sync::atomic::Ordering::Relaxed) as f64,
                ),
            ]
        }));
        let first = metrics.render(Format::Prometheus);
        assert_eq!(
            sample(
                &first,
                "plexus_registry_instances",
                &[("status", "healthy")]
            ),
            Some(1.0)
        );
        n.store(5, std::sync::atomic::Ordering::Relaxed);
        let second = metrics.render(Format::Prometheus);
        assert_eq!(
            sample(
                &second,
                "plexus_registry_instances",
                &[("status", "healthy")]
            ),
            Some(5.0)
        );
    }
}

/// The label set `{reason="…"}` the families count refusals and drops by.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why (`key_too_large`, `overflow`, …).
    pub reason: &'static str,
}

/// The label set `{kind="…"}` the families count backend errors by.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct KindLabel {
    /// What kind (`unavailable`, `backend`, …).
    pub kind: &'static str,
}
