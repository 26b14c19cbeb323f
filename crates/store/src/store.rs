//! [`Store`]: a connected backend with its metrics, chosen by configuration; and
//! [`StoreSession`], one pooled connection whose every statement is timed.
//!
//! Taking a session tells load from a lost database: the store hands out at most
//! `max_connections` sessions, and a call waits up to `acquire_timeout_ms` for one
//! to come back ([`StoreError::PoolTimeout`]: load). Having one, it takes a
//! connection from the pool, which never waits for another's: it opens one or tests
//! an idle one, within `connect_timeout_ms`, and past that (or refused, or reset)
//! the database is unreachable ([`StoreError::Unavailable`]). Such a failure opens
//! the store's breaker (see [`Connection`]) so that, while the database is gone,
//! calls fail at once without touching the pool.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::backend::{Backend, Dialect, DocRow, PoolState, Session, Statement};
use crate::error::unique_violation;
use crate::link::{Admit, Connection, Link};
use crate::metrics::{StatementKind, StoreMetrics};
use crate::{BackendKind, StoreConfig, StoreError, postgres, sqlite};

struct Inner {
    backend: Box<dyn Backend>,
    metrics: StoreMetrics,
    config: StoreConfig,
    /// One permit per connection the pool may open: a session holds one.
    sessions: Arc<Semaphore>,
    link: Link,
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
        let permits = usize::try_from(config.max_connections.max(1)).unwrap_or(usize::MAX);
        Self {
            inner: Arc::new(Inner {
                backend,
                metrics,
                sessions: Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS))),
                config,
                link: Link::new(),
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

    /// Whether the store can reach its database, and every change of it: `Lost` at
    /// the first connection failure, `Up` when a probe reconnects. A listener (the
    /// DataStore family) asks for a health check at once on `Lost`.
    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.inner.link.watch()
    }

    /// Runs `f` each time the connection is lost (a task of its own, which ends
    /// with the store): for a listener that asks for a health check at once.
    /// Must be called inside a tokio runtime.
    pub fn on_connection_lost<F, Fut>(&self, f: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut connection = self.connection();
        tokio::spawn(async move {
            while connection.changed().await.is_ok() {
                let lost = matches!(*connection.borrow_and_update(), Connection::Lost { .. });
                if lost {
                    f().await;
                }
            }
        });
    }

    /// Takes a connection: waits at most `acquire_timeout_ms` for a session to come
    /// free under load ([`StoreError::PoolTimeout`] after that; the wait is timed and
    /// counted), then at most `connect_timeout_ms` for the pool to open or test a
    /// connection ([`StoreError::Unavailable`] after that). While the database is
    /// unreachable it fails at once with `Unavailable`, but for one probe at a time.
    pub async fn session(&self) -> Result<StoreSession, StoreError> {
        self.session_as(Admit::Call).await
    }

    /// [`Store::session`] for the health check and the heal action, which probe
    /// even while calls fail fast.
    pub(crate) async fn probe_session(&self) -> Result<StoreSession, StoreError> {
        self.session_as(Admit::Probe).await
    }

    async fn session_as(&self, who: Admit) -> Result<StoreSession, StoreError> {
        let slot = self.inner.link.admit(who)?;
        let metrics = &self.inner.metrics;
        metrics.acquire_started();
        let started = Instant::now();
        let permit = match tokio::time::timeout(
            self.inner.config.acquire_timeout(),
            self.inner.sessions.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(sqlx::Error::PoolClosed),
            Err(_elapsed) => Err(sqlx::Error::PoolTimedOut),
        };
        let acquired = match permit {
            Ok(permit) => match self.inner.backend.acquire().await {
                Ok(session) => Ok((session, permit)),
                // Nothing waits in the pool for a connection another holds: a timeout
                // there is the connect timeout.
                Err(sqlx::Error::PoolTimedOut) => Err(StoreError::Unavailable {
                    reason: format!(
                        "no connection to the database within connect_timeout_ms ({} ms)",
                        self.inner.config.connect_timeout_ms
                    ),
                }),
                Err(e) => Err(StoreError::from_sqlx(e, started.elapsed())),
            },
            Err(e) => Err(StoreError::from_sqlx(e, started.elapsed())),
        };
        let waited = started.elapsed();
        let timed_out = matches!(acquired, Err(StoreError::PoolTimeout { .. }));
        metrics.acquire_finished(waited, timed_out);
        metrics.pool(self.pool_state());
        match acquired {
            Ok((session, permit)) => {
                self.inner.link.succeeded(slot);
                Ok(StoreSession {
                    session,
                    store: self.clone(),
                    tx_started: None,
                    _permit: permit,
                })
            }
            Err(e) => {
                if matches!(e, StoreError::Unavailable { .. }) {
                    self.inner.link.failed(slot, &e);
                }
                Err(e)
            }
        }
    }

    /// Notes a statement's error: a lost connection opens the breaker.
    fn noted(&self, e: StoreError) -> StoreError {
        if matches!(e, StoreError::Unavailable { .. }) {
            self.inner.link.failed(None, &e);
        }
        e
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
    /// Given back when the session drops.
    _permit: OwnedSemaphorePermit,
}

impl StoreSession {
    /// The store this session belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Opens a write transaction.
    pub async fn begin(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        self.session.begin().await.map_err(|e| {
            self.store
                .noted(StoreError::from_sqlx(e, started.elapsed()))
        })?;
        self.tx_started = Some(started);
        Ok(())
    }

    /// Commits the open transaction.
    pub async fn commit(&mut self) -> Result<(), StoreError> {
        let result = self.session.commit().await;
        self.end_transaction(result.is_ok());
        result.map_err(|e| {
            self.store
                .noted(StoreError::from_sqlx(e, std::time::Duration::ZERO))
        })
    }

    /// Rolls the open transaction back.
    pub async fn rollback(&mut self) -> Result<(), StoreError> {
        let result = self.session.rollback().await;
        self.end_transaction(false);
        result.map_err(|e| {
            self.store
                .noted(StoreError::from_sqlx(e, std::time::Duration::ZERO))
        })
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

    /// Runs a statement returning `id, version, doc` rows, within a byte budget
    /// ([`Session::fetch_docs_within`](crate::Session::fetch_docs_within)).
    pub async fn fetch_docs_within(
        &mut self,
        kind: StatementKind,
        collection: &str,
        stmt: &Statement,
        max_bytes: usize,
    ) -> Result<(Vec<DocRow>, bool), StoreError> {
        let started = Instant::now();
        let result = self.session.fetch_docs_within(stmt, max_bytes).await;
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
            None => self
                .store
                .noted(StoreError::from_sqlx(e, std::time::Duration::ZERO)),
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
