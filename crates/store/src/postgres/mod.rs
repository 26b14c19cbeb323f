//! The PostgreSQL backend: documents as `jsonb`, ids ordered by code point
//! (`COLLATE "C"`), optionally in a schema of the store's own.

mod dialect;
mod session;

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

use crate::backend::{Backend, Dialect, PoolState, Session};
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
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout())
            .idle_timeout(config.idle_timeout_ms.map(std::time::Duration::from_millis))
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        if let Some(schema) = &config.schema {
            // The name passed check_identifier: lower-case letters, digits and `_`.
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            pool.execute(AssertSqlSafe(create))
                .await
                .map_err(connect_error)?;
        }
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Backend {
            reason: format!("migrations failed: {e}"),
        })?;
        Ok(Self { pool })
    }

    /// The sqlx pool, for callers that run their own statements.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &PostgresDialect
    }

    async fn acquire(&self) -> Result<Box<dyn Session>, sqlx::Error> {
        let conn = self.pool.acquire().await?;
        Ok(Box::new(session::PgSession::new(conn)))
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
