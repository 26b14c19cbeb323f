//! The PostgreSQL backend: documents as `jsonb`, ids ordered by code point
//! (`COLLATE "C"`), optionally in a schema of the store's own.

mod dialect;

use std::str::FromStr;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgQueryResult, PgRow};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Executor, Postgres, Row};

use crate::backend::Dialect;
use crate::backend::pooled::{self, SqlxBackend};
use crate::error::connect_error;
use crate::{BackendKind, StoreConfig, StoreError};

pub use dialect::PostgresDialect;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL behind a pool.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
}

impl PostgresBackend {
    /// Connects to the server `config.url` names, creates `config.schema` when set
    /// (every connection's `search_path` is then that schema alone), and runs the
    /// migrations.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let mut options =
            PgConnectOptions::from_str(&config.url).map_err(|e| StoreError::Config {
                field: "url".to_owned(),
                reason: e.to_string(),
            })?;
        options = options.application_name("plexus-store");
        if let Some(schema) = &config.schema {
            crate::sql::check_identifier("schema", schema, 48)?;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = pooled::connect(config, options).await?;
        if let Some(schema) = &config.schema {
            // The name passed check_identifier: lower-case letters, digits and `_`.
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            pool.execute(AssertSqlSafe(create))
                .await
                .map_err(connect_error)?;
        }
        pooled::migrate(&MIGRATOR, &pool).await?;
        Ok(Self { pool })
    }

    /// The sqlx pool, for callers that run their own statements.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl SqlxBackend for PostgresBackend {
    type Db = Postgres;
    const KIND: BackendKind = BackendKind::Postgres;
    const DIALECT: &'static dyn Dialect = &PostgresDialect;
    const BEGIN: &'static str = "BEGIN";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The document is `jsonb`.
    fn doc(row: &PgRow) -> Result<Value, sqlx::Error> {
        let Json(doc): Json<Value> = row.try_get(2)?;
        Ok(doc)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}
