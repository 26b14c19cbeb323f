//! Where registrations are stored: the [`RegistryBackend`] trait.
//!
//! The [`crate::Registry`] facade validates, serializes writes, keeps the lock-free
//! snapshot and publishes changes; a backend only stores. [`crate::MemoryBackend`]
//! keeps everything in process; a NATS KV backend can implement the same trait and
//! must pass the same suite (`plexus_registry::conformance`, feature `test-util`).

use async_trait::async_trait;
use plexus_core::{InstanceId, Timestamp};

use crate::{Registration, RegistryError, StatusUpdate, Updated};

/// Storage of registrations, keyed by instance id.
///
/// Every operation is atomic on its own. Listings are sorted by instance id.
#[async_trait]
pub trait RegistryBackend: Send + Sync + 'static {
    /// Stores `registration`, replacing one with the same instance id if it belongs to
    /// the same service, and returns the one it replaced.
    ///
    /// Fails with [`RegistryError::DuplicateInstance`] (and changes nothing) when the
    /// instance id is held by an instance of another service.
    async fn put(&self, registration: Registration) -> Result<Option<Registration>, RegistryError>;

    /// Removes the instance and returns what was stored, `None` if nothing was.
    async fn remove(&self, instance: &InstanceId) -> Result<Option<Registration>, RegistryError>;

    /// The instance's registration, if it is registered.
    async fn get(&self, instance: &InstanceId) -> Result<Option<Registration>, RegistryError>;

    /// Every registration, sorted by instance id.
    async fn list(&self) -> Result<Vec<Registration>, RegistryError>;

    /// Sets the status, reason and stale mark, and `status_since` to `update.at` when
    /// the status differs from the stored one; fails with [`RegistryError::NotFound`]
    /// when the instance is not registered.
    async fn update_status(
        &self,
        instance: &InstanceId,
        update: StatusUpdate,
    ) -> Result<Updated, RegistryError>;

    /// Records a heartbeat at `at` (only `last_heartbeat` changes); fails with
    /// [`RegistryError::NotFound`] when the instance is not registered.
    async fn heartbeat(
        &self,
        instance: &InstanceId,
        at: Timestamp,
    ) -> Result<Registration, RegistryError>;
}
