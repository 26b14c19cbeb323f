//! The store's health check and reconnect heal action.
//!
//! [`Store::ping`] takes a pooled connection and proves the database answers: on
//! PostgreSQL a `SELECT 1`; on SQLite a write transaction opened and rolled back,
//! because reads keep working on a file that was moved or deleted under an open
//! connection while writes do not. Plugged into the registry's health monitor:
//!
//! ```no_run
//! # fn demo(store: plexus_store::Store) {
//! use plexus_registry::health::{CheckError, HealAction, check_fn};
//!
//! let s = store.clone();
//! let check = check_fn(move || {
//!     let s = s.clone();
//!     async move { Ok::<_, CheckError>(s.health().await) }
//! });
//! let heal = HealAction::reconnect("store", move || {
//!     let store = store.clone();
//!     async move { store.reconnect().await }
//! });
//! # let _ = (check, heal); }
//! ```
//!
//! Reconnecting: sqlx's pool tests an idle connection before handing it out and
//! replaces a dead one with a new connection, so once the database is back, the
//! next call works without help. [`Store::reconnect`] is the heal action: it opens
//! (or revives) a connection and pings on it, so the monitor learns at once whether
//! the database is back, and the pool holds a live connection for the next call.
//! Both probe past the store's breaker (see [`Connection`](crate::Connection)): while
//! the database is gone calls fail at once, but the check always asks it.

use std::time::Duration;

use plexus_core::HealthReport;
use tokio::time::Instant;

use crate::backend::Statement;
use crate::metrics::StatementKind;
use crate::{BackendKind, Store, StoreError};

impl Store {
    /// Proves the database answers; returns the round trip. Fails with
    /// [`StoreError::Unavailable`] when it is gone, within the connect timeout. It
    /// probes even while the store's breaker makes calls fail fast, and a success
    /// closes the breaker.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        let mut session = self.probe_session().await?;
        match self.kind() {
            BackendKind::Sqlite => {
                session.begin().await?;
                session.rollback().await?;
            }
            BackendKind::Postgres => {
                let stmt = Statement::new("SELECT CAST(1 AS BIGINT)".into(), Vec::new());
                session
                    .fetch_i64(StatementKind::Other, "health", &stmt)
                    .await?;
            }
        }
        Ok(started.elapsed())
    }

    /// The health report of [`Store::ping`]: healthy with the round trip, or
    /// unhealthy with the error.
    pub async fn health(&self) -> HealthReport {
        match self.ping().await {
            Ok(took) => HealthReport {
                state: plexus_core::HealthState::Healthy,
                detail: format!("{} answered in {took:?}", self.kind().as_str()),
            },
            Err(e) => HealthReport::unhealthy(format!("{} ({})", e, e.kind())),
        }
    }

    /// The reconnect heal action: a ping on a connection the pool opens anew when
    /// its idle ones are dead. `Err` says the database is still unreachable.
    pub async fn reconnect(&self) -> Result<(), String> {
        self.ping().await.map(|_| ()).map_err(|e| e.to_string())
    }
}
