//! Versioned history: what each version held, who made it and why, and the
//! [`HistoryStore`] trait a persistent backend implements.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use plexus_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::HistoryError;

/// One version of the configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// Its number: 1 for the first, one more for each change.
    pub version: u64,
    /// When it was made (wall clock).
    pub at: Timestamp,
    /// Who made it (`startup`, `file:/etc/plexus/node.toml`, an operator's name…).
    pub author: String,
    /// Why.
    pub reason: String,
    /// The dotted paths whose values differ from the version before, sorted.
    pub changed: Vec<String>,
    /// The version whose content this one restored, for a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
    /// The whole document of this version.
    pub document: Arc<Value>,
}

/// Where versions are recorded so they outlive the process.
///
/// The store appends each version before it takes effect (a failed append refuses
/// the change) and loads the history once when it is built: the newest version
/// loaded becomes the version in force. An implementation may keep more versions
/// than [`crate::ConfigOptions::max_history`]; the store reads the newest of them.
#[async_trait::async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// Records one version. Versions arrive in increasing order.
    async fn append(&self, version: &ConfigVersion) -> Result<(), HistoryError>;
    /// Every version kept, oldest first.
    async fn load(&self) -> Result<Vec<ConfigVersion>, HistoryError>;
}

/// The default history: the newest `capacity` versions in memory. Share one
/// (`Arc<MemoryHistory>`) between two stores to carry history across a rebuild.
#[derive(Debug)]
pub struct MemoryHistory {
    versions: Mutex<VecDeque<ConfigVersion>>,
    capacity: usize,
}

impl MemoryHistory {
    /// Keeps the newest `capacity` versions (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            versions: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    /// How many versions it holds.
    pub fn len(&self) -> usize {
        self.versions.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.versions.lock().is_empty()
    }

    pub(crate) fn push(&self, version: ConfigVersion) {
        let mut versions = self.versions.lock();
        versions.push_back(version);
        while versions.len() > self.capacity {
            versions.pop_front();
        }
    }
}

#[async_trait::async_trait]
impl HistoryStore for MemoryHistory {
    async fn append(&self, version: &ConfigVersion) -> Result<(), HistoryError> {
        self.push(version.clone());
        Ok(())
    }

    async fn load(&self) -> Result<Vec<ConfigVersion>, HistoryError> {
        Ok(self.versions.lock().iter().cloned().collect())
    }
}
