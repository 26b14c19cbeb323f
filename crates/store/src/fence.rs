//! Fencing: writes that carry a lock's fencing token ([`Fence`]) are refused once
//! the store has accepted a write with a greater token of the same lock.
//!
//! A lease cannot stop a lock holder that was paused past its lease from writing as
//! if it still held the lock; the data can. The store keeps, per lock name, the
//! highest token a fenced write has carried (table `plexus_fences`, created by the
//! migrations of both engines). A fenced write first raises that mark in its own
//! transaction, in one statement that succeeds only if the write's token is at least
//! the mark: equal tokens pass (one holder writing several times), a lower one is
//! [`StoreError::Fenced`] and nothing of the write is kept. On PostgreSQL the
//! statement takes the mark's row lock, so fenced writes of one lock are ordered by
//! commit and a lower token cannot slip in behind a higher one. Every fenced write
//! is counted in `plexus_store_fenced_writes_total{outcome}` (`accepted`,
//! `refused`).

use std::sync::Arc;

use serde::Deserialize;

use crate::StoreError;
use crate::backend::{Param, Statement};
use crate::metrics::StatementKind;
use crate::store::StoreSession;

/// The longest lock name a fence may carry, in bytes.
pub const MAX_FENCE_LOCK: usize = 1_024;

/// The table the marks are kept in (the `collection` label of its statements).
const TABLE: &str = "plexus_fences";

/// Raises the mark of `$1` to `$2` unless it is already higher; returns the token
/// when raised (or equal).
const CLAIM: &str = "INSERT INTO plexus_fences (lock_name, token) VALUES ($1, $2) \
    ON CONFLICT (lock_name) DO UPDATE SET token = excluded.token \
    WHERE plexus_fences.token <= excluded.token RETURNING token";

/// The mark of `$1`.
const HIGHEST: &str = "SELECT token FROM plexus_fences WHERE lock_name = $1";

/// A fencing condition on a write: the lock that guards the data and the token of
/// the caller's grant.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fence {
    /// The lock's name.
    pub lock: String,
    /// The fencing token of the caller's grant of that lock.
    pub token: u64,
}

impl Fence {
    /// A fence of `lock` at `token`.
    pub fn new(lock: impl Into<String>, token: u64) -> Self {
        Self {
            lock: lock.into(),
            token,
        }
    }

    /// Bad input named as `fence.lock` / `fence.token`.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.lock.is_empty() || self.lock.len() > MAX_FENCE_LOCK {
            return Err(StoreError::invalid_argument(
                "fence.lock",
                format!("must be 1 to {MAX_FENCE_LOCK} bytes"),
            ));
        }
        if i64::try_from(self.token).is_err() {
            return Err(StoreError::invalid_argument(
                "fence.token",
                "is over the largest token a store keeps (2^63 - 1)",
            ));
        }
        Ok(())
    }

    /// Raises the mark inside the session's transaction, or refuses the write.
    pub(crate) async fn claim(&self, s: &mut StoreSession) -> Result<(), StoreError> {
        let lock = Param::Text(self.lock.clone());
        let token = Param::Int(i64::try_from(self.token).unwrap_or(i64::MAX));
        let claim = Statement::new(Arc::from(CLAIM), vec![lock.clone(), token]);
        let raised = s.fetch_i64(StatementKind::Upsert, TABLE, &claim).await?;
        if raised.is_some() {
            s.store().metrics().fenced_write(true);
            return Ok(());
        }
        let highest = Statement::new(Arc::from(HIGHEST), vec![lock]);
        let highest = s.fetch_i64(StatementKind::Get, TABLE, &highest).await?;
        s.store().metrics().fenced_write(false);
        Err(StoreError::Fenced {
            lock: self.lock.clone(),
            token: self.token,
            highest: highest.and_then(|h| u64::try_from(h).ok()).unwrap_or(0),
        })
    }
}
