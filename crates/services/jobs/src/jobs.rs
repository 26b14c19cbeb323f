//! [`Jobs`]: the queue every backend is used through. It checks each enqueue
//! (naming the field: the target must be a registered method whose params schema
//! the params pass, the caller must be allowed to call it, sizes and times are
//! bounded), and runs the node's share of the work:
//!
//! - one dispatcher task claims due jobs (highest priority, then earliest `run_at`,
//!   then oldest), at most `max_running` targets at once and `concurrency` per
//!   queue (a slot is free once its target answered, while the outcome is stored,
//!   with at most `max_running` outcomes waiting to be), the
//!   queues taking turns and each held to its rate in `jobs.rates`, a bucket of
//!   tokens in the backend shared by every node (`Pace`); a
//!   queue's turn is its best due job, then up to `batch − 1` more of its due jobs
//!   in one step of the backend ([`JobBackend::claim_more`]); it is
//!   woken by every local enqueue, every ended job and every clock advance, or else
//!   polls every `poll_ms`; it looks for expired leases and due schedules once a
//!   poll;
//! - each claimed job is a **deferred call**: it goes through the node's call path
//!   ([`Node::call`]) as the caller that enqueued it (identity and scopes), with the
//!   job's per-attempt timeout and the headers `plexus-job-id`,
//!   `plexus-job-queue` and `plexus-job-attempt` (1 on the first run, 2 on the first
//!   retry or recovery…; the context's own `attempt` belongs to the call path's
//!   retries, so the job's is a header), so a target can be idempotent;
//! - its worker renews its lease every third of `lease_ms`; a job whose lease ran out
//!   (its worker or node died) is recovered by any node's dispatcher and run again
//!   (event `jobs.<queue>.stalled`), or is dead if that was its last attempt;
//! - a failed attempt waits `backoff_ms × 2^(attempt−1)` (at most
//!   `max_backoff_ms`), less a random part of up to half ("equal jitter"), then runs
//!   again (event `jobs.<queue>.failed`); past `max_attempts` it is dead with its
//!   error history (`jobs.<queue>.dead`); an answer is stored as the job's result
//!   (`jobs.<queue>.completed`) by the completer, a task that stores every result
//!   waiting (up to `batch`) in one step ([`JobBackend::complete_many`]), so a busy
//!   queue commits once per batch, not once per job.
//!
//! Times come from a [`Clock`]: the system's, or a manual one tests move.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use plexus_core::scope::{Need, Scope};
use plexus_core::{CallContext, Envelope, Payload, Topic};
use plexus_node::schema::ParamsSchema;
use plexus_node::{CallError, Node, WeakNode};
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::backend::{JobBackend, ListFilter, NewJob, QueueStats};
use crate::batch::{self, Batcher, Requests};
use crate::pace::Pace;
use crate::{Job, JobError, JobMetrics, JobState, JobsConfig, SqliteBackend};

/// The header carrying the job's id to its target.
pub const HEADER_ID: &str = "plexus-job-id";
/// The header carrying the job's queue.
pub const HEADER_QUEUE: &str = "plexus-job-queue";
/// The header carrying the attempt number (1, 2, …).
pub const HEADER_ATTEMPT: &str = "plexus-job-attempt";

/// The longest unique key, in bytes.
const MAX_UNIQUE_KEY: usize = 256;
/// The unique window of a job that gives a key and no window: a day.
const DEFAULT_UNIQUE_WINDOW_MS: u64 = 86_400_000;
/// Priorities run from -1000 to 1000.
const MAX_PRIORITY: i32 = 1_000;

/// Whether `queue` is a queue name: a-z, 0-9, `_` and `-`, 1 to 64 bytes (it is a
/// segment of the events' topics).
pub fn check_queue(queue: &str) -> Result<(), JobError> {
    let ok = (1..=64).contains(&queue.len())
        && queue
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(JobError::invalid(
            "/queue",
            "is not a queue name (a-z, 0-9, _ and -, 1 to 64 bytes)",
        ))
    }
}

/// Whether `value`, as JSON, is at most `max` bytes (`jobs.max_params_bytes`);
/// else the refusal naming `field`.
fn check_size(field: &str, value: &Value, max: usize) -> Result<(), JobError> {
    let size = value.to_string().len();
    if size > max {
        return Err(JobError::invalid(
            field,
            format!("is {size} bytes, more than jobs.max_params_bytes ({max})"),
        ));
    }
    Ok(())
}

/// Where the queue's times come from: milliseconds since the Unix epoch.
#[derive(Clone, Debug)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
    moved: Arc<Notify>,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self {
            manual: None,
            moved: Arc::new(Notify::new()),
        }
    }

    /// A clock that stands at `start_ms` until [`advance`](Self::advance)d (tests).
    pub fn manual(start_ms: i64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(start_ms))),
            moved: Arc::new(Notify::new()),
        }
    }

    /// Now.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(at) => at.load(Ordering::Acquire),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// Moves a manual clock on by `by` and wakes the dispatchers (no effect on the
    /// system clock).
    pub fn advance(&self, by: Duration) {
        if let Some(at) = &self.manual {
            at.fetch_add(millis(by), Ordering::AcqRel);
            self.moved.notify_waiters();
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Params of an enqueue (`jobs.enqueue`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Enqueue {
    /// The queue (default `default`): a-z, 0-9, `_` and `-`, 1 to 64 bytes.
    #[serde(default)]
    pub queue: Option<String>,
    /// The method the job calls, `service.method`: a registered one.
    pub target: String,
    /// The params of the call, checked against the target's schema now.
    #[serde(default)]
    pub params: Value,
    /// Higher runs first, -1000 to 1000 (default 0).
    #[serde(default)]
    pub priority: i32,
    /// When to run first, in ms since the Unix epoch (default now).
    #[serde(default)]
    pub run_at: Option<i64>,
    /// Or: how long from now, in milliseconds (not negative).
    #[serde(default)]
    pub delay_ms: Option<i64>,
    /// Attempts before the job is dead (default `jobs.default_max_attempts`).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The first retry's delay in ms (default `jobs.backoff_ms`); doubles each time.
    #[serde(default)]
    pub backoff_ms: Option<u64>,
    /// One attempt's time limit in ms (default `jobs.timeout_ms`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// No second job with this key is added to the queue within the window: the
    /// enqueue answers the existing job (`created: false`).
    #[serde(default)]
    pub unique_key: Option<String>,
    /// The unique key's window in ms (default a day).
    #[serde(default)]
    pub unique_window_ms: Option<u64>,
    /// Free metadata kept with the job.
    #[serde(default)]
    pub metadata: Value,
}

/// What an enqueue answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Enqueued {
    /// The job's id.
    pub id: i64,
    /// False when an existing job with the same unique key was answered instead.
    pub created: bool,
}

struct Inner {
    backend: Arc<dyn JobBackend>,
    config: JobsConfig,
    metrics: JobMetrics,
    clock: Clock,
    node: OnceLock<WeakNode>,
    wake: Notify,
    worker: String,
    running: Mutex<HashMap<String, usize>>,
    pace: Pace,
    /// Targets running on this node (at most `max_running`).
    total: AtomicUsize,
    /// Attempts whose target answered and whose outcome is being stored (at
    /// most `max_running`): their slot is free for the next job, and this bound
    /// holds claims back while the backend is slower to store than targets are
    /// to answer.
    storing: AtomicUsize,
    started: AtomicBool,
    closed: AtomicBool,
    /// Results waiting to be stored, in batches, by the completer: `(id, result)`
    /// answered with whether it was stored (false: the job was no longer this
    /// worker's) and the result back, or `None` when storing failed.
    finished: Batcher<Done, Stored>,
    /// The completer's end, until it starts.
    finished_rx: Mutex<Option<Requests<Done, Stored>>>,
    /// Enqueues waiting to be written, in batches, by the inserter (started at
    /// the first enqueue).
    added: OnceLock<Batcher<NewJob, Added>>,
    /// The node's DataStore, for `jobs.transaction`.
    datastore: OnceLock<plexus_store::DataStore>,
}

/// A finished attempt's job id and result, to store.
type Done = (i64, Value);
/// Whether a result was stored, with the result back; `None` when storing failed.
type Stored = Option<(bool, Value)>;
/// An enqueue's id and whether it is new.
type Added = Result<(i64, bool), JobError>;

/// The job queue; clones share it.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("backend", &self.inner.backend.name())
            .field("worker", &self.inner.worker)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// The queue over `backend`.
    pub fn new(
        backend: Arc<dyn JobBackend>,
        config: JobsConfig,
        metrics: JobMetrics,
        clock: Clock,
    ) -> Self {
        let worker = format!(
            "{}-{:016x}",
            std::process::id(),
            rand::rng().random::<u64>()
        );
        let pace = Pace::new(config.rates.clone());
        // Each running job has at most one result waiting: never full.
        let (finished, finished_rx) = Batcher::new(config.max_running);
        Self {
            inner: Arc::new(Inner {
                backend,
                config,
                metrics,
                clock,
                node: OnceLock::new(),
                wake: Notify::new(),
                worker,
                running: Mutex::new(HashMap::new()),
                pace,
                total: AtomicUsize::new(0),
                storing: AtomicUsize::new(0),
                started: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                finished,
                finished_rx: Mutex::new(Some(finished_rx)),
                added: OnceLock::new(),
                datastore: OnceLock::new(),
            }),
        }
    }

    /// The queue in the SQLite file at `url`.
    pub async fn sqlite(url: &str, config: JobsConfig) -> Result<Self, JobError> {
        let backend = SqliteBackend::connect_with(url, config.pool_size).await?;
        Ok(Self::new(
            Arc::new(backend),
            config,
            JobMetrics::new(),
            Clock::system(),
        ))
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn JobBackend> {
        &self.inner.backend
    }

    /// The settings in force.
    pub fn config(&self) -> &JobsConfig {
        &self.inner.config
    }

    /// The counters.
    pub fn metrics(&self) -> &JobMetrics {
        &self.inner.metrics
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// This node's worker id (what `Job::worker` shows while it runs a job).
    pub fn worker_id(&self) -> &str {
        &self.inner.worker
    }

    /// Gives the queue its node: enqueues check targets in its registry, and (with
    /// `workers`) the dispatcher starts, on the current runtime. Once only.
    pub fn attach(&self, node: &Node) {
        if self.inner.node.set(node.downgrade()).is_err() {
            return;
        }
        if self.inner.config.workers && !self.inner.started.swap(true, Ordering::AcqRel) {
            let jobs = self.clone();
            tokio::spawn(async move { jobs.dispatch().await });
            if let Some(requests) = self.inner.finished_rx.lock().take() {
                let queue = Arc::downgrade(&self.inner);
                let max = self.inner.config.batch;
                tokio::spawn(batch::serve(requests, max, move |done| {
                    complete(queue.clone(), done)
                }));
            }
        }
    }

    /// Gives the queue the node's DataStore, for [`Jobs::transaction_of`] (the
    /// `jobs.transaction` method). Once only.
    pub fn set_datastore(&self, datastore: plexus_store::DataStore) {
        let _ = self.inner.datastore.set(datastore);
    }

    /// The node's DataStore, when it was given one.
    pub fn datastore(&self) -> Option<&plexus_store::DataStore> {
        self.inner.datastore.get()
    }

    /// Wakes this node's dispatcher to look for due jobs now (after a transaction
    /// that added jobs committed).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Stops the dispatcher (running attempts finish; their jobs stay leased until
    /// they do).
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake.notify_waiters();
    }

    fn node(&self) -> Result<Node, JobError> {
        self.inner
            .node
            .get()
            .and_then(WeakNode::upgrade)
            .ok_or_else(|| JobError::Unavailable {
                reason: "the jobs service is not attached to a running node".to_owned(),
            })
    }

    /// Adds a job as `ctx`'s caller, after every check.
    pub async fn enqueue(&self, req: Enqueue, ctx: &CallContext) -> Result<Enqueued, JobError> {
        let checked = self.check(req, ctx);
        let job = match checked {
            Ok(job) => job,
            Err(e) => {
                self.inner.metrics.refused();
                return Err(e);
            }
        };
        let (id, created) =
            self.inserter()
                .ask(job)
                .await
                .ok_or_else(|| JobError::Unavailable {
                    reason: "the queue is shutting down".to_owned(),
                })??;
        self.inner.metrics.enqueued(created);
        if created {
            self.inner.wake.notify_one();
        }
        Ok(Enqueued { id, created })
    }

    /// Where enqueues wait to be written together: the first call starts the
    /// inserter, which writes every enqueue waiting (up to `jobs.batch`) in one
    /// transaction, so concurrent callers share a commit. Each caller still
    /// returns only once its job is written.
    fn inserter(&self) -> &Batcher<NewJob, Added> {
        self.inner.added.get_or_init(|| {
            let (batcher, requests) = Batcher::new(self.inner.config.batch);
            let backend = self.inner.backend.clone();
            tokio::spawn(batch::serve(
                requests,
                self.inner.config.batch,
                move |jobs| insert(backend.clone(), jobs),
            ));
            batcher
        })
    }

    /// `req` checked and completed from the settings, as `ctx`'s caller enqueues it.
    pub(crate) fn check(&self, req: Enqueue, ctx: &CallContext) -> Result<NewJob, JobError> {
        let c = &self.inner.config;
        let queue = req.queue.unwrap_or_else(|| "default".to_owned());
        check_queue(&queue)?;
        let params = self.check_target(&req.target, req.params, ctx)?;
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&req.priority) {
            return Err(JobError::invalid("/priority", "must be from -1000 to 1000"));
        }
        let now = self.inner.clock.now_ms();
        let run_at = match (req.run_at, req.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(JobError::invalid(
                    "/delay_ms",
                    "give run_at or delay_ms, not both",
                ));
            }
            (None, Some(d)) if d < 0 => {
                return Err(JobError::invalid("/delay_ms", "must not be negative"));
            }
            (None, Some(d)) if d > ms(c.max_delay_ms) => {
                return Err(JobError::invalid(
                    "/delay_ms",
                    format!("must be at most jobs.max_delay_ms ({})", c.max_delay_ms),
                ));
            }
            (None, Some(d)) => now.saturating_add(d),
            (Some(at), None) if at > now.saturating_add(ms(c.max_delay_ms)) => {
                return Err(JobError::invalid(
                    "/run_at",
                    format!("is more than jobs.max_delay_ms ({}) ahead", c.max_delay_ms),
                ));
            }
            (Some(at), None) => at,
            (None, None) => now,
        };
        let max_attempts = req.max_attempts.unwrap_or(c.default_max_attempts);
        if !(1..=c.max_attempts).contains(&max_attempts) {
            return Err(JobError::invalid(
                "/max_attempts",
                format!("must be from 1 to jobs.max_attempts ({})", c.max_attempts),
            ));
        }
        let backoff_ms = req.backoff_ms.unwrap_or(c.backoff_ms);
        if backoff_ms > c.max_backoff_ms {
            return Err(JobError::invalid(
                "/backoff_ms",
                format!("must be at most jobs.max_backoff_ms ({})", c.max_backoff_ms),
            ));
        }
        let timeout_ms = req.timeout_ms.unwrap_or(c.timeout_ms);
        if !(1..=c.max_timeout_ms).contains(&timeout_ms) {
            return Err(JobError::invalid(
                "/timeout_ms",
                format!(
                    "must be from 1 to jobs.max_timeout_ms ({})",
                    c.max_timeout_ms
                ),
            ));
        }
        if let Some(key) = &req.unique_key
            && !(1..=MAX_UNIQUE_KEY).contains(&key.len())
        {
            return Err(JobError::invalid("/unique_key", "must be 1 to 256 bytes"));
        }
        if req.unique_window_ms.is_some() && req.unique_key.is_none() {
            return Err(JobError::invalid("/unique_window_ms", "needs a unique_key"));
        }
        check_size("/metadata", &req.metadata, c.max_params_bytes)?;
        Ok(NewJob {
            queue,
            target: req.target,
            params,
            priority: req.priority,
            run_at,
            max_attempts,
            backoff_ms,
            timeout_ms,
            unique_key: req.unique_key,
            unique_window_ms: req.unique_window_ms.unwrap_or(DEFAULT_UNIQUE_WINDOW_MS),
            metadata: req.metadata,
            caller: ctx.caller.clone(),
            scopes: ctx
                .scopes
                .as_ref()
                .map(|s| s.iter().map(ToString::to_string).collect()),
            created_at: now,
        })
    }

    /// The params, normalized, when `target` is a registered method they pass and
    /// the caller may call.
    fn check_target(
        &self,
        target: &str,
        params: Value,
        ctx: &CallContext,
    ) -> Result<Value, JobError> {
        check_size("/params", &params, self.inner.config.max_params_bytes)?;
        let Some((service, method)) = target.split_once('.') else {
            return Err(JobError::invalid("/target", "is not `service.method`"));
        };
        let node = self.node()?;
        let instances = node.registry().instances_named(service);
        let Some(descriptor) = instances
            .iter()
            .map(|r| &r.descriptor)
            .find_map(|d| d.methods.iter().find(|m| m.name == method))
        else {
            return Err(JobError::invalid(
                "/target",
                format!("`{target}` is not a registered method"),
            ));
        };
        if ctx.check(Need::Call(target)).is_err() {
            return Err(JobError::invalid(
                "/target",
                format!("the caller may not call `{target}`"),
            ));
        }
        let schema = ParamsSchema::compile(target, &descriptor.params).map_err(|e| {
            JobError::invalid(
                "/target",
                format!("its params schema does not compile: {}", e.reason),
            )
        })?;
        let params = schema.normalize(params);
        match schema.check(target, &params) {
            Ok(()) => Ok(params),
            Err(CallError::InvalidParams { field, reason, .. }) => Err(JobError::invalid(
                format!("/params{field}"),
                format!("does not fit `{target}`: {reason}"),
            )),
            Err(other) => Err(JobError::invalid("/params", other.to_string())),
        }
    }

    /// The job `id`.
    pub async fn get(&self, id: i64) -> Result<Job, JobError> {
        self.inner
            .backend
            .get(id)
            .await?
            .ok_or(JobError::NotFound { id })
    }

    /// Cancels a pending or running job (a running attempt's outcome is dropped).
    pub async fn cancel(&self, id: i64) -> Result<Job, JobError> {
        let now = self.inner.clock.now_ms();
        if !self.inner.backend.cancel(id, now).await? {
            let job = self.get(id).await?;
            return Err(JobError::WrongState {
                id,
                state: job.state.as_str().to_owned(),
                reason: "only a pending or running job can be cancelled".to_owned(),
            });
        }
        self.get(id).await
    }

    /// Records `progress` for job `id` from its running attempt `attempt` (what
    /// its target got in `plexus-job-attempt`): kept with the job (`Job::progress`)
    /// and announced as `jobs.<queue>.progress`. Refused when the job is not
    /// running that attempt (a report from an attempt given up changes nothing),
    /// or when it is larger than `jobs.max_params_bytes`.
    pub async fn progress(&self, id: i64, attempt: u32, progress: Value) -> Result<Job, JobError> {
        check_size("/progress", &progress, self.inner.config.max_params_bytes)?;
        let Some(queue) = self.inner.backend.progress(id, attempt, &progress).await? else {
            let job = self.get(id).await?;
            return Err(JobError::WrongState {
                id,
                state: job.state.as_str().to_owned(),
                reason: format!(
                    "only the running attempt can report progress (attempt {attempt} was given; the job is at attempt {})",
                    job.attempt
                ),
            });
        };
        let detail = json!({"id": id, "queue": queue, "attempt": attempt, "progress": progress});
        self.emit(&queue, "progress", &detail).await;
        self.get(id).await
    }

    /// Runs a dead or cancelled job again, now, with its attempts counted afresh.
    pub async fn retry(&self, id: i64) -> Result<Job, JobError> {
        let now = self.inner.clock.now_ms();
        if self.inner.backend.requeue(Some(&[id]), None, now).await? == 0 {
            let job = self.get(id).await?;
            return Err(JobError::WrongState {
                id,
                state: job.state.as_str().to_owned(),
                reason: "only a dead or cancelled job can be retried".to_owned(),
            });
        }
        self.inner.wake.notify_one();
        self.get(id).await
    }

    /// Runs dead jobs again: those in `ids` (dead or cancelled), or every dead job
    /// of `queue` (or of every queue). Answers how many.
    pub async fn requeue(&self, ids: Option<&[i64]>, queue: Option<&str>) -> Result<u64, JobError> {
        if let Some(q) = queue {
            check_queue(q)?;
        }
        if let Some(ids) = ids
            && ids.len() > self.inner.config.max_list as usize
        {
            return Err(JobError::invalid(
                "/ids",
                format!("more than jobs.max_list ({})", self.inner.config.max_list),
            ));
        }
        let now = self.inner.clock.now_ms();
        let n = self.inner.backend.requeue(ids, queue, now).await?;
        if n > 0 {
            self.inner.wake.notify_one();
        }
        Ok(n)
    }

    /// Jobs by queue and state, in id order, after `after`, at most `limit`
    /// (default and most: `jobs.max_list`).
    pub async fn list(
        &self,
        queue: Option<String>,
        state: Option<JobState>,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<Job>, JobError> {
        if let Some(q) = &queue {
            check_queue(q)?;
        }
        let max = self.inner.config.max_list;
        let limit = limit.unwrap_or(max);
        if !(1..=max).contains(&limit) {
            return Err(JobError::invalid(
                "/limit",
                format!("must be from 1 to jobs.max_list ({max})"),
            ));
        }
        self.inner
            .backend
            .list(&ListFilter {
                queue,
                state,
                after,
                limit,
            })
            .await
    }

    /// The counts of every queue (or one).
    pub async fn stats(&self, queue: Option<&str>) -> Result<Vec<QueueStats>, JobError> {
        if let Some(q) = queue {
            check_queue(q)?;
        }
        self.inner.backend.stats(queue).await
    }

    /// Pauses (true) or resumes (false) a queue's workers on every node; running
    /// attempts finish.
    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), JobError> {
        check_queue(queue)?;
        self.inner.backend.set_paused(queue, paused).await?;
        if !paused {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// The queues at their concurrency on this node.
    fn full_queues(&self) -> Vec<String> {
        let running = self.inner.running.lock();
        running
            .iter()
            .filter(|(q, n)| **n >= self.inner.config.concurrency_of(q))
            .map(|(q, _)| q.clone())
            .collect()
    }

    /// The dispatcher: recover, claim while there is room, wait.
    async fn dispatch(self) {
        let inner = &self.inner;
        let poll = inner.config.poll();
        // Other nodes' new work, where the backend announces it.
        let mut remote = inner.backend.wakeups();
        // When expired leases and due schedules were last looked for: once a poll
        // is enough (a lease or a fire time is at most a poll late), not on every
        // wake-up, which a busy queue has once per job.
        let mut swept: Option<i64> = None;
        while !inner.closed.load(Ordering::Acquire) {
            let wake = inner.wake.notified();
            let moved = inner.clock.moved.notified();
            tokio::pin!(wake, moved);
            wake.as_mut().enable();
            moved.as_mut().enable();
            let mut now = inner.clock.now_ms();
            if swept.is_none_or(|at| now < at || now - at >= millis(poll)) {
                self.recover(now).await;
                self.fire_schedules(now).await;
                swept = Some(now);
            }
            self.claim_rated(now).await;
            while self.node_room() > 0 {
                // A lease starts at its claim, not at the top of this round: the
                // sweep and the claims before it may have taken a good part of
                // a lease, and a lease dated back would run out while its
                // worker is alive (and be run twice). What is due is then seen
                // as of the last claim, `next_due` below included.
                now = inner.clock.now_ms();
                let mut skip = self.full_queues();
                skip.extend(inner.pace.left_out());
                let lease_until = now.saturating_add(millis(inner.config.lease()));
                match inner
                    .backend
                    .claim(now, &skip, &inner.worker, lease_until)
                    .await
                {
                    Ok(Some(job)) => {
                        let queue = job.queue.clone();
                        // The room as of this claim (less the job's own slot): a
                        // job that answers at once must not make its turn longer.
                        let more = self
                            .room(&queue)
                            .saturating_sub(1)
                            .min(inner.config.batch.saturating_sub(1));
                        inner.pace.started(&queue);
                        self.start(job);
                        self.claim_more(&queue, now, lease_until, more).await;
                    }
                    // Every queue with a due job had its turn: a new round.
                    Ok(None) if inner.pace.new_round() => {}
                    Ok(None) => break,
                    Err(error) => {
                        self.backend_failed(&error, "claim failed; trying again after the poll");
                        break;
                    }
                }
            }
            let mut wait = poll;
            // A job due after this round's `now` is waited for; one due by then that
            // was not taken is in a queue at its limit (a job ending wakes this) or
            // past its rate (the pace's next token): waiting on it would spin.
            if inner.clock.manual.is_none()
                && let Ok(Some(due)) = inner.backend.next_due(now).await
            {
                let until = u64::try_from(due.saturating_sub(inner.clock.now_ms())).unwrap_or(0);
                wait = wait.min(Duration::from_millis(until));
            }
            if inner.clock.manual.is_none()
                && let Some(token) = inner.pace.next_token_ms(inner.clock.now_ms())
            {
                wait = wait.min(Duration::from_millis(token));
            }
            let announced = async {
                match remote.as_mut() {
                    Some(r) => r.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut wake => {}
                () = &mut moved => {}
                () = tokio::time::sleep(wait) => {}
                open = announced => if !open { remote = None },
            }
        }
    }

    /// How many more jobs of `queue` this node may start now: the node's room and
    /// the queue's.
    fn room(&self, queue: &str) -> usize {
        let inner = &self.inner;
        let running = inner.running.lock().get(queue).copied().unwrap_or(0);
        self.node_room()
            .min(inner.config.concurrency_of(queue).saturating_sub(running))
    }

    /// How many more jobs this node may start now: free slots, while fewer than
    /// `max_running` outcomes wait to be stored.
    fn node_room(&self) -> usize {
        let inner = &self.inner;
        let max = inner.config.max_running;
        max.saturating_sub(inner.total.load(Ordering::Acquire))
            .min(max.saturating_sub(inner.storing.load(Ordering::Acquire)))
    }

    /// Up to `limit` of `queue`'s due jobs, in one step, started; answers how
    /// many.
    async fn claim_more(&self, queue: &str, now: i64, lease_until: i64, limit: usize) -> usize {
        let inner = &self.inner;
        if limit == 0 {
            return 0;
        }
        match inner
            .backend
            .claim_more(queue, now, &inner.worker, lease_until, limit)
            .await
        {
            Ok(jobs) => {
                let started = jobs.len();
                for job in jobs {
                    self.start(job);
                }
                started
            }
            Err(error) => {
                self.backend_failed(&error, "claim failed; trying again after the poll");
                0
            }
        }
    }

    /// The turn of each queue with a rate that has room and has not had its turn
    /// in this round: tokens taken from the bucket every node shares, as many of
    /// its due jobs claimed, the tokens not used given back.
    async fn claim_rated(&self, now: i64) {
        let inner = &self.inner;
        for (queue, rate) in inner.pace.rates() {
            if inner.pace.served(queue) {
                continue;
            }
            let want = self.room(queue).min(inner.config.batch);
            if want == 0 {
                continue;
            }
            let want = u32::try_from(want).unwrap_or(u32::MAX);
            let (granted, left) = match inner.backend.take_tokens(queue, rate, now, want).await {
                Ok(taken) => taken,
                Err(error) => {
                    self.backend_failed(&error, "taking a queue's rate tokens failed");
                    continue;
                }
            };
            if granted == 0 {
                inner.pace.out_of_tokens(queue, rate, left, now);
                continue;
            }
            let lease_until = now.saturating_add(millis(inner.config.lease()));
            let limit = usize::try_from(granted).unwrap_or(usize::MAX);
            let started = self.claim_more(queue, now, lease_until, limit).await;
            if started > 0 {
                inner.pace.started(queue);
            }
            let unused = granted.saturating_sub(u32::try_from(started).unwrap_or(u32::MAX));
            if unused > 0
                && let Err(error) = inner.backend.return_tokens(queue, rate, unused).await
            {
                self.backend_failed(&error, "giving back a queue's rate tokens failed");
            }
        }
    }

    async fn recover(&self, now: i64) {
        match self.inner.backend.recover(now).await {
            Ok(stalled) => {
                for s in stalled {
                    self.inner.metrics.stalled(s.dead);
                    tracing::warn!(job = s.id, queue = %s.queue, attempt = s.attempt, "jobs: lease ran out");
                    let detail =
                        json!({"id": s.id, "queue": s.queue, "attempt": s.attempt, "dead": s.dead});
                    self.emit(&s.queue, "stalled", &detail).await;
                    if s.dead {
                        self.emit(&s.queue, "dead", &detail).await;
                    }
                }
            }
            Err(error) => self.backend_failed(&error, "recovering expired leases failed"),
        }
    }

    fn start(&self, job: Job) {
        self.inner.total.fetch_add(1, Ordering::AcqRel);
        *self
            .inner
            .running
            .lock()
            .entry(job.queue.clone())
            .or_default() += 1;
        self.inner.metrics.started();
        let jobs = self.clone();
        tokio::spawn(async move {
            jobs.run(job).await;
            jobs.inner.storing.fetch_sub(1, Ordering::AcqRel);
            jobs.inner.wake.notify_one();
        });
    }

    /// A target answered: its slot is free for the next job while its outcome is
    /// stored.
    fn answered(&self, queue: &str) {
        let inner = &self.inner;
        {
            let mut running = inner.running.lock();
            if let Some(n) = running.get_mut(queue) {
                *n = n.saturating_sub(1);
            }
        }
        inner.storing.fetch_add(1, Ordering::AcqRel);
        inner.total.fetch_sub(1, Ordering::AcqRel);
        inner.metrics.ended();
        inner.wake.notify_one();
    }

    /// One attempt: the call with its lease renewed, then (its slot freed) its
    /// outcome stored.
    async fn run(&self, job: Job) {
        let inner = &self.inner;
        let answer: Result<Value, (&str, String)> = match self.node() {
            Ok(node) => {
                let ctx = self.context(&job);
                let call = node.call(&job.target, job.params.clone(), ctx);
                let renew = self.renew(job.id);
                tokio::select! {
                    answer = call => answer.map_err(|e| (e.outcome(), e.to_string())),
                    () = renew => Err(("lease_lost", "the job's lease was lost".to_owned())),
                }
            }
            Err(e) => Err(("unavailable", e.to_string())),
        };
        self.answered(&job.queue);
        match answer {
            Ok(result) => match self.store_result(job.id, result).await {
                Some((true, result)) => {
                    inner.metrics.completed();
                    let detail = json!({"id": job.id, "queue": job.queue, "target": job.target, "attempt": job.attempt, "result": result});
                    self.emit(&job.queue, "completed", &detail).await;
                }
                Some((false, _)) => inner.metrics.lost(),
                // The completer logged why.
                None => {}
            },
            Err((kind, message)) => {
                let now = inner.clock.now_ms();
                let record =
                    json!({"attempt": job.attempt, "at": now, "error": kind, "message": message});
                let dead = job.attempt >= job.max_attempts;
                let retry_at = (!dead).then(|| now.saturating_add(self.backoff(&job)));
                match self
                    .outcome(|| {
                        inner.backend.fail(
                            job.id,
                            &inner.worker,
                            now,
                            &record,
                            retry_at,
                            inner.config.max_errors,
                        )
                    })
                    .await
                {
                    Ok(true) => {
                        inner.metrics.failed(dead);
                        let detail = json!({"id": job.id, "queue": job.queue, "target": job.target, "attempt": job.attempt, "error": record, "retry_at": retry_at});
                        self.emit(&job.queue, "failed", &detail).await;
                        if dead {
                            self.emit(&job.queue, "dead", &detail).await;
                        }
                    }
                    Ok(false) => inner.metrics.lost(),
                    Err(error) => {
                        tracing::warn!(%error, job = job.id, "jobs: storing a failure failed")
                    }
                }
            }
        }
    }

    /// Hands a result to the completer and waits until it is stored: whether it
    /// was (false: the job was no longer ours), with the result back; `None` when
    /// storing failed.
    async fn store_result(&self, id: i64, result: Value) -> Option<(bool, Value)> {
        self.inner.finished.ask((id, result)).await.flatten()
    }

    /// Stores an attempt's outcome with `store`, trying again while the backend is
    /// unavailable (waits from 50 ms doubling to 1 s), for at most a lease: past
    /// it the job is another worker's to recover anyway.
    async fn outcome<'a, T, F, Fut>(&self, store: F) -> Result<T, JobError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, JobError>> + 'a,
    {
        let give_up = tokio::time::Instant::now() + self.inner.config.lease();
        let mut wait = Duration::from_millis(50);
        loop {
            match store().await {
                Err(error @ JobError::Unavailable { .. })
                    if tokio::time::Instant::now() + wait < give_up =>
                {
                    self.backend_failed(&error, "storing an outcome failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Logs a failed step of the workers, counting the backend's absences.
    fn backend_failed(&self, error: &JobError, what: &str) {
        if matches!(error, JobError::Unavailable { .. }) {
            self.inner.metrics.unavailable();
        }
        tracing::warn!(%error, "jobs: {what}");
    }

    /// The context of a job's call: its enqueuer, its timeout, its headers.
    fn context(&self, job: &Job) -> CallContext {
        let mut ctx = CallContext::new().with_timeout(Duration::from_millis(job.timeout_ms));
        ctx.caller = job.caller.clone();
        ctx.scopes = job.scopes.as_ref().map(|scopes| {
            // A scope that no longer parses grants nothing.
            scopes
                .iter()
                .filter_map(|s| s.parse::<Scope>().ok())
                .collect::<Vec<_>>()
                .into()
        });
        ctx.attempt = job.attempt.max(1);
        ctx.headers.insert(HEADER_ID, job.id.to_string());
        ctx.headers.insert(HEADER_QUEUE, job.queue.clone());
        ctx.headers.insert(HEADER_ATTEMPT, job.attempt.to_string());
        ctx
    }

    /// Renews the lease every third of it; completes only when it was lost.
    async fn renew(&self, id: i64) {
        let inner = &self.inner;
        let lease = inner.config.lease();
        loop {
            tokio::time::sleep(lease / 3).await;
            let until = inner.clock.now_ms().saturating_add(millis(lease));
            match inner.backend.renew(id, &inner.worker, until).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => self.backend_failed(&error, "renewing a lease failed"),
            }
        }
    }

    /// The wait before the next attempt of `job`, whose attempt `job.attempt` failed.
    pub fn backoff(&self, job: &Job) -> i64 {
        let exp = job.attempt.saturating_sub(1).min(40);
        let full = job
            .backoff_ms
            .saturating_mul(1u64 << exp)
            .min(self.inner.config.max_backoff_ms);
        let half = full / 2;
        let jitter = if half > 0 {
            rand::rng().random_range(0..=half)
        } else {
            0
        };
        ms(full - jitter)
    }

    async fn emit(&self, queue: &str, what: &str, detail: &Value) {
        let Ok(node) = self.node() else { return };
        let envelope = match (
            Topic::new(format!("jobs.{queue}.{what}")),
            Payload::json(detail),
        ) {
            (Ok(topic), Ok(payload)) => Envelope::new(topic, payload),
            _ => return,
        };
        if let Err(error) = node.bus().publish(envelope).await {
            tracing::warn!(%error, queue, what, "jobs: event not published");
        }
    }
}

/// One step of the completer: stores the results of finished attempts, all
/// those waiting at once (up to `jobs.batch`), in one step of the backend, so a
/// busy queue commits once per batch instead of once per job. `None` once the
/// queue is gone.
async fn complete(queue: std::sync::Weak<Inner>, done: Vec<Done>) -> Option<Vec<Stored>> {
    let jobs = Jobs {
        inner: queue.upgrade()?,
    };
    let inner = &jobs.inner;
    let now = inner.clock.now_ms();
    match jobs
        .outcome(|| inner.backend.complete_many(&inner.worker, now, &done))
        .await
    {
        Ok(stored) => Some(
            done.into_iter()
                .enumerate()
                .map(|(i, (_, result))| Some((stored.get(i).copied().unwrap_or(false), result)))
                .collect(),
        ),
        Err(error) => {
            tracing::warn!(%error, jobs = done.len(), "jobs: storing results failed");
            Some(vec![None; done.len()])
        }
    }
}

/// One step of the inserter: the enqueues waiting, in one transaction. When it
/// fails (nothing was written), each is tried on its own, so one job's error is
/// its own.
async fn insert(backend: Arc<dyn JobBackend>, jobs: Vec<NewJob>) -> Option<Vec<Added>> {
    match backend.enqueue_many(&jobs).await {
        Ok(added) => Some(added.into_iter().map(Ok).collect()),
        Err(error) if jobs.len() == 1 => Some(vec![Err(error)]),
        Err(_) => {
            let mut answers = Vec::with_capacity(jobs.len());
            for job in &jobs {
                answers.push(backend.enqueue(job).await);
            }
            Some(answers)
        }
    }
}
