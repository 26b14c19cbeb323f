//! What the SQL backends ([`SqliteBackend`](crate::SqliteBackend) and
//! [`PostgresBackend`](crate::PostgresBackend)) share: the statements both engines
//! run unchanged (`$N` placeholders, which SQLite accepts), reading a job row into a
//! [`Job`] whatever the engine, and folding per-queue counts into [`QueueStats`].
//!
//! What differs stays in each backend: the tables' types (JSON as text or `jsonb`),
//! how a list is bound (`json_each` or `= ANY`), and how a unique key is held while a
//! job is added (SQLite's single writer, PostgreSQL's advisory lock). The steps
//! that are the same statement with the same bindings on both are written once,
//! in [`sql_backend!`], which writes each backend's `impl JobBackend` around the
//! steps of its own.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::backend::{JobState, QueueStats, ScheduleRow, Stalled};
use crate::{Job, JobError};

/// Renews a worker's lease: `$1` id, `$2` worker, `$3` new end.
pub(crate) const RENEW: &str = "UPDATE plexus_jobs SET lease_until = $3
     WHERE id = $1 AND worker = $2 AND state = 'running'";

/// Cancels a pending or running job: `$1` id, `$2` now.
pub(crate) const CANCEL: &str = "UPDATE plexus_jobs SET state = 'cancelled', finished_at = $2,
         worker = NULL, lease_until = NULL
     WHERE id = $1 AND state IN ('pending', 'running')";

/// Requeues every dead job (of queue `$2`, or of all when null), due at `$1`.
pub(crate) const REQUEUE_DEAD: &str = "UPDATE plexus_jobs SET state = 'pending', attempt = 0,
         run_at = $1, finished_at = NULL, worker = NULL, lease_until = NULL
     WHERE state = 'dead' AND ($2 IS NULL OR queue = $2)";

/// Counts by queue and state (of queue `$1`, or of all when null).
pub(crate) const STATS_COUNTS: &str = "SELECT queue, state, count(*) AS n FROM plexus_jobs
     WHERE $1 IS NULL OR queue = $1 GROUP BY queue, state";

/// The queues' paused flags (of queue `$1`, or of all when null).
pub(crate) const STATS_PAUSED: &str =
    "SELECT queue, paused FROM plexus_job_queues WHERE $1 IS NULL OR queue = $1";

/// Sets queue `$1`'s paused flag to `$2`.
pub(crate) const SET_PAUSED: &str = "INSERT INTO plexus_job_queues (queue, paused) VALUES ($1, $2)
     ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused";

/// The earliest `run_at` after `$1` of a waiting job of a queue that is not paused.
pub(crate) const NEXT_DUE: &str = "SELECT min(run_at) FROM plexus_jobs
     WHERE state = 'pending' AND run_at > $1
         AND queue NOT IN (SELECT queue FROM plexus_job_queues WHERE paused)";

/// The existing job holding a unique key: `$1` queue, `$2` key, `$3` window start.
pub(crate) const UNIQUE_HOLDER: &str = "SELECT id FROM plexus_jobs
     WHERE queue = $1 AND unique_key = $2 AND created_at > $3 AND state <> 'cancelled'
     ORDER BY id DESC LIMIT 1";

/// The schedules' table, the same on both engines (the job template is text).
pub(crate) const SCHEDULES_TABLE: &str = "
CREATE TABLE IF NOT EXISTS plexus_job_schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    job TEXT NOT NULL,
    next_at BIGINT NOT NULL
);
";

/// The rate limits' buckets, one per queue, shared by every node.
pub(crate) const RATES_TABLE: &str = "
CREATE TABLE IF NOT EXISTS plexus_job_rates (
    queue TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at BIGINT NOT NULL,
    granted BIGINT NOT NULL
);
";

/// Adds or replaces a schedule: `$1` name, `$2` cron, `$3` zone, `$4` job, `$5` next.
pub(crate) const PUT_SCHEDULE: &str =
    "INSERT INTO plexus_job_schedules (name, cron, timezone, job, next_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone,
         job = excluded.job, next_at = excluded.next_at";

/// Removes schedule `$1`.
pub(crate) const REMOVE_SCHEDULE: &str = "DELETE FROM plexus_job_schedules WHERE name = $1";

/// The schedules (due at `$1`, or all when null), by name.
pub(crate) const SCHEDULES: &str = "SELECT name, cron, timezone, job, next_at
     FROM plexus_job_schedules WHERE $1 IS NULL OR next_at <= $1 ORDER BY name";

/// Claims fire time `$2` of schedule `$1` by moving its next fire time to `$3`.
pub(crate) const ADVANCE_SCHEDULE: &str =
    "UPDATE plexus_job_schedules SET next_at = $3 WHERE name = $1 AND next_at = $2";

/// Writes `impl JobBackend for $backend` (a type with a sqlx `pool`): the steps
/// given in braces (the ones that differ between the engines); the steps that
/// bind and read the same on both with the engine's own statement (the five in
/// brackets: `complete`, `fail`, `recover`, `get`, `list`); and the ones both run
/// unchanged: the lease renewal, cancel, stats, pause, the next due time and the
/// schedules. Jobs in SQL are in the DataStore's database, so `transactional`.
macro_rules! sql_backend {
    ($backend:ty [$insert:expr, $unique_lock:expr, $notify:expr, $claim_more:expr, $take_tokens:expr, $return_tokens:expr, $progress:expr, $fail:expr, $recover:expr, $get:expr, $list:expr] {
        $($own:tt)*
    }) => {
        #[plexus_core::async_trait]
        impl $crate::backend::JobBackend for $backend {
            $($own)*

            async fn claim_more(
                &self,
                queue: &str,
                now: i64,
                worker: &str,
                lease_until: i64,
                limit: usize,
            ) -> Result<Vec<$crate::Job>, $crate::JobError> {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query($claim_more)
                    .bind(worker)
                    .bind(lease_until)
                    .bind(queue)
                    .bind(now)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                let mut jobs = rows
                    .iter()
                    .map($crate::sql::job_of)
                    .collect::<Result<Vec<_>, _>>()?;
                // `RETURNING` keeps no order: best first, as they were chosen.
                jobs.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.run_at, j.id));
                Ok(jobs)
            }

            async fn take_tokens(
                &self,
                queue: &str,
                rate: u32,
                now: i64,
                want: u32,
            ) -> Result<(u32, f64), $crate::JobError> {
                let (granted, left): (i64, f64) = sqlx::query_as($take_tokens)
                    .bind(queue)
                    .bind(i64::from(rate))
                    .bind(now)
                    .bind(i64::from(want))
                    .fetch_one(&self.pool)
                    .await?;
                Ok((u32::try_from(granted.max(0)).unwrap_or(0), left))
            }

            async fn return_tokens(
                &self,
                queue: &str,
                rate: u32,
                n: u32,
            ) -> Result<(), $crate::JobError> {
                sqlx::query($return_tokens)
                    .bind(queue)
                    .bind(i64::from(rate))
                    .bind(i64::from(n))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn progress(
                &self,
                id: i64,
                attempt: u32,
                progress: &serde_json::Value,
            ) -> Result<Option<String>, $crate::JobError> {
                Ok(sqlx::query_scalar($progress)
                    .bind(id)
                    .bind(i64::from(attempt))
                    .bind($crate::sql::json_text(progress))
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn fail(
                &self,
                id: i64,
                worker: &str,
                now: i64,
                error: &serde_json::Value,
                retry_at: Option<i64>,
                keep: usize,
            ) -> Result<bool, $crate::JobError> {
                let done = sqlx::query($fail)
                    .bind(id)
                    .bind(worker)
                    .bind(now)
                    .bind(retry_at)
                    .bind($crate::sql::json_text(error))
                    .bind(i64::try_from(keep).unwrap_or(i64::MAX))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn recover(&self, now: i64) -> Result<Vec<$crate::Stalled>, $crate::JobError> {
                let rows = sqlx::query($recover).bind(now).fetch_all(&self.pool).await?;
                rows.iter().map($crate::sql::stalled_of).collect()
            }

            async fn get(&self, id: i64) -> Result<Option<$crate::Job>, $crate::JobError> {
                let row = sqlx::query($get).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map($crate::sql::job_of).transpose()
            }

            async fn list(
                &self,
                filter: &$crate::ListFilter,
            ) -> Result<Vec<$crate::Job>, $crate::JobError> {
                let rows = sqlx::query($list)
                    .bind(&filter.queue)
                    .bind(filter.state.map($crate::JobState::as_str))
                    .bind(filter.after.unwrap_or(0))
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($crate::sql::job_of).collect()
            }

            fn transactional(&self) -> bool {
                true
            }

            async fn renew(
                &self,
                id: i64,
                worker: &str,
                lease_until: i64,
            ) -> Result<bool, $crate::JobError> {
                let done = sqlx::query($crate::sql::RENEW)
                    .bind(id)
                    .bind(worker)
                    .bind(lease_until)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn cancel(&self, id: i64, now: i64) -> Result<bool, $crate::JobError> {
                let done = sqlx::query($crate::sql::CANCEL)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn stats(
                &self,
                queue: Option<&str>,
            ) -> Result<Vec<$crate::QueueStats>, $crate::JobError> {
                let counts = sqlx::query_as($crate::sql::STATS_COUNTS)
                    .bind(queue)
                    .fetch_all(&self.pool)
                    .await?;
                let paused = sqlx::query_as($crate::sql::STATS_PAUSED)
                    .bind(queue)
                    .fetch_all(&self.pool)
                    .await?;
                Ok($crate::sql::fold_stats(paused, counts))
            }

            async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), $crate::JobError> {
                sqlx::query($crate::sql::SET_PAUSED)
                    .bind(queue)
                    .bind(paused)
                    .execute(&self.pool)
                    .await?;
                if !paused {
                    self.announce(queue).await?;
                }
                Ok(())
            }

            async fn next_due(&self, after: i64) -> Result<Option<i64>, $crate::JobError> {
                Ok(sqlx::query_scalar($crate::sql::NEXT_DUE)
                    .bind(after)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn put_schedule(
                &self,
                schedule: &$crate::ScheduleRow,
            ) -> Result<(), $crate::JobError> {
                sqlx::query($crate::sql::PUT_SCHEDULE)
                    .bind(&schedule.name)
                    .bind(&schedule.cron)
                    .bind(&schedule.timezone)
                    .bind($crate::sql::json_text(&schedule.job))
                    .bind(schedule.next_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn remove_schedule(&self, name: &str) -> Result<bool, $crate::JobError> {
                let done = sqlx::query($crate::sql::REMOVE_SCHEDULE)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn schedules(
                &self,
                due: Option<i64>,
            ) -> Result<Vec<$crate::ScheduleRow>, $crate::JobError> {
                let rows = sqlx::query($crate::sql::SCHEDULES)
                    .bind(due)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($crate::sql::schedule_of).collect()
            }

            async fn advance_schedule(
                &self,
                name: &str,
                from: i64,
                to: i64,
            ) -> Result<bool, $crate::JobError> {
                let done = sqlx::query($crate::sql::ADVANCE_SCHEDULE)
                    .bind(name)
                    .bind(from)
                    .bind(to)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        impl $backend {
            /// Adds `jobs` one statement each, in one transaction (what
            /// `enqueue_many` does on SQLite, and on PostgreSQL with unique keys).
            pub(crate) async fn enqueue_each(
                &self,
                jobs: &[$crate::backend::NewJob],
            ) -> Result<Vec<(i64, bool)>, $crate::JobError> {
                let unique_lock: Option<&str> = $unique_lock;
                let notify: Option<&str> = $notify;
                let mut tx = self.pool.begin().await?;
                // Every unique key of the batch locked first, in one order, so two
                // nodes' batches never wait on each other in a circle.
                if let Some(lock) = unique_lock {
                    let mut keys: Vec<(&str, &str)> = jobs
                        .iter()
                        .filter_map(|j| j.unique_key.as_deref().map(|k| (j.queue.as_str(), k)))
                        .collect();
                    keys.sort_unstable();
                    keys.dedup();
                    for (queue, key) in keys {
                        sqlx::query(lock).bind(queue).bind(key).execute(&mut *tx).await?;
                    }
                }
                let mut added = Vec::with_capacity(jobs.len());
                let mut woken: Vec<&str> = Vec::new();
                for job in jobs {
                    let since = job
                        .created_at
                        .saturating_sub($crate::sql::to_i64(job.unique_window_ms));
                    let inserted: Option<i64> = sqlx::query_scalar($insert)
                        .bind(&job.queue)
                        .bind(&job.target)
                        .bind($crate::sql::json_text(&job.params))
                        .bind(job.priority)
                        .bind(i64::from(job.max_attempts))
                        .bind($crate::sql::to_i64(job.backoff_ms))
                        .bind($crate::sql::to_i64(job.timeout_ms))
                        .bind(job.run_at)
                        .bind(job.created_at)
                        .bind(&job.unique_key)
                        .bind($crate::sql::json_text(&job.metadata))
                        .bind(&job.caller)
                        .bind($crate::sql::scopes_text(job.scopes.as_ref()))
                        .bind(since)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(id) = inserted {
                        added.push((id, true));
                        if !woken.contains(&job.queue.as_str()) {
                            woken.push(&job.queue);
                        }
                        continue;
                    }
                    let holder: Option<i64> = sqlx::query_scalar($crate::sql::UNIQUE_HOLDER)
                        .bind(&job.queue)
                        .bind(&job.unique_key)
                        .bind(since)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let id = holder.ok_or_else(|| $crate::JobError::Unavailable {
                        reason: "the job holding the unique key went away meanwhile; try again"
                            .to_owned(),
                    })?;
                    added.push((id, false));
                }
                if let Some(notify) = notify {
                    for queue in woken {
                        sqlx::query(notify).bind(queue).execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(added)
            }
        }
    };
}
pub(crate) use sql_backend;

/// Reads a schedule row.
pub(crate) fn schedule_of<R>(row: &R) -> Result<ScheduleRow, JobError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ScheduleRow {
        name: col(row, "name")?,
        cron: col(row, "cron")?,
        timezone: col(row, "timezone")?,
        job: parse_json(&col::<_, String>(row, "job")?)?,
        next_at: col(row, "next_at")?,
    })
}

/// JSON as stored.
pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// The scopes as stored (JSON text), when the caller had any.
pub(crate) fn scopes_text(scopes: Option<&Vec<String>>) -> Option<String> {
    scopes.map(|s| Value::from(s.clone()).to_string())
}

fn parse_json(text: &str) -> Result<Value, JobError> {
    crate::backend::json_of("JSON", text)
}

/// A count or size read from the database (never negative in practice).
pub(crate) fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// A count or size read from the database (never negative in practice).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(0)
}

/// A size as a database integer.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Column `name` of `row` as `T`.
fn col<'r, R, T>(row: &'r R, name: &'r str) -> Result<T, JobError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(row.try_get(name)?)
}

/// Reads a job row: the JSON columns as text (PostgreSQL selects them `::text`).
pub(crate) fn job_of<R>(row: &R) -> Result<Job, JobError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
{
    let state = crate::backend::state_of(&col::<_, String>(row, "state")?)?;
    let result: Option<String> = col(row, "result")?;
    let progress: Option<String> = col(row, "progress")?;
    let errors = match parse_json(&col::<_, String>(row, "errors")?)? {
        Value::Array(items) => items,
        other => vec![other],
    };
    let scopes: Option<String> = col(row, "scopes")?;
    let scopes = crate::backend::scopes_of(scopes.as_deref())?;
    Ok(Job {
        id: col(row, "id")?,
        queue: col(row, "queue")?,
        target: col(row, "target")?,
        params: parse_json(&col::<_, String>(row, "params")?)?,
        priority: col(row, "priority")?,
        state,
        attempt: to_u32(col(row, "attempt")?),
        max_attempts: to_u32(col(row, "max_attempts")?),
        backoff_ms: to_u64(col(row, "backoff_ms")?),
        timeout_ms: to_u64(col(row, "timeout_ms")?),
        run_at: col(row, "run_at")?,
        created_at: col(row, "created_at")?,
        finished_at: col(row, "finished_at")?,
        worker: col(row, "worker")?,
        lease_until: col(row, "lease_until")?,
        result: result.as_deref().map(parse_json).transpose()?,
        progress: progress.as_deref().map(parse_json).transpose()?,
        errors,
        unique_key: col(row, "unique_key")?,
        metadata: parse_json(&col::<_, String>(row, "metadata")?)?,
        caller: col(row, "caller")?,
        scopes,
    })
}

/// Reads a recovered job's row: `id, queue, attempt, state`.
pub(crate) fn stalled_of<R>(row: &R) -> Result<Stalled, JobError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = col(row, "state")?;
    Ok(Stalled {
        id: col(row, "id")?,
        queue: col(row, "queue")?,
        attempt: to_u32(col(row, "attempt")?),
        dead: state == "dead",
    })
}

/// Folds the paused flags and the `(queue, state, count)` rows into each queue's
/// counts, in queue order.
pub(crate) fn fold_stats(
    paused: Vec<(String, bool)>,
    counts: Vec<(String, String, i64)>,
) -> Vec<QueueStats> {
    let mut out = BTreeMap::<String, QueueStats>::new();
    for (queue, p) in paused {
        entry(&mut out, queue).paused = p;
    }
    for (queue, state, n) in counts {
        let n = to_u64(n);
        let s = entry(&mut out, queue);
        match JobState::parse(&state) {
            Some(JobState::Pending) => s.pending = n,
            Some(JobState::Running) => s.running = n,
            Some(JobState::Completed) => s.completed = n,
            Some(JobState::Dead) => s.dead = n,
            Some(JobState::Cancelled) => s.cancelled = n,
            None => {}
        }
    }
    out.into_values().collect()
}

fn entry(out: &mut BTreeMap<String, QueueStats>, queue: String) -> &mut QueueStats {
    out.entry(queue.clone()).or_insert_with(|| QueueStats {
        queue,
        ..QueueStats::default()
    })
}
