//! Change events: what the store publishes on the bus under `plexus.config.>` (as
//! typed payloads in process, JSON when they leave it) and on its local stream.

use plexus_core::{Event, Topic};
use serde::{Deserialize, Serialize};

/// A new version took effect (`plexus.config.changed`). A rollback publishes this
/// too, then [`ConfigRolledBack`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChanged {
    /// The new version.
    pub version: u64,
    /// Who made it.
    pub author: String,
    /// Why.
    pub reason: String,
    /// The dotted paths that changed, sorted.
    pub paths: Vec<String>,
}

impl Event for ConfigChanged {
    const TOPIC: Topic = Topic::from_static("plexus.config.changed");
}

/// A change was refused and the version in force stays (`plexus.config.rejected`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRejected {
    /// The dotted path of the field at fault, when the refusal is about one.
    pub field: Option<String>,
    /// Why, in full.
    pub reason: String,
    /// Who asked for the change.
    pub author: String,
}

impl Event for ConfigRejected {
    const TOPIC: Topic = Topic::from_static("plexus.config.rejected");
}

/// A rollback took effect (`plexus.config.rolled_back`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRolledBack {
    /// The version whose content was restored.
    pub to: u64,
    /// The new version that holds it.
    pub version: u64,
    /// Who asked for it.
    pub author: String,
}

impl Event for ConfigRolledBack {
    const TOPIC: Topic = Topic::from_static("plexus.config.rolled_back");
}

/// Any of the store's events, as the local stream carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ConfigEvent {
    /// A new version took effect.
    Changed(ConfigChanged),
    /// A change was refused.
    Rejected(ConfigRejected),
    /// A rollback took effect.
    RolledBack(ConfigRolledBack),
}
