//! [`SqliteBackend`]: sessions in a SQLite file, so embedded sessions survive a
//! restart. One table, `plexus_sessions`, indexed by subject and expiry; one
//! connection, so every operation (a create with its cap check and evictions in
//! one transaction) runs alone. Time is the process's (Tokio's clock), as for the
//! memory backend; expired rows are not found at once and the sweep deletes them
//! (`DELETE … RETURNING`), each announced once.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{Executor, Row};

use crate::SessionError;
use crate::backend::{
    Cap, Created, Ended, Held, NewSession, Record, RecordPage, SessionBackend, plan_create,
};
use crate::clock::Clock;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS plexus_sessions (
  id TEXT PRIMARY KEY,
  subject TEXT NOT NULL,
  data TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  ttl_ms INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL,
  version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plexus_sessions_subject ON plexus_sessions (subject, expires_ms, id);
CREATE INDEX IF NOT EXISTS plexus_sessions_expiry ON plexus_sessions (expires_ms);
";

/// Sessions in a SQLite file.
#[derive(Debug)]
pub struct SqliteBackend {
    pool: SqlitePool,
    max_sessions: usize,
    clock: Clock,
}

fn storage(e: impl std::fmt::Display) -> SessionError {
    SessionError::Storage {
        reason: e.to_string(),
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn record(row: &SqliteRow) -> Result<Record, SessionError> {
    let n = |column: &str| -> Result<u64, SessionError> {
        let v: i64 = row.try_get(column).map_err(storage)?;
        u64::try_from(v).map_err(storage)
    };
    Ok(Record {
        id: row.try_get("id").map_err(storage)?,
        subject: row.try_get("subject").map_err(storage)?,
        data: row.try_get("data").map_err(storage)?,
        created_at_ms: n("created_ms")?,
        expires_at_ms: n("expires_ms")?,
        ttl_ms: n("ttl_ms")?,
        deadline_ms: n("deadline_ms")?,
        version: n("version")?,
    })
}

impl SqliteBackend {
    /// Opens (creating when missing) the file at `path`, with its folder, and its
    /// table; holds at most `max_sessions`.
    pub async fn open(path: &Path, max_sessions: usize) -> Result<Self, SessionError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(storage)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(storage)?;
        pool.execute(SCHEMA).await.map_err(storage)?;
        Ok(Self {
            pool,
            max_sessions,
            clock: Clock::new(),
        })
    }

    fn now(&self) -> i64 {
        int(self.clock.now_ms())
    }
}

#[plexus_core::async_trait]
impl SessionBackend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn create(&self, new: NewSession<'_>, cap: Cap) -> Result<Created, SessionError> {
        let now = self.clock.now_ms();
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM plexus_sessions WHERE subject = ?1 AND expires_ms > ?2 ORDER BY expires_ms, id",
        )
        .bind(new.subject)
        .bind(int(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(storage)?;
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plexus_sessions")
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
        let held = Held {
            now: usize::try_from(held).unwrap_or(usize::MAX),
            max: self.max_sessions,
        };
        let created = plan_create(&new, cap, now, live, held)?;
        for id in &created.evicted {
            sqlx::query("DELETE FROM plexus_sessions WHERE id = ?1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
        }
        let record = &created.record;
        sqlx::query(
            "INSERT INTO plexus_sessions (id, subject, data, created_ms, expires_ms, ttl_ms, deadline_ms, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)",
        )
        .bind(&record.id)
        .bind(&record.subject)
        .bind(&record.data)
        .bind(int(record.created_at_ms))
        .bind(int(record.expires_at_ms))
        .bind(int(record.ttl_ms))
        .bind(int(record.deadline_ms))
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(created)
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, SessionError> {
        let row = sqlx::query(
            "SELECT id, subject, data, created_ms, expires_ms, ttl_ms, deadline_ms, version FROM plexus_sessions WHERE id = ?1 AND expires_ms > ?2",
        )
        .bind(id)
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.as_ref().map(record).transpose()
    }

    async fn touch(&self, id: &str) -> Result<Option<Record>, SessionError> {
        let row = sqlx::query(
            "UPDATE plexus_sessions SET expires_ms = CASE WHEN deadline_ms > 0 AND deadline_ms < ?1 + ttl_ms THEN deadline_ms ELSE ?1 + ttl_ms END WHERE id = ?2 AND expires_ms > ?1 RETURNING id, subject, data, created_ms, expires_ms, ttl_ms, deadline_ms, version",
        )
        .bind(self.now())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.as_ref().map(record).transpose()
    }

    async fn replace(
        &self,
        id: &str,
        data: &str,
        expected: Option<u64>,
    ) -> Result<Option<Record>, SessionError> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM plexus_sessions WHERE id = ?1 AND expires_ms > ?2",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?;
        let Some(version) = version else {
            return Ok(None);
        };
        let actual = u64::try_from(version).map_err(storage)?;
        if let Some(expected) = expected.filter(|v| *v != actual) {
            return Err(SessionError::Conflict { expected, actual });
        }
        let row = sqlx::query(
            "UPDATE plexus_sessions SET data = ?1, version = version + 1 WHERE id = ?2 RETURNING id, subject, data, created_ms, expires_ms, ttl_ms, deadline_ms, version",
        )
        .bind(data)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        record(&row).map(Some)
    }

    async fn revoke(&self, id: &str) -> Result<Option<String>, SessionError> {
        sqlx::query_scalar(
            "DELETE FROM plexus_sessions WHERE id = ?1 AND expires_ms > ?2 RETURNING subject",
        )
        .bind(id)
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)
    }

    async fn revoke_subject(&self, subject: &str) -> Result<Vec<String>, SessionError> {
        sqlx::query_scalar(
            "DELETE FROM plexus_sessions WHERE subject = ?1 AND expires_ms > ?2 RETURNING id",
        )
        .bind(subject)
        .bind(self.now())
        .fetch_all(&self.pool)
        .await
        .map_err(storage)
    }

    async fn list(
        &self,
        subject: &str,
        offset: usize,
        limit: usize,
    ) -> Result<RecordPage, SessionError> {
        let rows = sqlx::query(
            "SELECT id, subject, data, created_ms, expires_ms, ttl_ms, deadline_ms, version FROM plexus_sessions WHERE subject = ?1 AND expires_ms > ?2 ORDER BY expires_ms, id LIMIT ?3 OFFSET ?4",
        )
        .bind(subject)
        .bind(self.now())
        .bind(int(limit as u64 + 1))
        .bind(int(offset as u64))
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(RecordPage {
            more: rows.len() > limit,
            records: rows
                .iter()
                .take(limit)
                .map(record)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn sweep(&self, max: usize) -> Result<Vec<Ended>, SessionError> {
        let rows = sqlx::query(
            "DELETE FROM plexus_sessions WHERE id IN (SELECT id FROM plexus_sessions WHERE expires_ms <= ?1 ORDER BY expires_ms LIMIT ?2) RETURNING id, subject",
        )
        .bind(self.now())
        .bind(int(max as u64))
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(Ended {
                    id: row.try_get("id").map_err(storage)?,
                    subject: row.try_get("subject").map_err(storage)?,
                })
            })
            .collect()
    }
}
