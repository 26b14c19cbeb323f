//! [`ClusterFamily`]: `[cluster]` entering the node through the family door. With a
//! `nats_url` it connects, opens the registry bucket, and hands the node a
//! [`NatsLink`] (the node then shares its registry and reaches other nodes'
//! instances) and the `nats` health component. With `durable_topics` too, it opens
//! the JetStream stream, points the node's outbox relay at it and starts the
//! node's durable consumer. Without a URL it brings nothing.

use std::sync::Arc;
use std::time::Duration;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};
use plexus_registry::health::{CheckError, ComponentKind, ComponentSpec, check_fn};

use plexus_core::ServiceError;
use plexus_node::durable::{DurableReplay, DurableSink, Handoff, ReplayFrom};
use plexus_store::{Delivery, RelaySink};

use crate::config::{ClusterConfig, SECTION};
use crate::{
    ConsumerConfig, DurableConfig, DurableStream, KvRegistry, KvRegistryConfig, LinkConfig,
    NatsLink,
};

/// The Cluster family.
#[derive(Clone, Debug, Default)]
pub struct ClusterFamily;

#[plexus_core::async_trait]
impl SectionFamily for ClusterFamily {
    type Config = ClusterConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: ClusterConfig,
        node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        let Some(url) = settings.nats_url.clone() else {
            return Ok(Parts::default());
        };
        let client = async_nats::ConnectOptions::new()
            .name(format!("plexus node {}", node.name))
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str())
            .await
            .map_err(|e| {
                FamilyError::open(
                    SECTION,
                    crate::ClusterError::Connect {
                        url: url.clone(),
                        message: e.to_string(),
                    },
                )
            })?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let registry = KvRegistry::open(
            &jetstream,
            &KvRegistryConfig {
                bucket: settings.registry_bucket.clone(),
                ttl: (settings.registry_ttl_ms > 0)
                    .then(|| Duration::from_millis(settings.registry_ttl_ms)),
                replicas: 1,
            },
        )
        .await
        .map_err(|e| FamilyError::open(SECTION, e))?;
        let link = NatsLink::new(
            client.clone(),
            registry,
            LinkConfig {
                node: node.name.clone(),
                call_prefix: settings.call_prefix.clone(),
                max_inflight: settings.max_inflight,
                default_timeout: Duration::from_millis(settings.default_timeout_ms),
            },
        );
        tracing::info!(nats = %url, node = %node.name, "joined the cluster");
        let durable = if settings.durable_topics.is_empty() {
            None
        } else {
            let config = DurableConfig {
                stream: settings.durable_stream.clone(),
                subject_prefix: settings.durable_subject_prefix.clone(),
                topics: settings.durable_topics.clone(),
                duplicate_window: Duration::from_millis(settings.durable_duplicate_window_ms),
                ..DurableConfig::default()
            };
            let stream = DurableStream::open(&jetstream, &config)
                .await
                .map_err(|e| FamilyError::open(SECTION, e))?;
            let mut consumer = ConsumerConfig::named(consumer_name(&node.name));
            consumer.ack_wait = Duration::from_millis(settings.durable_ack_wait_ms);
            consumer.require_subscriber = settings.durable_require_subscriber;
            consumer.max_unacknowledged = settings.durable_max_unacknowledged;
            Some((stream, consumer))
        };
        let metrics = link.metrics().clone();
        Ok(Parts::default()
            .cluster(Arc::new(link))
            .component(nats_component(client))
            .metrics(move |node| {
                node.metrics()
                    .with_registry(|registry| metrics.register(registry));
                if let Some((stream, consumer)) = durable {
                    durable_across_nodes(node, stream, consumer, metrics);
                }
            }))
    }
}

/// A durable consumer's name for node `node`: its own, so every node gets every
/// event (JetStream allows letters, digits, `-` and `_`).
fn consumer_name(node: &str) -> String {
    let name: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("plexus_node_{name}")
}

/// Durable topics across nodes: the node's outbox relay feeds `stream`, and a
/// durable consumer named for the node puts the stream's events on its bus.
fn durable_across_nodes(
    node: &plexus_node::Node,
    stream: DurableStream,
    consumer: ConsumerConfig,
    metrics: crate::ClusterMetrics,
) {
    let Some(log) = node.durable() else {
        tracing::error!(
            "[cluster] durable_topics needs the same patterns in [store] durable_topics: \
             nothing feeds the stream from this node"
        );
        return;
    };
    let sink = Arc::new(StreamSink(stream.clone()));
    log.relay_through(sink.clone());
    log.replay_from(sink);
    let bus = node.bus().clone();
    // A subscription nothing publishes to ends when the bus shuts down: the
    // consumer stops with the node (unacknowledged events come again elsewhere).
    let until_closed = bus.subscribe(
        "plexus.cluster.durable.stop",
        plexus_bus::SubscribeOptions::new().capacity(1),
    );
    tokio::spawn(async move {
        let running = match stream.consume(bus, consumer).await {
            Ok(running) => running,
            Err(error) => {
                tracing::error!(%error, "the durable consumer did not start");
                return;
            }
        };
        let follow = metrics.follow_consumer(running.watch());
        let closed = async {
            if let Ok(mut closed) = until_closed {
                while closed.recv().await.is_some() {}
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = follow => {}
            () = closed => {}
        }
        drop(running);
    });
}

/// The stream as the node's [`DurableSink`].
struct StreamSink(DurableStream);

#[plexus_core::async_trait]
impl DurableSink for StreamSink {
    async fn deliver(&self, envelope: plexus_core::Envelope) -> Handoff {
        match RelaySink::deliver(&self.0, envelope, false).await {
            Delivery::Acknowledged { .. } => Handoff::Taken,
            Delivery::Refused(reason) => Handoff::Later(reason),
            Delivery::Never(reason) => Handoff::Never(reason),
            Delivery::Closed => Handoff::Later("the stream is closing".to_owned()),
        }
    }
}

#[plexus_core::async_trait]
impl DurableReplay for StreamSink {
    async fn replay(
        &self,
        pattern: &str,
        from: ReplayFrom,
        limit: u32,
    ) -> Result<serde_json::Value, ServiceError> {
        const MAX_LIMIT: u32 = 10_000;
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ServiceError::invalid_params(
                "/limit",
                format!("is {limit}; must be 1 to {MAX_LIMIT}"),
            ));
        }
        let pattern = plexus_core::TopicPattern::new(pattern)
            .map_err(|e| ServiceError::invalid_params("/pattern", e.to_string()))?;
        let from = match from {
            ReplayFrom::Offset(n) => crate::ReplayStart::Sequence(n),
            ReplayFrom::Time(t) => crate::ReplayStart::Time(t),
        };
        self.0
            .replay(&pattern, from, limit as usize)
            .await
            .map_err(|e| ServiceError::unavailable(e.to_string()))
    }
}

/// The health component of the cluster's NATS connection.
fn nats_component(client: async_nats::Client) -> ComponentSpec {
    ComponentSpec::new(
        "cluster",
        ComponentKind::Dependency,
        check_fn(move || {
            let client = client.clone();
            async move {
                match client.connection_state() {
                    async_nats::connection::State::Connected => {
                        Ok(plexus_core::HealthReport::healthy())
                    }
                    state => Err(CheckError::new(format!(
                        "NATS connection {state}; the client is reconnecting (is nats-server running?)"
                    ))),
                }
            }
        }),
    )
}
