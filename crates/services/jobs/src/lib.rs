//! The Jobs family: a job queue whose jobs are **deferred calls**. A job's target is
//! any registered method (`"email.send"`), run through the node's call path (schema
//! check, breaker, balancer, metrics, audit) as the caller that enqueued it, so any
//! service in any language that answers calls runs jobs, with no worker library.
//!
//! - `config`: the `[jobs]` section ([`JobsConfig`]).
//! - [`JobBackend`]: what a backend does, one step per operation;
//!   [`SqliteBackend`] (the embedded default, in the DataStore's file),
//!   [`PostgresBackend`] (several nodes on one database, `FOR UPDATE SKIP LOCKED`)
//!   and [`RedisBackend`] (several nodes on one Redis/Valkey server, every step one
//!   Lua script, so atomic; see its page for what is and is not guaranteed).
//! - [`Jobs`]: enqueue checks naming the field, and the node's workers (priority,
//!   then `run_at`, then arrival; per-queue concurrency; leases renewed and
//!   recovered; retries with exponential backoff and jitter; dead letters with
//!   their error history; results stored; bus events `jobs.<queue>.completed`,
//!   `failed`, `dead`, `stalled`).
//! - Transactional enqueue ([`Jobs::transaction`], [`Jobs::enqueue_in`]): jobs
//!   added in a DataStore transaction, existing only if it commits (SQLite and
//!   PostgreSQL; Redis refuses it with [`JobError::NotTransactional`]).
//! - Recurring schedules ([`Jobs::schedule`]): cron patterns in a time zone, each
//!   fire time enqueued once across nodes.
//! - [`JobService`]: the `jobs.*` methods.
//! - [`JobsFamily`]: the [`Family`](plexus_node::family::Family) door.
//! - [`JobMetrics`]: its counters, named `plexus_jobs_*`.
//! - `conformance` (feature `test-util`): the suite every backend passes.
//!
//! The attempt number reaches the target in the header `plexus-job-attempt`
//! ([`HEADER_ATTEMPT`]): 1 on the first run, then 2, 3… on retries and after a
//! recovered lease, so a target can make itself idempotent; a target in another
//! process finds it in the request's `plexus.headers` (docs/external-services.md).
//!
//! ## Feature flags
//! - `test-util`: the conformance suite ([`conformance`]).

mod backend;
mod batch;
pub mod config;
mod error;
mod family;
mod jobs;
mod metrics;
mod pace;
mod postgres;
mod redis;
mod schedule;
mod service;
mod sql;
mod sqlite;
mod transaction;

#[cfg(feature = "test-util")]
pub mod conformance;

pub use backend::{
    Job, JobBackend, JobState, ListFilter, NewJob, QueueStats, ScheduleRow, Stalled,
};
pub use config::{BackendChoice, JobsConfig};
pub use error::JobError;
pub use family::JobsFamily;
pub use jobs::{
    Clock, Enqueue, Enqueued, HEADER_ATTEMPT, HEADER_ID, HEADER_QUEUE, Jobs, check_queue,
};
pub use metrics::{Counts, JobMetrics};
pub use postgres::{PostgresBackend, PostgresOptions};
pub use redis::{REQUEUE_BATCH, RedisBackend};
pub use schedule::{Schedule, next_fire};
pub use service::JobService;
pub use sqlite::SqliteBackend;
