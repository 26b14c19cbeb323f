//! The cluster's metrics, defined once here with their Prometheus names.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `plexus_cluster_remote_calls_total` | counter | `outcome`: `ok`, `error`, `unavailable`, `timeout` |
//! | `plexus_cluster_served_calls_total` | counter | `outcome`: `ok`, `error`, `refused`, `malformed` |
//! | `plexus_cluster_served_instances` | gauge | |
//! | `plexus_cluster_durable_events_total` | counter | `event`: `acknowledged`, `redelivered`, `refused`, `malformed`, `unmatched`, `unhandled` |
//! | `plexus_cluster_durable_handling` | gauge | |
//! | `plexus_cluster_durable_lag` | gauge | |
//!
//! Remote calls are the attempts this node sent to instances on other nodes;
//! served calls are those other nodes sent to this node's instances. `error` is a
//! typed error the service answered; `unavailable` that no node answered on the
//! instance's subject (it stopped) or the connection failed; `refused` a call past
//! `max_inflight`; `malformed` a request that was not a cluster call.
//!
//! The durable counters are this node's durable consumer's: events its
//! subscribers handled (and JetStream was told), events that came more than once, events its bus
//! refused (they come again), messages that were not envelopes, and events no
//! subscription matched that wait for one (`durable_require_subscriber`), and
//! events its subscribers were not done with within `durable_ack_wait_ms` (they
//! come again). `handling` is the events on the bus now, not yet handled. The lag is the
//! number of events in the stream still to reach this node, as JetStream reported
//! with the last one delivered.

use std::sync::Arc;

use plexus_core::ServiceError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The cluster's counters. Cheap to clone; clones share them.
#[derive(Clone, Debug, Default)]
pub struct ClusterMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    remote: Family<OutcomeLabel, Counter>,
    served: Family<OutcomeLabel, Counter>,
    instances: Gauge,
    durable: Family<EventLabel, Counter>,
    lag: Gauge,
    handling: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

impl ClusterMetrics {
    /// New counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds them to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "plexus_cluster_remote_calls",
            "Call attempts this node sent to instances on other nodes, by outcome",
            self.inner.remote.clone(),
        );
        registry.register(
            "plexus_cluster_served_calls",
            "Calls other nodes sent to this node's instances, by outcome",
            self.inner.served.clone(),
        );
        registry.register(
            "plexus_cluster_served_instances",
            "Instances this node serves to the other nodes",
            self.inner.instances.clone(),
        );
        registry.register(
            "plexus_cluster_durable_events",
            "Durable events this node's consumer handled, by what happened",
            self.inner.durable.clone(),
        );
        registry.register(
            "plexus_cluster_durable_lag",
            "Durable events in the stream still to reach this node",
            self.inner.lag.clone(),
        );
        registry.register(
            "plexus_cluster_durable_handling",
            "Durable events on this node's bus whose subscribers are not done with them yet",
            self.inner.handling.clone(),
        );
    }

    /// Follows a durable consumer's stats until it stops.
    pub(crate) async fn follow_consumer(
        &self,
        mut stats: tokio::sync::watch::Receiver<crate::ConsumerStats>,
    ) {
        let mut seen = crate::ConsumerStats::default();
        loop {
            let now = *stats.borrow_and_update();
            let inner = &self.inner;
            for (event, before, after) in [
                ("acknowledged", seen.acknowledged, now.acknowledged),
                ("redelivered", seen.redelivered, now.redelivered),
                ("refused", seen.refused, now.refused),
                ("malformed", seen.malformed, now.malformed),
                ("unmatched", seen.unmatched, now.unmatched),
                ("unhandled", seen.unhandled, now.unhandled),
            ] {
                inner
                    .durable
                    .get_or_create(&EventLabel { event })
                    .inc_by(after.saturating_sub(before));
            }
            inner
                .lag
                .set(i64::try_from(now.pending).unwrap_or(i64::MAX));
            inner
                .handling
                .set(i64::try_from(now.handling).unwrap_or(i64::MAX));
            seen = now;
            if stats.changed().await.is_err() {
                return;
            }
        }
    }

    /// A remote attempt ended with `result`.
    pub(crate) fn remote<T>(&self, result: &Result<T, ServiceError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(ServiceError::Timeout) => "timeout",
            Err(ServiceError::Unavailable { .. }) => "unavailable",
            Err(_) => "error",
        };
        self.inner
            .remote
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// A served call ended with `outcome` (`ok`, `error`, `refused`, `malformed`).
    pub(crate) fn served(&self, outcome: &'static str) {
        self.inner
            .served
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// This node now serves `n` instances.
    pub(crate) fn instances(&self, n: usize) {
        self.inner
            .instances
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// (remote ok, remote failed, served ok, served failed), for tests.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let count = |family: &Family<OutcomeLabel, Counter>, outcome| {
            family.get_or_create(&OutcomeLabel { outcome }).get()
        };
        let r = &self.inner.remote;
        let s = &self.inner.served;
        (
            count(r, "ok"),
            count(r, "error") + count(r, "unavailable") + count(r, "timeout"),
            count(s, "ok"),
            count(s, "error") + count(s, "refused") + count(s, "malformed"),
        )
    }
}
