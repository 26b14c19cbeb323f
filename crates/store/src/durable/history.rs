//! [`StoreHistory`]: configuration versions in the `plexus_config_history` table, so
//! a node restarted on the same database resumes its versions and can roll back to
//! one made before the restart.
//!
//! ```no_run
//! # async fn demo(store: plexus_store::Store) -> Result<(), plexus_config::ConfigError> {
//! use std::sync::Arc;
//! use plexus_store::StoreHistory;
//!
//! let config = plexus_config::ConfigStore::builder()
//!     .toml("[node]\nname = \"a\"\n")
//!     .history(Arc::new(StoreHistory::new(store)))
//!     .build()
//!     .await?;
//! # let _ = config; Ok(()) }
//! ```

use plexus_config::{ConfigVersion, HistoryError, HistoryStore};

use super::rows::int;
use crate::backend::{Param, Statement};
use crate::metrics::StatementKind;
use crate::{BackendKind, Store, StoreError};

/// The scope [`StoreHistory::new`] records under.
pub const DEFAULT_SCOPE: &str = "default";

/// The label history statements are timed under, as a collection.
const HISTORY: &str = "config_history";

/// Configuration history in the store's database, one scope per configuration.
#[derive(Clone, Debug)]
pub struct StoreHistory {
    store: Store,
    scope: String,
    max_versions: u64,
}

impl StoreHistory {
    /// The history of scope [`DEFAULT_SCOPE`], keeping the newest 1,000 versions.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            scope: DEFAULT_SCOPE.to_owned(),
            max_versions: 1_000,
        }
    }

    /// Records under `scope` instead (several configurations in one database).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Keeps the newest `max` versions (at least 1); older ones are deleted as new
    /// ones are appended.
    pub fn with_max_versions(mut self, max: u64) -> Self {
        self.max_versions = max.max(1);
        self
    }

    /// The scope.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> HistoryError {
    Box::new(e)
}

#[async_trait::async_trait]
impl HistoryStore for StoreHistory {
    async fn append(&self, version: &ConfigVersion) -> Result<(), HistoryError> {
        let entry = serde_json::to_string(version).map_err(boxed)?;
        let scope = Param::Text(self.scope.clone());
        let insert = Statement::new(
            "INSERT INTO plexus_config_history (scope, version, entry) VALUES ($1, $2, $3)".into(),
            vec![scope.clone(), int(version.version), Param::Text(entry)],
        );
        let trim = Statement::new(
            "DELETE FROM plexus_config_history WHERE scope = $1 AND version <= $2".into(),
            vec![
                scope,
                int(version.version.saturating_sub(self.max_versions)),
            ],
        );
        let mut session = self.store.session().await.map_err(boxed)?;
        session.begin().await.map_err(boxed)?;
        let result: Result<(), StoreError> = async {
            session
                .execute(StatementKind::Insert, HISTORY, &insert)
                .await?;
            session
                .execute(StatementKind::Delete, HISTORY, &trim)
                .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => session.commit().await.map_err(boxed),
            Err(e) => {
                let _ = session.rollback().await;
                Err(boxed(e))
            }
        }
    }

    async fn load(&self) -> Result<Vec<ConfigVersion>, HistoryError> {
        let sql = match self.store.kind() {
            BackendKind::Sqlite => {
                "SELECT scope AS id, version, entry AS doc FROM plexus_config_history \
                 WHERE scope = $1 ORDER BY version"
            }
            BackendKind::Postgres => {
                "SELECT scope AS id, version, CAST(entry AS JSON) AS doc FROM plexus_config_history \
                 WHERE scope = $1 ORDER BY version"
            }
        };
        let stmt = Statement::new(sql.into(), vec![Param::Text(self.scope.clone())]);
        let mut session = self.store.session().await.map_err(boxed)?;
        let rows = session
            .fetch_docs(StatementKind::Query, HISTORY, &stmt)
            .await
            .map_err(boxed)?;
        rows.into_iter()
            .map(|row| serde_json::from_value(row.doc).map_err(boxed))
            .collect()
    }
}
