//! [`PostgresBackend`]: locks in a table of PostgreSQL, shared by every node that
//! uses the same database (and schema).
//!
//! The table `plexus_locks` (a row per lock name: holder, token, `expires_at`) and
//! the sequence `plexus_lock_tokens` are created by the store's migrations: the
//! pool is opened by [`plexus_store::postgres::PostgresBackend::connect`], with the
//! store's pool bounds and error sorting. Every operation is one statement, with
//! leases on the server's clock (`clock_timestamp()`), so nodes' clocks do not
//! matter. A grant is one `INSERT … ON CONFLICT DO UPDATE … WHERE expires_at <=
//! clock_timestamp()`: it takes a free or expired lock in one step, and two racing
//! grants are ordered by the row lock. A release ends the lease (`expires_at` set to
//! now) and keeps the row, so the next grant's token is computed under
//! that row's lock: `GREATEST(token + 1, nextval('plexus_lock_tokens'))`. A token
//! drawn from the sequence alone would not do: a grant draws it before it waits on
//! a racing grant's row, and could then be granted after a greater one. So tokens
//! of one lock increase across releases, expiries and server restarts (the row and
//! the sequence are durable); the table keeps one row per lock name ever used.

use std::time::Duration;

use plexus_store::{StoreConfig, StoreError};
use sqlx::{PgPool, Row};

use crate::LockError;
use crate::backend::{Attempt, Held, LockBackend, millis};

/// Takes the lock if it is free or expired: the new token, or (when busy) the
/// milliseconds left of the current lease as the statement's snapshot saw it.
const ACQUIRE: &str = "
WITH granted AS (
    INSERT INTO plexus_locks AS l (name, holder, token, expires_at)
    VALUES ($1, $2, nextval('plexus_lock_tokens'),
            clock_timestamp() + $3::float8 * interval '1 millisecond')
    ON CONFLICT (name) DO UPDATE
        SET holder = excluded.holder, token = GREATEST(l.token + 1, excluded.token),
            expires_at = excluded.expires_at
        WHERE l.expires_at <= clock_timestamp()
    RETURNING token
)
SELECT (SELECT token FROM granted) AS token,
       (SELECT GREATEST(0, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::bigint
          FROM plexus_locks WHERE name = $1) AS remaining_ms";

const EXTEND: &str = "
UPDATE plexus_locks SET expires_at = clock_timestamp() + $3::float8 * interval '1 millisecond'
 WHERE name = $1 AND token = $2 AND expires_at > clock_timestamp()";

/// Ends the lease of `token` if it is still running; the row stays, holding the
/// lock's last token for the next grant.
const RELEASE: &str = "
UPDATE plexus_locks SET expires_at = clock_timestamp()
 WHERE name = $1 AND token = $2 AND expires_at > clock_timestamp()";

const STATUS: &str = "
SELECT holder, token,
       GREATEST(1, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::bigint AS remaining_ms
  FROM plexus_locks WHERE name = $1 AND expires_at > clock_timestamp()";

/// Locks in PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresBackend {
    pool: PgPool,
}

fn sorted(e: sqlx::Error) -> LockError {
    LockError::from(StoreError::from_sqlx(e, Duration::ZERO))
}

fn token_param(token: u64) -> i64 {
    i64::try_from(token).unwrap_or(i64::MAX)
}

impl PostgresBackend {
    /// Connects to `url` (in `schema` when given) and runs the store's migrations,
    /// which create the lock table and the token sequence.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, LockError> {
        let config = StoreConfig {
            schema: schema.map(str::to_owned),
            ..StoreConfig::with_url(url)
        };
        let store = plexus_store::postgres::PostgresBackend::connect(&config).await?;
        Ok(Self::new(store.pool().clone()))
    }

    /// Runs an UPDATE of the grant `token` of `lock` (with `lease` as `$3`); whether
    /// it found the grant live.
    async fn update(
        &self,
        sql: &'static str,
        lock: &str,
        token: u64,
        lease: Option<Duration>,
    ) -> Result<bool, LockError> {
        let mut query = sqlx::query(sql).bind(lock).bind(token_param(token));
        if let Some(lease) = lease {
            query = query.bind(millis(lease) as f64);
        }
        let done = query.execute(&self.pool).await.map_err(sorted)?;
        Ok(done.rows_affected() == 1)
    }

    /// Locks on a pool already connected and migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[plexus_core::async_trait]
impl LockBackend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn try_acquire(
        &self,
        lock: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Attempt, LockError> {
        let row = sqlx::query(ACQUIRE)
            .bind(lock)
            .bind(holder)
            .bind(millis(lease) as f64)
            .fetch_one(&self.pool)
            .await
            .map_err(sorted)?;
        let token: Option<i64> = row.try_get("token").map_err(sorted)?;
        let remaining: Option<i64> = row.try_get("remaining_ms").map_err(sorted)?;
        Ok(match token {
            Some(t) => Attempt::Granted(u64::try_from(t).unwrap_or(0)),
            None => Attempt::Busy(Duration::from_millis(
                remaining.and_then(|r| u64::try_from(r).ok()).unwrap_or(0),
            )),
        })
    }

    async fn extend(&self, lock: &str, token: u64, lease: Duration) -> Result<bool, LockError> {
        self.update(EXTEND, lock, token, Some(lease)).await
    }

    async fn release(&self, lock: &str, token: u64) -> Result<bool, LockError> {
        self.update(RELEASE, lock, token, None).await
    }

    async fn status(&self, lock: &str) -> Result<Option<Held>, LockError> {
        let row = sqlx::query(STATUS)
            .bind(lock)
            .fetch_optional(&self.pool)
            .await
            .map_err(sorted)?;
        let Some(row) = row else { return Ok(None) };
        let token: i64 = row.try_get("token").map_err(sorted)?;
        let remaining: i64 = row.try_get("remaining_ms").map_err(sorted)?;
        Ok(Some(Held {
            holder: row.try_get("holder").map_err(sorted)?,
            token: u64::try_from(token).unwrap_or(0),
            remaining: Duration::from_millis(u64::try_from(remaining).unwrap_or(1)),
        }))
    }
}
