//! [`JobService`]: the queue as a Plexus service (`jobs.*` methods), so every front
//! end (JSON-RPC, WebSocket, MCP, the CLI) reaches it through the call path.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `enqueue` | `target`, `params`?, `queue`?, `priority`?, `run_at`? or `delay_ms`?, `max_attempts`?, `backoff_ms`?, `timeout_ms`?, `unique_key`?, `unique_window_ms`?, `metadata`? | `{id, created}` |
//! | `get` | `id` | the job |
//! | `cancel` | `id` | the job |
//! | `retry` | `id` | the job |
//! | `transaction` | `ops` (as `datastore.transaction` takes them), `jobs` (each as `enqueue` takes it) | `{results, jobs}`: the data change and its jobs commit together or not at all |
//! | `progress` | `id`, `attempt`, `progress` (any JSON) | the job (event `jobs.<queue>.progress`) |
//! | `list` | `queue`?, `state`?, `after`?, `limit`? | `{jobs}` |
//! | `stats` | `queue`? | `{queues}` |
//! | `pause` / `resume` | `queue` | `{queue, paused}` |
//! | `dead` | `queue`?, `after`?, `limit`? | `{jobs}` (with their error history) |
//! | `requeue` | `ids`? or `queue`? | `{requeued}` |
//! | `schedule` | `name`, `cron`, `timezone`?, `job` (as `enqueue` takes it) | the schedule, with its `next_at` |
//! | `unschedule` | `name` | `{removed}` |
//! | `schedules` | | `{schedules}` |
//!
//! Errors: bad input is [`ServiceError::InvalidParams`] naming the field (`/target`,
//! `/params/to`, `/delay_ms`…); an unknown id is a [`ServiceError::Failed`] with
//! `data.kind = "not_found"`, a job in the wrong state one with
//! `data.kind = "wrong_state"`; the database out of reach is
//! [`ServiceError::Unavailable`].

use std::sync::LazyLock;

use plexus_core::methods::{Effect, MethodTable, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use plexus_node::Node;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::jobs::{Enqueue, Enqueued};
use crate::{Job, JobState, Jobs, QueueStats, Schedule, ScheduleRow};

/// The queue behind the `jobs` service.
#[derive(Clone, Debug)]
pub struct JobService {
    jobs: Jobs,
    descriptor: ServiceDescriptor,
}

impl JobService {
    /// The service over `jobs`, instance `jobs-1`.
    pub fn new(jobs: Jobs) -> Self {
        Self {
            jobs,
            descriptor: METHODS.describe(
                ServiceDescriptor::new("jobs", "jobs")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "A job queue of deferred calls: enqueue a call to any registered method with a priority, a delay, retries and a unique key; inspect, cancel, retry, pause, and requeue dead jobs",
                    ),
            ),
        }
    }

    /// The queue underneath.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Attaches the queue to its node (targets are checked in its registry; its
    /// workers start).
    pub fn attach(&self, node: &Node) {
        self.jobs.attach(node);
    }
}

/// The `jobs.*` methods, built once.
static METHODS: LazyLock<MethodTable<Jobs>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<Enqueue, Enqueued, _>(
            "enqueue",
            "Add a job: a deferred call to a registered method, checked against its schema now",
            Effect::Mutating,
            enqueue,
        )
        .method::<IdParams, Job, _>("get", "A job by id", Effect::Idempotent, get)
        .method::<IdParams, Job, _>(
            "cancel",
            "Cancel a pending or running job",
            Effect::Mutating,
            cancel,
        )
        .method::<IdParams, Job, _>(
            "retry",
            "Run a dead or cancelled job again now, attempts counted afresh",
            Effect::Mutating,
            retry,
        )
        .method::<ProgressParams, Job, _>(
            "progress",
            "Report a running job's progress from its target (the attempt it got in plexus-job-attempt): kept with the job and announced",
            Effect::Mutating,
            progress,
        )
        .method::<TransactionParams, TransactionResults, _>(
            "transaction",
            "Apply DataStore operations and enqueue jobs in one transaction: the jobs exist only if the data change commits (needs call:datastore.transaction too)",
            Effect::Mutating,
            transaction,
        )
        .method::<ListParams, JobList, _>(
            "list",
            "Jobs by queue and state, in id order",
            Effect::Idempotent,
            list,
        )
        .method::<QueueOpt, Stats, _>(
            "stats",
            "Counts of jobs by state, per queue",
            Effect::Idempotent,
            stats,
        )
        .method::<QueueParams, Paused, _>(
            "pause",
            "Stop starting jobs of a queue, on every node",
            Effect::Idempotent,
            pause,
        )
        .method::<QueueParams, Paused, _>(
            "resume",
            "Start jobs of a paused queue again",
            Effect::Idempotent,
            resume,
        )
        .method::<DeadParams, JobList, _>(
            "dead",
            "The dead-letter list: jobs past their attempts, with their error history",
            Effect::Idempotent,
            dead,
        )
        .method::<RequeueParams, Requeued, _>(
            "requeue",
            "Run dead jobs again: those named, or every dead job of a queue",
            Effect::Mutating,
            requeue,
        )
        .method::<Schedule, ScheduleRow, _>(
            "schedule",
            "Add or replace a recurring schedule: a cron pattern in a time zone and the job each fire enqueues (once across nodes)",
            Effect::Idempotent,
            schedule,
        )
        .method::<NameParams, Removed, _>(
            "unschedule",
            "Remove a recurring schedule",
            Effect::Idempotent,
            unschedule,
        )
        .method::<NoParams, Schedules, _>(
            "schedules",
            "The recurring schedules with their next fire times",
            Effect::Idempotent,
            schedules,
        )
});

/// Params naming a schedule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameParams {
    /// The schedule's name.
    name: String,
}

/// No params.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Whether a schedule was removed.
#[derive(Debug, Serialize, JsonSchema)]
struct Removed {
    /// False when there was none.
    removed: bool,
}

/// The schedules.
#[derive(Debug, Serialize, JsonSchema)]
struct Schedules {
    /// By name.
    schedules: Vec<ScheduleRow>,
}

async fn schedule(s: &Jobs, ctx: CallContext, p: Schedule) -> Result<ScheduleRow, ServiceError> {
    Ok(s.schedule(p, &ctx).await?)
}

async fn unschedule(s: &Jobs, _: CallContext, p: NameParams) -> Result<Removed, ServiceError> {
    Ok(Removed {
        removed: s.unschedule(&p.name).await?,
    })
}

async fn schedules(s: &Jobs, _: CallContext, _: NoParams) -> Result<Schedules, ServiceError> {
    Ok(Schedules {
        schedules: s.schedules().await?,
    })
}

/// Params of `jobs.transaction`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TransactionParams {
    /// The DataStore operations, applied in order (as `datastore.transaction`).
    #[schemars(length(max = 1_000))]
    ops: Vec<plexus_store::Op>,
    /// The jobs to add if they all commit.
    #[schemars(length(min = 1, max = 1_000))]
    jobs: Vec<Enqueue>,
}

/// What `jobs.transaction` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct TransactionResults {
    /// Each operation's outcome, as `datastore.transaction` answers it.
    #[schemars(with = "Vec<serde_json::Value>")]
    results: Vec<plexus_store::OpResult>,
    /// Each job's `{id, created}`, in order.
    jobs: Vec<Enqueued>,
}

async fn transaction(
    s: &Jobs,
    ctx: CallContext,
    p: TransactionParams,
) -> Result<TransactionResults, ServiceError> {
    let (results, jobs) = s.transaction_of(p.ops, p.jobs, &ctx).await?;
    Ok(TransactionResults { results, jobs })
}

/// Params of `jobs.progress`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProgressParams {
    /// The job's id (the target's `plexus-job-id` header).
    id: i64,
    /// The running attempt (the target's `plexus-job-attempt` header).
    attempt: u32,
    /// Anything: `{"done": 3, "of": 10}`, a percentage, a stage.
    progress: serde_json::Value,
}

async fn progress(s: &Jobs, _: CallContext, p: ProgressParams) -> Result<Job, ServiceError> {
    Ok(s.progress(p.id, p.attempt, p.progress).await?)
}

/// Params naming a job.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IdParams {
    /// The job's id.
    id: i64,
}

/// Params of `jobs.list`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Only this queue.
    #[serde(default)]
    queue: Option<String>,
    /// Only this state.
    #[serde(default)]
    state: Option<JobState>,
    /// Only ids above this (the last id of the previous page).
    #[serde(default)]
    after: Option<i64>,
    /// At most this many (default and most `jobs.max_list`).
    #[serde(default)]
    limit: Option<u32>,
}

/// Params of `jobs.dead`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeadParams {
    /// Only this queue.
    #[serde(default)]
    queue: Option<String>,
    /// Only ids above this.
    #[serde(default)]
    after: Option<i64>,
    /// At most this many.
    #[serde(default)]
    limit: Option<u32>,
}

/// Jobs.
#[derive(Debug, Serialize, JsonSchema)]
struct JobList {
    /// In id order.
    jobs: Vec<Job>,
}

/// Params naming a queue, or none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueueOpt {
    /// Only this queue.
    #[serde(default)]
    queue: Option<String>,
}

/// Per-queue counts.
#[derive(Debug, Serialize, JsonSchema)]
struct Stats {
    /// Every queue with jobs or paused.
    queues: Vec<QueueStats>,
}

/// Params naming a queue.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueueParams {
    /// The queue.
    queue: String,
}

/// A queue paused or resumed.
#[derive(Debug, Serialize, JsonSchema)]
struct Paused {
    /// The queue.
    queue: String,
    /// Whether it is paused now.
    paused: bool,
}

/// Params of `jobs.requeue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RequeueParams {
    /// These jobs (dead or cancelled).
    #[serde(default)]
    ids: Option<Vec<i64>>,
    /// Or every dead job of this queue (with neither: of every queue).
    #[serde(default)]
    queue: Option<String>,
}

/// How many jobs went back to waiting.
#[derive(Debug, Serialize, JsonSchema)]
struct Requeued {
    /// How many.
    requeued: u64,
}

async fn enqueue(s: &Jobs, ctx: CallContext, p: Enqueue) -> Result<Enqueued, ServiceError> {
    Ok(s.enqueue(p, &ctx).await?)
}

async fn get(s: &Jobs, _: CallContext, p: IdParams) -> Result<Job, ServiceError> {
    Ok(s.get(p.id).await?)
}

async fn cancel(s: &Jobs, _: CallContext, p: IdParams) -> Result<Job, ServiceError> {
    Ok(s.cancel(p.id).await?)
}

async fn retry(s: &Jobs, _: CallContext, p: IdParams) -> Result<Job, ServiceError> {
    Ok(s.retry(p.id).await?)
}

async fn list(s: &Jobs, _: CallContext, p: ListParams) -> Result<JobList, ServiceError> {
    let jobs = s.list(p.queue, p.state, p.after, p.limit).await?;
    Ok(JobList { jobs })
}

async fn stats(s: &Jobs, _: CallContext, p: QueueOpt) -> Result<Stats, ServiceError> {
    Ok(Stats {
        queues: s.stats(p.queue.as_deref()).await?,
    })
}

async fn pause(s: &Jobs, _: CallContext, p: QueueParams) -> Result<Paused, ServiceError> {
    s.set_paused(&p.queue, true).await?;
    Ok(Paused {
        queue: p.queue,
        paused: true,
    })
}

async fn resume(s: &Jobs, _: CallContext, p: QueueParams) -> Result<Paused, ServiceError> {
    s.set_paused(&p.queue, false).await?;
    Ok(Paused {
        queue: p.queue,
        paused: false,
    })
}

async fn dead(s: &Jobs, _: CallContext, p: DeadParams) -> Result<JobList, ServiceError> {
    let jobs = s
        .list(p.queue, Some(JobState::Dead), p.after, p.limit)
        .await?;
    Ok(JobList { jobs })
}

async fn requeue(s: &Jobs, _: CallContext, p: RequeueParams) -> Result<Requeued, ServiceError> {
    if p.ids.is_some() && p.queue.is_some() {
        return Err(ServiceError::invalid_params(
            "/queue",
            "give ids or queue, not both",
        ));
    }
    let requeued = s.requeue(p.ids.as_deref(), p.queue.as_deref()).await?;
    Ok(Requeued { requeued })
}

impl TableService for JobService {
    type State = Jobs;

    fn parts(&self) -> TableParts<'_, Jobs> {
        (&METHODS, &self.jobs, &self.descriptor)
    }
}
