//! The DataStore family (`[store]`): the `datastore` and `audit` services, the
//! database as a health component, and the configuration history in the database.
//!
//! `[store]` is a [`plexus_store::StoreConfig`]; without it the DataStore is SQLite
//! in `node.data_dir` (`plexus-data/plexus.db`). `[node] datastore = false` switches
//! the family off.

use std::sync::Arc;

use plexus_config::{ConfigError, ConfigStore};
use plexus_node::{CallObserver, CallRecord};
use plexus_registry::health::{CheckError, ComponentKind, ComponentSpec, HealAction, check_fn};
use plexus_store::{
    AuditConfig, AuditEntry, AuditLog, AuditOutcome, AuditService, DataStore, DataStoreService,
    Store, StoreConfig, StoreHistory,
};
use serde_json::Value;

use plexus_node::family::{Family, FamilyError, NodeSection, Parts, checked, typed};

/// The configuration section the family reads.
const SECTION: &str = "store";

/// The DataStore family.
#[derive(Clone, Copy, Debug, Default)]
pub struct DataStoreFamily;

impl DataStoreFamily {
    /// The store configuration in force: `[store]`, or SQLite in the data directory.
    pub fn settings(
        section: Option<&Value>,
        node: &NodeSection,
    ) -> Result<StoreConfig, FamilyError> {
        match section {
            Some(value) => typed(value, SECTION),
            None => Ok(StoreConfig::sqlite_in(&node.data_dir)),
        }
    }
}

#[plexus_core::async_trait]
impl Family for DataStoreFamily {
    fn section(&self) -> &'static str {
        SECTION
    }

    fn check(&self, section: Option<&Value>, node: &NodeSection) -> Result<(), FamilyError> {
        checked(&Self::settings(section, node)?, SECTION)
    }

    fn defaults(&self, node: &NodeSection) -> Option<Value> {
        serde_json::to_value(StoreConfig::sqlite_in(&node.data_dir)).ok()
    }

    async fn register(&self, store: &ConfigStore) -> Result<(), ConfigError> {
        store
            .register_section::<StoreConfig>(SECTION)
            .await
            .map(drop)
    }

    async fn open(
        &self,
        section: Option<&Value>,
        node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !node.datastore {
            return Ok(Parts::default());
        }
        let settings = Self::settings(section, node)?;
        let datastore = DataStore::connect(&settings)
            .await
            .map_err(|e| FamilyError::open(SECTION, e))?;
        tracing::info!(
            backend = settings.backend().map(|b| b.as_str()).unwrap_or("?"),
            "datastore open"
        );
        let store = datastore.store().clone();
        let log = AuditLog::new(store.clone(), AuditConfig::default())
            .map_err(|e| FamilyError::open(SECTION, e))?;
        let metrics = store.clone();
        Ok(Parts::default()
            .service(Arc::new(DataStoreService::new(datastore)))
            // Every mutating call is recorded in the audit trail, read as `audit.query`.
            .observer(Arc::new(AuditObserver { log: log.clone() }))
            .service(Arc::new(AuditService::new(log)))
            .component(database_component(store.clone()))
            .metrics(move |node| {
                node.metrics()
                    .with_registry(|registry| metrics.metrics().register(registry));
            })
            .history(Arc::new(StoreHistory::new(store))))
    }
}

/// The database as a health component: a failed ping is a check failure, and the
/// heal action reconnects.
fn database_component(store: Store) -> ComponentSpec {
    let heal_store = store.clone();
    ComponentSpec::new(
        "database",
        ComponentKind::Dependency,
        check_fn(move || {
            let store = store.clone();
            async move {
                store
                    .ping()
                    .await
                    .map(|_| plexus_core::HealthReport::healthy())
                    .map_err(|e| CheckError::new(e.to_string()))
            }
        }),
    )
    .with_heal(HealAction::reconnect("reconnect", move || {
        let store = heal_store.clone();
        async move { store.reconnect().await }
    }))
}

/// Hands each mutating call to the store's audit log.
struct AuditObserver {
    log: AuditLog,
}

#[plexus_core::async_trait]
impl CallObserver for AuditObserver {
    async fn record(&self, record: CallRecord) {
        let outcome = match &record.error {
            None => AuditOutcome::Ok,
            Some((_, message)) => AuditOutcome::Error {
                code: record.outcome.clone(),
                message: message.clone(),
            },
        };
        let entry = AuditEntry {
            at: record.at,
            who: record.caller,
            method: record.method,
            params: record.params,
            correlation_id: record.correlation_id,
            outcome,
            duration: record.duration,
        };
        if let Err(error) = self.log.record(&entry).await {
            tracing::error!(%error, method = %entry.method, "audit record not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn no_section_is_sqlite_in_the_data_directory() {
        let node = NodeSection::default();
        let settings = DataStoreFamily::settings(None, &node).unwrap();
        assert_eq!(settings.url, "sqlite://plexus-data/plexus.db");
    }

    #[test]
    fn the_section_is_checked_naming_the_field() {
        let node = NodeSection::default();
        let section = json!({"url": "mysql://x"});
        let err = DataStoreFamily.check(Some(&section), &node).unwrap_err();
        assert!(err.to_string().contains("store.url"), "{err}");
        assert!(crate::AppError::from(err).is_config());
        let section = json!({"ulr": "sqlite://x"});
        let err = DataStoreFamily.check(Some(&section), &node).unwrap_err();
        assert!(err.to_string().contains("store.ulr"), "{err}");
    }
}
