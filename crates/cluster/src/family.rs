//! [`ClusterFamily`]: `[cluster]` entering the node through the family door. With a
//! `nats_url` it connects, opens the registry bucket, and hands the node a
//! [`NatsLink`] (the node then shares its registry and reaches other nodes'
//! instances) and the `nats` health component. Without one it brings nothing.

use std::sync::Arc;
use std::time::Duration;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};
use plexus_registry::health::{CheckError, ComponentKind, ComponentSpec, check_fn};

use crate::config::{ClusterConfig, SECTION};
use crate::{KvRegistry, KvRegistryConfig, LinkConfig, NatsLink};

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
        let metrics = link.metrics().clone();
        Ok(Parts::default()
            .cluster(Arc::new(link))
            .component(nats_component(client))
            .metrics(move |node| {
                node.metrics()
                    .with_registry(|registry| metrics.register(registry));
            }))
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
