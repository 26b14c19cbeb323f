//! Changes to the registry: what watchers receive and what is published on the bus.

use futures::stream::BoxStream;
use plexus_core::{InstanceId, ServiceName, ServiceStatus, Timestamp, Topic};
use serde::{Deserialize, Serialize};

use crate::Registration;

/// Topic of [`RegistryChange::Registered`].
pub const TOPIC_REGISTERED: Topic = Topic::from_static("plexus.registry.registered");
/// Topic of [`RegistryChange::Deregistered`].
pub const TOPIC_DEREGISTERED: Topic = Topic::from_static("plexus.registry.deregistered");
/// Topic of [`RegistryChange::StatusChanged`].
pub const TOPIC_STATUS: Topic = Topic::from_static("plexus.registry.status");
/// Topic of [`RegistryChange::Stale`].
pub const TOPIC_STALE: Topic = Topic::from_static("plexus.registry.stale");
/// Header set on every registry event: the instance it is about.
pub const INSTANCE_HEADER: &str = "plexus-instance";

/// One change to the registry.
///
/// Published on the bus (topics `plexus.registry.*`, a typed payload that encodes to
/// JSON tagged by `"change"`) and sent to every watcher, in the order the changes
/// were made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum RegistryChange {
    /// An instance registered, or registered again (`replaced`).
    Registered {
        /// The registration as stored.
        registration: Registration,
        /// Whether it replaced an earlier registration of the same instance.
        replaced: bool,
    },
    /// An instance left the registry.
    Deregistered {
        /// The instance.
        instance: InstanceId,
        /// Its service.
        service: ServiceName,
        /// Why.
        reason: DeregisterReason,
        /// When.
        at: Timestamp,
    },
    /// An instance's status changed.
    StatusChanged {
        /// The instance.
        instance: InstanceId,
        /// Its service.
        service: ServiceName,
        /// The status before.
        from: ServiceStatus,
        /// The status now.
        to: ServiceStatus,
        /// Why, if someone said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// An instance's heartbeats stopped for longer than the TTL. A
    /// [`StatusChanged`](Self::StatusChanged) to `Unhealthy` follows at once.
    Stale {
        /// The instance.
        instance: InstanceId,
        /// Its service.
        service: ServiceName,
        /// Its last heartbeat.
        last_heartbeat: Timestamp,
        /// When it was found stale.
        at: Timestamp,
    },
}

impl RegistryChange {
    /// The instance the change is about.
    pub fn instance(&self) -> &InstanceId {
        match self {
            Self::Registered { registration, .. } => registration.instance(),
            Self::Deregistered { instance, .. }
            | Self::StatusChanged { instance, .. }
            | Self::Stale { instance, .. } => instance,
        }
    }

    /// The bus topic it is published on.
    pub fn topic(&self) -> Topic {
        match self {
            Self::Registered { .. } => TOPIC_REGISTERED,
            Self::Deregistered { .. } => TOPIC_DEREGISTERED,
            Self::StatusChanged { .. } => TOPIC_STATUS,
            Self::Stale { .. } => TOPIC_STALE,
        }
    }
}

/// Why an instance was deregistered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeregisterReason {
    /// Someone asked ([`crate::Registry::deregister`]).
    Requested,
    /// It stayed silent past the TTL and the grace period.
    Stale,
    /// Another node removed it from the registry they share (a cluster).
    Elsewhere,
}

/// A watcher fell behind by more than [`crate::RegistryConfig::watch_capacity`]
/// changes and missed the oldest ones. The stream goes on with the oldest change
/// still kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("registry watcher lagged and missed {missed} changes")]
pub struct Lagged {
    /// How many changes it missed.
    pub missed: u64,
}

/// The stream [`crate::Registry::watch`] returns: every change from the moment of the
/// call, or [`Lagged`] where a slow watcher missed some. It ends when the registry is
/// dropped.
pub type Watch = BoxStream<'static, Result<RegistryChange, Lagged>>;
