//! What the registry holds about one instance: its descriptor and where it stands.

use std::sync::Arc;

use plexus_core::{InstanceId, ServiceDescriptor, ServiceName, ServiceStatus, Timestamp};
use serde::{Deserialize, Serialize};

/// The reason recorded when the sweeper marks an instance whose heartbeats stopped.
pub const STALE_REASON: &str = "stale";

/// One registered instance.
///
/// Cheap to clone: the descriptor is shared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// What the instance declared when it registered.
    pub descriptor: Arc<ServiceDescriptor>,
    /// Where it is in its life.
    pub status: ServiceStatus,
    /// Why it has that status, when someone said (`"stale"` for a silent instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it (last) registered.
    pub registered_at: Timestamp,
    /// When its status last changed.
    pub status_since: Timestamp,
    /// When it last sent a heartbeat (registering counts as one).
    pub last_heartbeat: Timestamp,
    /// Set while it is marked stale: its heartbeats stopped for longer than the TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<StaleMark>,
}

impl Registration {
    /// A fresh registration of `descriptor` at `at`, status [`ServiceStatus::Starting`].
    pub fn new(descriptor: impl Into<Arc<ServiceDescriptor>>, at: Timestamp) -> Self {
        Self {
            descriptor: descriptor.into(),
            status: ServiceStatus::Starting,
            reason: None,
            registered_at: at,
            status_since: at,
            last_heartbeat: at,
            stale: None,
        }
    }

    /// The instance id.
    pub fn instance(&self) -> &InstanceId {
        &self.descriptor.instance
    }

    /// The service it is an instance of.
    pub fn service(&self) -> &ServiceName {
        &self.descriptor.name
    }

    /// Whether the call path may route calls to it now.
    pub fn accepts_calls(&self) -> bool {
        self.status.accepts_calls()
    }
}

/// How an instance came to be marked stale, so a heartbeat can undo it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleMark {
    /// When the sweeper marked it.
    pub since: Timestamp,
    /// Its status before; a heartbeat that arrives in the grace period restores it.
    pub previous: ServiceStatus,
}

/// A change of status, as a backend applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The new status.
    pub status: ServiceStatus,
    /// Why, if known.
    pub reason: Option<String>,
    /// When.
    pub at: Timestamp,
    /// The stale mark to record (`None` clears it).
    pub stale: Option<StaleMark>,
}

/// A status change a backend applied: the status before and the registration after.
#[derive(Clone, Debug, PartialEq)]
pub struct Updated {
    /// The status before the update.
    pub previous: ServiceStatus,
    /// The registration after it.
    pub registration: Registration,
}
