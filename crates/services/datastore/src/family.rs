//! [`DataStoreFamily`]: the DataStore entering the node through the family door.
//! Its `[store]` section opens the database and brings the `datastore` service, the
//! audit observer and the `audit` service, the `database` health component with its
//! reconnect heal, the store's metrics, and the configuration history kept in the
//! database. With `durable_topics`, it opens the outbox too: the node's durable log
//! (publishes on those topics are kept, then relayed to the bus) and the events of
//! `datastore.transaction`.

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily, Slot};
use plexus_store::{AuditConfig, AuditLog, DataStore, Outbox, StoreConfig, StoreHistory};

use crate::config::SECTION;
use crate::{AuditObserver, AuditService, DataStoreService, OutboxLog, database_component};

/// The DataStore family.
#[derive(Clone, Debug, Default)]
pub struct DataStoreFamily {
    slot: Slot<DataStore>,
}

impl DataStoreFamily {
    /// The family, with a slot of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the families opened after this one find the DataStore it opened (the
    /// jobs' transactions): give it to them.
    pub fn slot(&self) -> Slot<DataStore> {
        self.slot.clone()
    }
}

#[plexus_core::async_trait]
impl SectionFamily for DataStoreFamily {
    type Config = StoreConfig;
    const SECTION: &'static str = SECTION;

    /// SQLite (`plexus.db`) in the data directory.
    fn defaults(&self, node: &NodeSection) -> StoreConfig {
        StoreConfig::sqlite_in(&node.data_dir)
    }

    async fn open_with(
        &self,
        settings: StoreConfig,
        node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !node.datastore {
            return Ok(Parts::default());
        }
        let datastore = DataStore::connect(&settings)
            .await
            .map_err(|e| FamilyError::open(SECTION, e))?;
        tracing::info!(
            backend = settings.backend().map(|b| b.as_str()).unwrap_or("?"),
            "datastore open"
        );
        self.slot.fill(datastore.clone());
        let store = datastore.store().clone();
        let log = AuditLog::new(store.clone(), AuditConfig::default())
            .map_err(|e| FamilyError::open(SECTION, e))?;
        let metrics = store.clone();
        let mut service = DataStoreService::new(datastore.clone());
        let mut durable = None;
        if !settings.durable_topics.is_empty() {
            let outbox = Outbox::open(datastore, settings.outbox.clone())
                .await
                .map_err(|e| FamilyError::open(SECTION, e))?;
            for pattern in &settings.durable_topics {
                outbox
                    .declare_durable(pattern)
                    .map_err(|e| FamilyError::invalid("store.durable_topics", e.to_string()))?;
            }
            service = service.with_outbox(outbox.clone());
            durable = Some(OutboxLog::new(outbox, settings.relay.clone()));
        }
        let mut parts = Parts::default();
        if let Some(log) = &durable {
            parts = parts.durable(log.clone());
        }
        Ok(parts
            .service(Arc::new(service))
            // Every mutating call is recorded in the audit trail, read as `audit.query`.
            .observer(Arc::new(AuditObserver::new(log.clone())))
            .service(Arc::new(AuditService::new(log)))
            .component(database_component(store.clone()))
            .metrics(move |node| {
                node.metrics()
                    .with_registry(|registry| metrics.metrics().register(registry));
                // A lost connection is checked now, not at the next interval.
                let health = node.health().downgrade();
                metrics.on_connection_lost(move || {
                    let health = health.upgrade();
                    async move {
                        if let Some(health) = health {
                            let _ = health.check_now(crate::COMPONENT).await;
                        }
                    }
                });
            })
            .history(Arc::new(StoreHistory::new(store))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::Family;
    use serde_json::json;

    use super::*;

    #[test]
    fn no_section_is_sqlite_in_the_data_directory() {
        let node = NodeSection::default();
        let settings = DataStoreFamily::new().settings(None, &node).unwrap();
        assert_eq!(settings.url, "sqlite://plexus-data/plexus.db");
    }

    #[test]
    fn the_section_is_checked_naming_the_field() {
        let node = NodeSection::default();
        let section = json!({"url": "mysql://x"});
        let err = DataStoreFamily::new()
            .check(Some(&section), &node)
            .unwrap_err();
        assert!(err.to_string().contains("store.url"), "{err}");
        // A configuration error (plexus-app's `AppError::is_config` reads this variant).
        assert!(matches!(err, FamilyError::Invalid { .. }), "{err:?}");
        let section = json!({"ulr": "sqlite://x"});
        let err = DataStoreFamily::new()
            .check(Some(&section), &node)
            .unwrap_err();
        assert!(err.to_string().contains("store.ulr"), "{err}");
    }

    #[tokio::test]
    async fn switched_off_it_brings_nothing() {
        let node = NodeSection {
            datastore: false,
            ..NodeSection::default()
        };
        let parts = DataStoreFamily::new().open(None, &node).await.unwrap();
        assert!(parts.services.is_empty() && parts.components.is_empty());
    }
}
