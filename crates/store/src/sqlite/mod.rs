//! The SQLite backend: one database file in WAL mode, created when missing, with a
//! busy timeout so writers queue on the lock, and foreign keys on.

mod dialect;
mod session;

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::backend::{Backend, Dialect, PoolState, Session};
use crate::{BackendKind, StoreConfig, StoreError};

pub use dialect::SqliteDialect;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite behind a pool.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
}

impl SqliteBackend {
    /// Opens (creating when missing) the file `config.url` names, with its parent
    /// folder, and runs the migrations.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| StoreError::Config {
                field: "url".to_owned(),
                reason: e.to_string(),
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_millis(config.busy_timeout_ms))
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable {
                    reason: format!("cannot create {}: {e}", parent.display()),
                })?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout())
            .idle_timeout(config.idle_timeout_ms.map(std::time::Duration::from_millis))
            .connect_with(options)
            .await
            .map_err(crate::error::connect_error)?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Backend {
            reason: format!("migrations failed: {e}"),
        })?;
        Ok(Self { pool })
    }

    /// The sqlx pool, for callers that run their own statements.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &SqliteDialect
    }

    async fn acquire(&self) -> Result<Box<dyn Session>, sqlx::Error> {
        let conn = self.pool.acquire().await?;
        Ok(Box::new(session::SqliteSession::new(conn)))
    }

    fn pool_state(&self) -> PoolState {
        PoolState {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
