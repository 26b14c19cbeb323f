//! [`MemoryBackend`]: registrations kept in a map in this process.

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use plexus_core::{InstanceId, Timestamp};

use crate::{Registration, RegistryBackend, RegistryError, StatusUpdate, Updated};

/// A backend that keeps registrations in memory; the default of a single node.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    entries: Mutex<BTreeMap<InstanceId, Registration>>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RegistryBackend for MemoryBackend {
    async fn put(&self, registration: Registration) -> Result<Option<Registration>, RegistryError> {
        let mut entries = self.entries.lock();
        if let Some(existing) = entries.get(registration.instance())
            && existing.service() != registration.service()
        {
            return Err(RegistryError::DuplicateInstance {
                instance: registration.instance().clone(),
                existing: existing.service().clone(),
                requested: registration.service().clone(),
            });
        }
        Ok(entries.insert(registration.instance().clone(), registration))
    }

    async fn remove(&self, instance: &InstanceId) -> Result<Option<Registration>, RegistryError> {
        Ok(self.entries.lock().remove(instance))
    }

    async fn get(&self, instance: &InstanceId) -> Result<Option<Registration>, RegistryError> {
        Ok(self.entries.lock().get(instance).cloned())
    }

    async fn list(&self) -> Result<Vec<Registration>, RegistryError> {
        Ok(self.entries.lock().values().cloned().collect())
    }

    async fn update_status(
        &self,
        instance: &InstanceId,
        update: StatusUpdate,
    ) -> Result<Updated, RegistryError> {
        let mut entries = self.entries.lock();
        let entry = entries
            .get_mut(instance)
            .ok_or_else(|| RegistryError::NotFound {
                instance: instance.clone(),
            })?;
        let previous = entry.status;
        if previous != update.status {
            entry.status_since = update.at;
        }
        entry.status = update.status;
        entry.reason = update.reason;
        entry.stale = update.stale;
        Ok(Updated {
            previous,
            registration: entry.clone(),
        })
    }

    async fn heartbeat(
        &self,
        instance: &InstanceId,
        at: Timestamp,
    ) -> Result<Registration, RegistryError> {
        let mut entries = self.entries.lock();
        let entry = entries
            .get_mut(instance)
            .ok_or_else(|| RegistryError::NotFound {
                instance: instance.clone(),
            })?;
        entry.last_heartbeat = at;
        Ok(entry.clone())
    }
}
