//! Transactional enqueue: jobs written in a DataStore transaction, in the same
//! database as the data, so a job exists only if the transaction commits.
//!
//! The seam is the store's [`DataStore::transaction_with`], which runs a closure on
//! the transaction's own session after the operations. [`Jobs::enqueue_in`] adds
//! one job on such a session (checked as [`Jobs::enqueue`] checks it), and
//! [`Jobs::transaction`] runs operations and jobs together and wakes the workers
//! after the commit. On PostgreSQL a job's unique key is held by an advisory lock
//! of the transaction, so a transaction that rolls back leaves no key held, and an
//! enqueue of the same key meanwhile waits for its outcome; on SQLite the write
//! transaction holds the file's lock, with the same effect.
//!
//! The jobs' tables must be in the DataStore's database (the default SQLite file;
//! on PostgreSQL, `jobs.postgres_url` and `jobs.postgres_schema` naming the
//! store's database and schema). A backend that keeps its jobs elsewhere (Redis)
//! cannot: both refuse with [`JobError::NotTransactional`] before anything is
//! written.

use std::sync::Arc;

use futures::FutureExt;
use plexus_core::CallContext;
use plexus_core::scope::Need;
use plexus_store::{
    BackendKind, DataStore, Op, OpResult, Param, Statement, StatementKind, StoreSession,
};

use crate::backend::NewJob;
use crate::jobs::{Enqueue, Enqueued};
use crate::sql::{self, json_text, scopes_text, to_i64};
use crate::{JobError, Jobs, postgres, sqlite};

/// The table, as the store's metrics name it.
const TABLE: &str = "plexus_jobs";

fn text_or_null(value: Option<&String>) -> Param {
    value.map_or(Param::Null, |v| Param::Text(v.clone()))
}

/// Adds `job` on `session`, inside its open transaction.
async fn insert(session: &mut StoreSession, job: &NewJob) -> Result<(i64, bool), JobError> {
    let kind = session.store().kind();
    let since = job.created_at.saturating_sub(to_i64(job.unique_window_ms));
    if let (BackendKind::Postgres, Some(key)) = (kind, &job.unique_key) {
        let lock = Statement::new(
            Arc::from(postgres::UNIQUE_LOCK),
            vec![Param::Text(job.queue.clone()), Param::Text(key.clone())],
        );
        session.execute(StatementKind::Other, TABLE, &lock).await?;
    }
    let insert = match kind {
        BackendKind::Sqlite => sqlite::INSERT,
        BackendKind::Postgres => postgres::INSERT,
    };
    let params = vec![
        Param::Text(job.queue.clone()),
        Param::Text(job.target.clone()),
        Param::Json(json_text(&job.params)),
        Param::Int(i64::from(job.priority)),
        Param::Int(i64::from(job.max_attempts)),
        Param::Int(to_i64(job.backoff_ms)),
        Param::Int(to_i64(job.timeout_ms)),
        Param::Int(job.run_at),
        Param::Int(job.created_at),
        text_or_null(job.unique_key.as_ref()),
        Param::Json(json_text(&job.metadata)),
        text_or_null(job.caller.as_ref()),
        scopes_text(job.scopes.as_ref()).map_or(Param::Null, Param::Json),
        Param::Int(since),
    ];
    let stmt = Statement::new(Arc::from(insert), params);
    if let Some(id) = session
        .fetch_i64(StatementKind::Insert, TABLE, &stmt)
        .await?
    {
        return Ok((id, true));
    }
    let holder = Statement::new(
        Arc::from(sql::UNIQUE_HOLDER),
        vec![
            Param::Text(job.queue.clone()),
            text_or_null(job.unique_key.as_ref()),
            Param::Int(since),
        ],
    );
    let id = session
        .fetch_i64(StatementKind::Get, TABLE, &holder)
        .await?
        .ok_or_else(|| JobError::Unavailable {
            reason: "the job holding the unique key went away meanwhile; try again".to_owned(),
        })?;
    Ok((id, false))
}

impl Jobs {
    /// Refuses a transactional enqueue on a backend outside the store.
    fn transactional(&self) -> Result<(), JobError> {
        if self.backend().transactional() {
            Ok(())
        } else {
            Err(JobError::NotTransactional {
                backend: self.backend().name(),
            })
        }
    }

    /// Adds a job as `ctx`'s caller, after every check, inside the open transaction
    /// of `session` (a DataStore session, as [`DataStore::transaction_with`] hands
    /// out): it exists only if that transaction commits. The workers learn of it
    /// at their next poll, or at once with [`Jobs::wake`] after the commit.
    pub async fn enqueue_in(
        &self,
        session: &mut StoreSession,
        req: Enqueue,
        ctx: &CallContext,
    ) -> Result<Enqueued, JobError> {
        self.transactional()?;
        let job = self
            .check(req, ctx)
            .inspect_err(|_| self.metrics().refused())?;
        let (id, created) = insert(session, &job).await?;
        Ok(Enqueued { id, created })
    }

    /// [`Jobs::transaction`] on the node's DataStore ([`Jobs::set_datastore`]), as
    /// `ctx`'s caller: what `jobs.transaction` runs. The caller must be allowed to
    /// call `datastore.transaction` as well (its data changes are that call's), and
    /// each job's target as `jobs.enqueue` checks it.
    pub async fn transaction_of(
        &self,
        ops: Vec<Op>,
        jobs: Vec<Enqueue>,
        ctx: &CallContext,
    ) -> Result<(Vec<OpResult>, Vec<Enqueued>), JobError> {
        ctx.check(Need::Call("datastore.transaction"))?;
        self.transactional()?;
        let store = self.datastore().ok_or(JobError::NoDataStore)?.clone();
        // The jobs' tables must be in the store's database: at least its engine.
        if store.store().kind().as_str() != self.backend().name() {
            return Err(JobError::NotTransactional {
                backend: self.backend().name(),
            });
        }
        self.transaction(&store, ops, jobs, ctx).await
    }

    /// Runs `ops` as [`DataStore::transaction`] does and adds `jobs` in the same
    /// transaction: the data change and its jobs commit together or not at all.
    /// Every job is checked before anything runs; after the commit the workers
    /// are woken.
    pub async fn transaction(
        &self,
        store: &DataStore,
        ops: Vec<Op>,
        jobs: Vec<Enqueue>,
        ctx: &CallContext,
    ) -> Result<(Vec<OpResult>, Vec<Enqueued>), JobError> {
        self.transactional()?;
        let checked = jobs
            .into_iter()
            .enumerate()
            .map(|(i, req)| {
                self.check(req, ctx).map_err(|e| match e {
                    JobError::Invalid { field, reason } => {
                        JobError::invalid(format!("/jobs/{i}{field}"), reason)
                    }
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .inspect_err(|_| self.metrics().refused())?;
        let (results, added) = store
            .transaction_with(ops, move |session| {
                async move {
                    let mut added = Vec::with_capacity(checked.len());
                    for job in &checked {
                        let (id, created) = insert(session, job).await?;
                        added.push(Enqueued { id, created });
                    }
                    Ok::<_, JobError>(added)
                }
                .boxed()
            })
            .await?;
        for job in &added {
            self.metrics().enqueued(job.created);
        }
        if added.iter().any(|j| j.created) {
            self.wake();
        }
        Ok((results, added))
    }
}
