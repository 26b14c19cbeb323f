//! Plexus across machines on NATS JetStream.
//!
//! Several `plexus serve` nodes pointed at one NATS server are one system; Plexus
//! builds no consensus, gossip or replication of its own, it uses JetStream's.
//! This crate holds the parts that need NATS:
//!
//! - [`KvRegistry`]: the registry's [`RegistryBackend`](plexus_registry::RegistryBackend)
//!   in a JetStream KV bucket, one key per instance, every write a compare-and-set
//!   on the key's revision. It passes the same conformance suite as the in-memory
//!   backend. [`KvRegistry::follow`] keeps a node's registry up to date with what
//!   other nodes write, so their instances appear in its snapshot and watches.
//! - [`NatsLink`]: a node's [`ClusterLink`](plexus_node::ClusterLink): the shared
//!   registry, and calls across nodes by NATS request/reply, one subject per
//!   instance, behind the caller's own balancer, breakers and retries.
//! - [`DurableStream`]: durable topics as a JetStream stream. The store's outbox
//!   relay publishes into it with `Nats-Msg-Id` = the envelope id (JetStream drops
//!   a relay's retry), and [`DurableConsumer`]s put its events on each node's bus,
//!   acknowledging each only once the node handled it.

pub mod config;
mod durable;
mod error;
mod family;
mod kv;
mod metrics;
mod remote;

pub use config::ClusterConfig;
pub use durable::{
    ConsumerConfig, ConsumerStats, DurableConfig, DurableConsumer, DurableStream, ReplayStart,
};
pub use error::ClusterError;
pub use family::ClusterFamily;
pub use kv::{KvRegistry, KvRegistryConfig, instance_key, instance_of_key};
pub use metrics::ClusterMetrics;
pub use remote::{LinkConfig, NatsLink, RemoteInstance};
