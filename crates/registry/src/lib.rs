//! Who is running, whether it works, and what is done when it does not.
//!
//! - **Registry** ([`Registry`]): instances register a [`plexus_core::ServiceDescriptor`]
//!   and are discovered by name, type, method (capability), tag and status
//!   ([`Query`]). Each has a lifecycle status, sends heartbeats, is marked stale
//!   when they stop for longer than [`RegistryConfig::heartbeat_ttl`] and is
//!   deregistered after the grace period. Every change is a [`RegistryChange`],
//!   sent to watchers ([`Registry::watch`]) and published on the bus under
//!   `plexus.registry.>`. The call path reads [`Registry::routable`] on every call:
//!   a shared slice from an immutable snapshot, without a lock.
//! - **Storage** behind [`RegistryBackend`], with [`MemoryBackend`] in process; the
//!   `test-util` feature adds `conformance`, the suite every backend must pass.
//! - **Health and healing** ([`health`]): checks with interval, timeout and
//!   thresholds; check failures told apart from components that report themselves
//!   unhealthy; heal actions with backoff and a record of every attempt; system
//!   health aggregation.
//!
//! Time is read through tokio's clock everywhere, so TTLs, intervals and backoff
//! run under paused time in tests.
//!
//! ## Feature flags
//! - `test-util`: the backend conformance suite, module `conformance`, and the
//!   `backend_conformance!` macro that runs it as `#[tokio::test]`s.

mod backend;
mod change;
mod clock;
mod config;
mod error;
mod memory;
mod query;
mod registration;
mod registry;

#[cfg(feature = "test-util")]
pub mod conformance;
pub mod health;

pub use backend::RegistryBackend;
pub use change::{
    DeregisterReason, INSTANCE_HEADER, Lagged, RegistryChange, TOPIC_DEREGISTERED,
    TOPIC_REGISTERED, TOPIC_STALE, TOPIC_STATUS, Watch,
};
pub use config::RegistryConfig;
pub use error::RegistryError;
pub use memory::MemoryBackend;
pub use query::Query;
pub use registration::{Registration, STALE_REASON, StaleMark, StatusUpdate, Updated};
pub use registry::{
    HEARTBEAT_RESUMED_REASON, Registry, RegistrySnapshot, RegistryStats, SweepReport,
};
