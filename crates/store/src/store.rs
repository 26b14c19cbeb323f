//! [`Store`]: a connected backend with its metrics, chosen by configuration; and
//! [`StoreSession`], one pooled connection whose every statement is timed.

use std::sync::Arc;

use tokio::time::Instant;

use crate::backend::{Backend, Dialect, DocRow, PoolState, Session, Statement};
use crate::error::unique_violation;
use crate::metrics::{StatementKind, StoreMetrics};
use crate::{BackendKind, StoreConfig, StoreError, postgres, sqlite};

struct Inner {
    backend: Box<dyn Backend>,
    metrics: StoreMetrics,
    config: StoreConfig,
}

/// A connected database: the backend the URL names, migrated, with its pool and
/// metrics. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.kind())
            .field("pool", &self.pool_state())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to the database `config.url` names (SQLite or PostgreSQL), opens the
    /// pool and runs the migrations.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let backend: Box<dyn Backend> = match config.backend()? {
            BackendKind::Sqlite => Box::new(sqlite::SqliteBackend::connect(config).await?),
            BackendKind::Postgres => Box::new(postgres::PostgresBackend::connect(config).await?),
        };
        Ok(Self::from_backend(backend, config.clone()))
    }

    /// A store over a backend already connected and migrated.
    pub fn from_backend(backend: Box<dyn Backend>, config: StoreConfig) -> Self {
        let metrics = StoreMetrics::new(
            config.slow_query_threshold(),
            config.slow_query_log_capacity,
        );
        Self {
            inner: Arc::new(Inner {
                backend,
                metrics,
                config,
            }),
        }
    }

    /// Which engine.
    pub fn kind(&self) -> BackendKind {
        self.inner.backend.kind()
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Its metrics and slow-query log.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.metrics
    }

    /// How its engine spells the SQL that differs.
    pub fn dialect(&self) -> &'static dyn Dialect {
        self.inner.backend.dialect()
    }

    /// The pool's size and idle connections now.
    pub fn pool_state(&self) -> PoolState {
        self.inner.backend.pool_state()
    }

    /// Takes a connection from the pool, waiting at most `acquire_timeout_ms`
    /// ([`StoreError::PoolTimeout`] after that). The wait is timed and counted.
    pub async fn session(&self) -> Result<StoreSession, StoreError> {
        let metrics = &self.inner.metrics;
        metrics.acquire_started();
        let started = Instant::now();
        let acquired = self.inner.backend.acquire().await;
        let waited = started.elapsed();
        let timed_out = matches!(acquired, Err(sqlx::Error::PoolTimedOut));
        metrics.acquire_finished(waited, timed_out);
        metrics.pool(self.pool_state());
        match acquired {
            Ok(session) => Ok(StoreSession {
                session,
                store: self.clone(),
                tx_started: None,
            }),
            Err(e) => Err(StoreError::from_sqlx(e, waited)),
        }
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.inner.backend.close().await;
    }
}

/// One pooled connection. Each statement's latency is recorded under its kind and
/// collection, and slow ones are logged. Dropping it gives the connection back,
/// rolling back a transaction left open.
pub struct StoreSession {
    session: Box<dyn Session>,
    store: Store,
    tx_started: Option<Instant>,
}

impl StoreSession {
    /// The store this session belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Opens a write transaction.
    pub async fn begin(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        self.session
            .begin()
            .await
            .map_err(|e| StoreError::from_sqlx(e, started.elapsed()))?;
        self.tx_started = Some(started);
        Ok(())
    }

    /// Commits the open transaction.
    pub async fn commit(&mut self) -> Result<(), StoreError> {
        let result = self.session.commit().await;
        self.end_transaction(result.is_ok());
        result.map_err(|e| StoreError::from_sqlx(e, std::time::Duration::ZERO))
    }

    /// Rolls the open transaction back.
    pub async fn rollback(&mut self) -> Result<(), StoreError> {
        let result = self.session.rollback().await;
        self.end_transaction(false);
        result.map_err(|e| StoreError::from_sqlx(e, std::time::Duration::ZERO))
    }

    fn end_transaction(&mut self, committed: bool) {
        if let Some(started) = self.tx_started.take() {
            self.store
                .metrics()
                .transaction(committed, started.elapsed());
        }
    }

    /// Runs a statement returning `id, version, doc` rows.
    pub async fn fetch_docs(
        &mut self,
        kind: StatementKind,
        collection: &str,
        stmt: &Statement,
    ) -> Result<Vec<DocRow>, StoreError> {
        let started = Instant::now();
        let result = self.session.fetch_docs(stmt).await;
        self.finish(kind, collection, stmt, started, result)
    }

    /// Runs a statement returning at most one row whose first column is an integer.
    pub async fn fetch_i64(
        &mut self,
        kind: StatementKind,
        collection: &str,
        stmt: &Statement,
    ) -> Result<Option<i64>, StoreError> {
        let started = Instant::now();
        let result = self.session.fetch_i64(stmt).await;
        self.finish(kind, collection, stmt, started, result)
    }

    /// Runs a statement and returns how many rows it affected.
    pub async fn execute(
        &mut self,
        kind: StatementKind,
        collection: &str,
        stmt: &Statement,
    ) -> Result<u64, StoreError> {
        let started = Instant::now();
        let result = self.session.execute(stmt).await;
        self.finish(kind, collection, stmt, started, result)
    }

    fn finish<T>(
        &self,
        kind: StatementKind,
        collection: &str,
        stmt: &Statement,
        started: Instant,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        self.store
            .metrics()
            .statement(kind, collection, &stmt.sql, started.elapsed());
        result.map_err(|e| match unique_violation(&e) {
            Some(constraint) => StoreError::UniqueViolation {
                collection: collection.to_owned(),
                index: constraint,
            },
            None => StoreError::from_sqlx(e, std::time::Duration::ZERO),
        })
    }
}

impl Drop for StoreSession {
    fn drop(&mut self) {
        // The backend's session rolls an open transaction back when it is dropped.
        self.end_transaction(false);
        self.store.metrics().pool(self.store.pool_state());
    }
}
