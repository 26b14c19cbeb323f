//! [`ClusterLink`]: what makes a node one of several that are one system.
//!
//! A node with a link keeps its registry in the backend every node shares (so it
//! sees their instances and they see its own), reaches instances it does not hold
//! through the link's transports, and makes each instance it holds reachable from
//! the others. The call path does not change: a remote instance is one more
//! transport behind the same balancer, breakers and retries. `plexus-cluster`
//! implements it on NATS; a node without a link is exactly as it was.

use std::sync::Arc;

use plexus_core::{
    CallContext, CallResult, HealthReport, InstanceId, Service, ServiceDescriptor, ServiceError,
};
use plexus_registry::{Registration, Registry, RegistryBackend};
use serde_json::Value;

use crate::Transport;

/// A node's way to the other nodes of its cluster.
pub trait ClusterLink: Send + Sync + 'static {
    /// This node's name in the cluster (its instances carry it as metadata
    /// `plexus.node`).
    fn node(&self) -> &str;

    /// The registry backend every node shares.
    fn registry_backend(&self) -> Arc<dyn RegistryBackend>;

    /// Keeps `registry` up to date with the other nodes' changes, for as long as
    /// the node runs.
    fn follow(&self, registry: Registry);

    /// A transport to the instance `registration` names, held by another node.
    /// The same transport for the same instance each time (its breaker is kept
    /// while its transport stays the same).
    fn remote(&self, registration: &Registration) -> Option<Transport>;

    /// Makes `instance`, held here, reachable from the other nodes through
    /// `transport`.
    fn serve(&self, instance: &InstanceId, transport: Transport);

    /// Stops serving `instance` to the other nodes.
    fn unserve(&self, instance: &InstanceId);
}

/// The metadata key naming the node an instance runs on.
pub const NODE_METADATA: &str = "plexus.node";

/// The tag of services that answer for their own node only (`node`, `plexus`):
/// never served to, nor reached from, other nodes.
pub const LOCAL_TAG: &str = "system";

/// The link as the node holds it.
pub(crate) type Link = Option<Arc<dyn ClusterLink>>;

/// A service of this node as the cluster sees it: its instance id qualified with
/// the node's name (`cache-1@a`), so that every node can run the same families
/// without their instances colliding in the shared registry, and its node named
/// in its metadata ([`NODE_METADATA`]).
pub(crate) struct Placed {
    inner: Arc<dyn Service>,
    descriptor: ServiceDescriptor,
}

impl Placed {
    /// `service` placed on `node` (unchanged if its id already names the node).
    pub(crate) fn wrap(service: Arc<dyn Service>, node: &str) -> Arc<dyn Service> {
        let mut descriptor = service.descriptor();
        let suffix = format!("@{node}");
        if !descriptor.instance.as_str().ends_with(&suffix) {
            descriptor.instance = InstanceId::new(format!("{}{suffix}", descriptor.instance));
        }
        descriptor
            .metadata
            .insert(NODE_METADATA.to_owned(), node.to_owned());
        Arc::new(Self {
            inner: service,
            descriptor,
        })
    }
}

#[plexus_core::async_trait]
impl Service for Placed {
    fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor.clone()
    }

    async fn start(&self) -> Result<(), ServiceError> {
        self.inner.start().await
    }

    async fn stop(&self) -> Result<(), ServiceError> {
        self.inner.stop().await
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        self.inner.call(method, params, ctx).await
    }

    async fn health(&self) -> Result<HealthReport, ServiceError> {
        self.inner.health().await
    }
}
