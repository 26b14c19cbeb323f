//! The SQLite backend: one database file in WAL mode, created when missing, with a
//! busy timeout so writers queue on the lock, and foreign keys on.

mod dialect;

use std::str::FromStr;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteQueryResult, SqliteRow,
};
use sqlx::{Row, Sqlite};

use crate::backend::Dialect;
use crate::backend::pooled::{self, SqlxBackend};
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
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable {
                reason: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let pool = pooled::connect(config, options).await?;
        pooled::migrate(&MIGRATOR, &pool).await?;
        Ok(Self { pool })
    }

    /// The sqlx pool, for callers that run their own statements.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl SqlxBackend for SqliteBackend {
    type Db = Sqlite;
    const KIND: BackendKind = BackendKind::Sqlite;
    const DIALECT: &'static dyn Dialect = &SqliteDialect;
    // IMMEDIATE: writers queue on the lock up front instead of failing on upgrade.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The document is JSON text.
    fn doc(row: &SqliteRow) -> Result<Value, sqlx::Error> {
        let text: &str = row.try_get(2)?;
        serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}
