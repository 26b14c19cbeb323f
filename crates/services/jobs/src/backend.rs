//! [`JobBackend`]: what a backend keeps and does, one step per operation, and the
//! records it answers with ([`Job`], [`NewJob`], [`JobState`], [`QueueStats`]).
//!
//! Times are milliseconds since the Unix epoch, taken by the caller from the
//! queue's clock (so tests under paused time move them), never read by the backend.
//! Every step that changes a running job names its worker and changes nothing when
//! that worker no longer holds the job (its lease ran out and another took it):
//! a worker that was only slow cannot overwrite the newer attempt.

use plexus_core::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JobError;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at` and a worker (new, or a failed attempt to retry).
    Pending,
    /// Held by a worker under a lease.
    Running,
    /// Its target answered; the answer is its `result`.
    Completed,
    /// Every attempt failed: the dead-letter list, with its error history.
    Dead,
    /// Cancelled before it completed.
    Cancelled,
}

impl JobState {
    /// Every state, in order.
    pub const ALL: [JobState; 5] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Dead,
        Self::Cancelled,
    ];

    /// Its name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A state as stored, read back.
pub(crate) fn state_of(text: &str) -> Result<JobState, JobError> {
    JobState::parse(text).ok_or_else(|| JobError::Backend {
        reason: format!("unknown job state `{text}`"),
    })
}

/// JSON as stored (`what` names it in the error), read back.
pub(crate) fn json_of(what: &str, text: &str) -> Result<Value, JobError> {
    serde_json::from_str(text).map_err(|e| JobError::Backend {
        reason: format!("unreadable {what} in a job: {e}"),
    })
}

/// The caller's scopes as stored (a JSON array of text), read back.
pub(crate) fn scopes_of(text: Option<&str>) -> Result<Option<Vec<String>>, JobError> {
    text.map(serde_json::from_str::<Vec<String>>)
        .transpose()
        .map_err(|e| JobError::Backend {
            reason: format!("unreadable scopes in a job: {e}"),
        })
}

/// A job to add, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// Its queue.
    pub queue: String,
    /// The method it calls (`service.method`).
    pub target: String,
    /// The params of the call.
    pub params: Value,
    /// Higher runs first (default 0).
    pub priority: i32,
    /// When it may run first.
    pub run_at: i64,
    /// How many attempts before it is dead.
    pub max_attempts: u32,
    /// The first retry's delay, in milliseconds.
    pub backoff_ms: u64,
    /// One attempt's time limit, in milliseconds.
    pub timeout_ms: u64,
    /// With `unique_window_ms`: no second job with this key in the queue is added
    /// while one made less than the window ago is not cancelled.
    pub unique_key: Option<String>,
    /// See `unique_key`.
    pub unique_window_ms: u64,
    /// Free metadata, kept and shown.
    pub metadata: Value,
    /// Who enqueued it: the call runs as this caller.
    pub caller: Option<String>,
    /// The caller's scopes (as text), when it was authenticated.
    pub scopes: Option<Vec<String>>,
    /// When it was made.
    pub created_at: i64,
}

/// A job as kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    /// Its id, in order of arrival.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// The method it calls.
    pub target: String,
    /// The params of the call.
    pub params: Value,
    /// Higher runs first.
    pub priority: i32,
    /// Where it is.
    pub state: JobState,
    /// The attempts started so far (the running one included).
    pub attempt: u32,
    /// How many attempts before it is dead.
    pub max_attempts: u32,
    /// The first retry's delay, in milliseconds.
    pub backoff_ms: u64,
    /// One attempt's time limit, in milliseconds.
    pub timeout_ms: u64,
    /// When it may run next (ms since the epoch).
    pub run_at: i64,
    /// When it was made.
    pub created_at: i64,
    /// When it completed, died or was cancelled.
    pub finished_at: Option<i64>,
    /// The worker holding it, while running.
    pub worker: Option<String>,
    /// Until when the worker holds it, while running.
    pub lease_until: Option<i64>,
    /// The target's answer, once completed.
    pub result: Option<Value>,
    /// The last progress its target reported (`jobs.progress`), kept after it
    /// ends.
    pub progress: Option<Value>,
    /// The failed attempts, oldest first: `{attempt, at, error}`.
    pub errors: Vec<Value>,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
    /// Free metadata.
    pub metadata: Value,
    /// Who enqueued it.
    pub caller: Option<String>,
    /// The caller's scopes, when it was authenticated.
    #[serde(skip)]
    pub scopes: Option<Vec<String>>,
}

/// A queue's counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Whether its workers are paused.
    pub paused: bool,
    /// Jobs waiting (due or not).
    pub pending: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Jobs dead.
    pub dead: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
}

/// What `list` selects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only ids above this (paging, in id order).
    pub after: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A job whose worker's lease ran out, as recovered.
#[derive(Clone, Debug, PartialEq)]
pub struct Stalled {
    /// The job.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// The attempt that stalled.
    pub attempt: u32,
    /// Whether that was its last attempt (it is dead now) or it waits again.
    pub dead: bool,
}

/// A recurring schedule as kept: a cron pattern in a time zone, the job it makes,
/// and its next fire time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleRow {
    /// Its name (unique).
    pub name: String,
    /// The cron pattern (5 or 6 fields).
    pub cron: String,
    /// The IANA time zone the pattern is read in (`UTC`, `Europe/Paris`).
    pub timezone: String,
    /// The job each fire enqueues: `{"enqueue": …, "caller": …, "scopes": …}`.
    pub job: Value,
    /// The next fire time (ms since the epoch).
    pub next_at: i64,
}

/// What a backend does. Each operation is one step (a statement or a script).
#[async_trait]
pub trait JobBackend: Send + Sync + std::fmt::Debug + 'static {
    /// Its name (`sqlite`).
    fn name(&self) -> &'static str;

    /// Adds `jobs` in one step (one transaction: all or none), in order; answers
    /// each one's id and whether it is new (false: an existing job with its unique
    /// key inside the window, whose id is answered; a later job of the same batch
    /// sees an earlier one's key).
    async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<(i64, bool)>, JobError>;

    /// Adds `job`: [`enqueue_many`](JobBackend::enqueue_many) of one.
    async fn enqueue(&self, job: &NewJob) -> Result<(i64, bool), JobError> {
        let added = self.enqueue_many(std::slice::from_ref(job)).await?;
        added.first().copied().ok_or_else(|| JobError::Backend {
            reason: "an enqueue answered nothing".to_owned(),
        })
    }

    /// Takes the best due job (highest priority, then earliest `run_at`, then
    /// oldest) of a queue that is not paused and not in `full`, for `worker`, with
    /// its attempt counted and its lease until `lease_until`.
    async fn claim(
        &self,
        now: i64,
        full: &[String],
        worker: &str,
        lease_until: i64,
    ) -> Result<Option<Job>, JobError>;

    /// Takes up to `limit` more due jobs of `queue` (unless it is paused), best
    /// first, for `worker`, each with its attempt counted and its lease until
    /// `lease_until`, in one step: the rest of a queue's turn after [`claim`]
    /// chose it. Empty when none is due.
    ///
    /// [`claim`]: JobBackend::claim
    async fn claim_more(
        &self,
        queue: &str,
        now: i64,
        worker: &str,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Job>, JobError>;

    /// Takes up to `want` of `queue`'s start tokens from the bucket every node
    /// shares: it holds at most `rate` (a second's worth), is full at first, and
    /// refills at `rate` per second of `now`. Answers how many were granted and
    /// what is left, in one step.
    async fn take_tokens(
        &self,
        queue: &str,
        rate: u32,
        now: i64,
        want: u32,
    ) -> Result<(u32, f64), JobError>;

    /// Gives `n` unused tokens back to `queue`'s bucket (which holds at most
    /// `rate`).
    async fn return_tokens(&self, queue: &str, rate: u32, n: u32) -> Result<(), JobError>;

    /// Stores `progress` as job `id`'s, while its attempt `attempt` runs; answers
    /// its queue, or `None` when the job is not running that attempt.
    async fn progress(
        &self,
        id: i64,
        attempt: u32,
        progress: &Value,
    ) -> Result<Option<String>, JobError>;

    /// Renews `worker`'s lease on job `id`; false when it no longer holds it.
    async fn renew(&self, id: i64, worker: &str, lease_until: i64) -> Result<bool, JobError>;

    /// Marks held jobs completed, each `(id, result)`, in one step (one
    /// transaction, one script): for each, in order, false when `worker` no longer
    /// held it.
    async fn complete_many(
        &self,
        worker: &str,
        now: i64,
        done: &[(i64, Value)],
    ) -> Result<Vec<bool>, JobError>;

    /// Marks a held job completed with `result`; false when no longer held.
    async fn complete(
        &self,
        id: i64,
        worker: &str,
        now: i64,
        result: &Value,
    ) -> Result<bool, JobError> {
        let stored = self
            .complete_many(worker, now, &[(id, result.clone())])
            .await?;
        Ok(stored.first().copied().unwrap_or(false))
    }

    /// Records a failed attempt (`error`, the last `keep` kept) of a held job: it
    /// waits until `retry_at`, or, with none, is dead. False when no longer held.
    async fn fail(
        &self,
        id: i64,
        worker: &str,
        now: i64,
        error: &Value,
        retry_at: Option<i64>,
        keep: usize,
    ) -> Result<bool, JobError>;

    /// Returns to waiting every running job whose lease ended before `now` (dead
    /// when it had no attempt left).
    async fn recover(&self, now: i64) -> Result<Vec<Stalled>, JobError>;

    /// The job `id`.
    async fn get(&self, id: i64) -> Result<Option<Job>, JobError>;

    /// Cancels a pending or running job; false when it was in another state.
    async fn cancel(&self, id: i64, now: i64) -> Result<bool, JobError>;

    /// Sends dead or cancelled jobs back to waiting (attempts counted afresh), due
    /// at `now`: the ones in `ids`, or with none every dead job of `queue` (or of
    /// every queue). Answers how many.
    async fn requeue(
        &self,
        ids: Option<&[i64]>,
        queue: Option<&str>,
        now: i64,
    ) -> Result<u64, JobError>;

    /// Jobs by `filter`, in id order.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError>;

    /// The counts of every queue that has jobs or was paused (or only `queue`).
    async fn stats(&self, queue: Option<&str>) -> Result<Vec<QueueStats>, JobError>;

    /// Pauses (true) or resumes (false) a queue's workers.
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), JobError>;

    /// The earliest `run_at` after `after` of a waiting job of a queue that is not
    /// paused (jobs due by `after` and still waiting are in queues at their limit,
    /// which a dispatcher must not spin on).
    async fn next_due(&self, after: i64) -> Result<Option<i64>, JobError>;

    /// A signal that changes when any node added or released work (PostgreSQL's
    /// `LISTEN/NOTIFY`), so idle dispatchers wake at once instead of at their
    /// next poll; `None` when the backend has none (each node then learns of
    /// other nodes' jobs by polling).
    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Whether its jobs live in the DataStore's database, so a job can be added in
    /// a DataStore transaction ([`Jobs::transaction`](crate::Jobs::transaction));
    /// false (the default) makes those refuse with
    /// [`JobError::NotTransactional`].
    fn transactional(&self) -> bool {
        false
    }

    /// Adds or replaces the schedule `schedule.name`.
    async fn put_schedule(&self, schedule: &ScheduleRow) -> Result<(), JobError>;

    /// Removes a schedule; false when there was none.
    async fn remove_schedule(&self, name: &str) -> Result<bool, JobError>;

    /// The schedules, by name; with `due`, only those whose next fire time is at
    /// or before it.
    async fn schedules(&self, due: Option<i64>) -> Result<Vec<ScheduleRow>, JobError>;

    /// Moves a schedule's next fire time from `from` to `to`; false when another
    /// node moved it first (the fire time is then theirs).
    async fn advance_schedule(&self, name: &str, from: i64, to: i64) -> Result<bool, JobError>;
}
