//! The conformance suite (feature `test-util`): what every [`JobBackend`] must do,
//! driven through [`Jobs`] and the `jobs.*` service on a real node whose `work`
//! service is the jobs' target. Times move on a manual [`Clock`] (the queue's
//! paused time); waits are on bus events or on the target's calls, each bounded.
//!
//! A backend's tests call each `pub async fn` here with a fresh backend (and, for
//! the transactional enqueue, a DataStore on the same database).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::Mutex;
use plexus_bus::{SubscribeOptions, Subscription};
use plexus_core::methods::{Effect, MethodTable, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use plexus_node::{CallError, Node};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::{
    Clock, Enqueue, HEADER_ATTEMPT, JobBackend, JobError, JobMetrics, JobService, JobState, Jobs,
    JobsConfig,
};
use futures::FutureExt;
use plexus_store::{DataStore, Op, PutMode};

/// The bound on every wait.
const BOUND: Duration = Duration::from_secs(20);

/// The start of the manual clock: 2026-01-01.
const START_MS: i64 = 1_767_225_600_000;

/// What the `work` service saw: `(tag, attempt)` per call; and the gate its
/// `held` calls wait at.
#[derive(Debug, Default)]
pub struct WorkLog {
    calls: Mutex<Vec<(String, u32)>>,
    changed: Notify,
    gate: tokio::sync::watch::Sender<bool>,
}

impl WorkLog {
    /// Lets every `work.held` call (waiting or to come) answer.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<(String, u32)> {
        self.calls.lock().clone()
    }

    /// Waits (bounded) until at least `n` calls were made.
    pub async fn wait_calls(&self, n: usize) -> Vec<(String, u32)> {
        tokio::time::timeout(BOUND, async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let calls = self.calls();
                if calls.len() >= n {
                    return calls;
                }
                changed.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} calls expected, saw {:?}", self.calls()))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RecordParams {
    /// A label.
    tag: String,
    /// Fail while the attempt is below this (default 0: never).
    #[serde(default)]
    fail_until: u32,
}

fn attempt_of(ctx: &CallContext) -> u32 {
    ctx.headers
        .get(HEADER_ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

async fn record(
    s: &Arc<WorkLog>,
    ctx: CallContext,
    p: RecordParams,
) -> Result<Value, ServiceError> {
    let attempt = attempt_of(&ctx);
    s.calls.lock().push((p.tag.clone(), attempt));
    s.changed.notify_waiters();
    if attempt < p.fail_until {
        return Err(ServiceError::failed(format!("attempt {attempt} fails")));
    }
    Ok(json!({"tag": p.tag, "attempt": attempt}))
}

async fn hang(s: &Arc<WorkLog>, ctx: CallContext, p: RecordParams) -> Result<Value, ServiceError> {
    s.calls.lock().push((p.tag, attempt_of(&ctx)));
    s.changed.notify_waiters();
    std::future::pending::<()>().await;
    Ok(Value::Null)
}

async fn held(s: &Arc<WorkLog>, ctx: CallContext, p: RecordParams) -> Result<Value, ServiceError> {
    let attempt = attempt_of(&ctx);
    s.calls.lock().push((p.tag.clone(), attempt));
    s.changed.notify_waiters();
    let mut open = s.gate.subscribe();
    let _ = open.wait_for(|o| *o).await;
    Ok(json!({"tag": p.tag, "attempt": attempt}))
}

static WORK: LazyLock<MethodTable<Arc<WorkLog>>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<RecordParams, Value, _>(
            "held",
            "Record the call and answer once the gate is open",
            Effect::Mutating,
            held,
        )
        .method::<RecordParams, Value, _>("record", "Record the call", Effect::Mutating, record)
        .method::<RecordParams, Value, _>(
            "hang",
            "Record the call and never answer",
            Effect::Mutating,
            hang,
        )
});

/// The jobs' target: `work.record {tag, fail_until?}`, `work.hang {tag}` and
/// `work.held {tag}`.
#[derive(Debug)]
struct WorkService {
    log: Arc<WorkLog>,
    descriptor: ServiceDescriptor,
}

impl TableService for WorkService {
    type State = Arc<WorkLog>;

    fn parts(&self) -> TableParts<'_, Arc<WorkLog>> {
        (&WORK, &self.log, &self.descriptor)
    }
}

/// A node with the `jobs` service over a backend and the `work` target.
pub struct Harness {
    /// The node.
    pub node: Node,
    /// The queue.
    pub jobs: Jobs,
    /// What the target saw.
    pub log: Arc<WorkLog>,
    events: Subscription,
}

impl Harness {
    /// A node over `backend` with `config`, on a manual clock, workers running.
    pub async fn start(backend: Arc<dyn JobBackend>, config: JobsConfig) -> Self {
        Self::start_on(backend, config, Clock::manual(START_MS)).await
    }

    /// The same on `clock` (two nodes may share one).
    pub async fn start_on(backend: Arc<dyn JobBackend>, config: JobsConfig, clock: Clock) -> Self {
        Self::start_logged(backend, config, clock, Arc::new(WorkLog::default())).await
    }

    /// The same with its target writing to `log` (two nodes may share one).
    pub async fn start_logged(
        backend: Arc<dyn JobBackend>,
        config: JobsConfig,
        clock: Clock,
        log: Arc<WorkLog>,
    ) -> Self {
        let jobs = Jobs::new(backend, config, JobMetrics::new(), clock);
        let work = WorkService {
            log: log.clone(),
            descriptor: WORK.describe(ServiceDescriptor::new("work", "work")),
        };
        let service = JobService::new(jobs.clone());
        let node = Node::builder("jobs-conformance")
            .service(Arc::new(service.clone()))
            .service(Arc::new(work))
            .start()
            .await
            .unwrap();
        let events = node
            .bus()
            .subscribe("jobs.>", SubscribeOptions::default())
            .unwrap();
        service.attach(&node);
        Self {
            node,
            jobs,
            log,
            events,
        }
    }

    /// Calls `jobs.<method>` through the call path.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        self.node
            .call(&format!("jobs.{method}"), params, CallContext::new())
            .await
    }

    /// Enqueues through `jobs.enqueue`; answers the id.
    pub async fn enqueue(&self, params: Value) -> i64 {
        let answer = self.call("enqueue", params).await.unwrap();
        answer["id"].as_i64().unwrap()
    }

    /// Waits (bounded) for the next event whose topic ends in `.{what}` for job
    /// `id`; answers its payload.
    pub async fn event(&mut self, what: &str, id: i64) -> Value {
        let suffix = format!(".{what}");
        tokio::time::timeout(BOUND, async {
            loop {
                let envelope = self.events.recv().await.expect("bus closed");
                let payload = envelope.payload().decode::<Value>().unwrap();
                if envelope.topic().as_str().ends_with(&suffix) && payload["id"] == id {
                    return (*payload).clone();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{what}` event for job {id}"))
    }

    /// Moves the clock.
    pub fn advance(&self, by: Duration) {
        self.jobs.clock().advance(by);
    }

    /// The job's state now.
    pub async fn state(&self, id: i64) -> JobState {
        self.jobs.get(id).await.unwrap().state
    }
}

fn invalid_field(err: CallError) -> String {
    match err {
        CallError::InvalidParams { field, .. } => field,
        other => panic!("expected invalid params, got {other:?}"),
    }
}

fn paused_config() -> JobsConfig {
    JobsConfig {
        concurrency: 1,
        max_running: 1,
        ..JobsConfig::default()
    }
}

/// Jobs run by priority, then `run_at`, then arrival; a delayed job waits for
/// the clock; a paused queue starts nothing until resumed.
pub async fn ordering_delay_and_pause(backend: Arc<dyn JobBackend>) {
    let h = Harness::start(backend, paused_config()).await;
    h.call("pause", json!({"queue": "q"})).await.unwrap();
    let job = |tag: &str, priority: i32| json!({"queue": "q", "target": "work.record", "params": {"tag": tag}, "priority": priority});
    h.enqueue(job("low-1", 0)).await;
    h.enqueue(job("high", 5)).await;
    h.enqueue(job("low-2", 0)).await;
    h.enqueue(json!({"queue": "q", "target": "work.record", "params": {"tag": "earlier"}, "run_at": START_MS - 1_000})).await;
    let later = h
        .enqueue(json!({"queue": "q", "target": "work.record", "params": {"tag": "later"}, "priority": 9, "delay_ms": 60_000}))
        .await;
    let stats = h.call("stats", json!({"queue": "q"})).await.unwrap();
    assert_eq!(stats["queues"][0]["paused"], true);
    assert_eq!(stats["queues"][0]["pending"], 5);
    assert!(h.log.calls().is_empty(), "a paused queue ran a job");

    h.call("resume", json!({"queue": "q"})).await.unwrap();
    let calls = h.log.wait_calls(4).await;
    let tags: Vec<&str> = calls.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tags, ["high", "earlier", "low-1", "low-2"]);
    assert_eq!(
        h.state(later).await,
        JobState::Pending,
        "ran before its delay"
    );

    h.advance(Duration::from_secs(60));
    let calls = h.log.wait_calls(5).await;
    assert_eq!(calls[4], ("later".to_owned(), 1));
    h.jobs.close();
}

/// A failing job retries with exponential backoff (with jitter, never below half)
/// and its attempt number; past max attempts it is dead with its error history;
/// requeue runs it again; a completed job keeps its result.
pub async fn retries_backoff_dead_and_requeue(backend: Arc<dyn JobBackend>) {
    let mut h = Harness::start(backend, JobsConfig::default()).await;
    let id = h
        .enqueue(json!({"queue": "mail", "target": "work.record", "params": {"tag": "r", "fail_until": 9}, "max_attempts": 3, "backoff_ms": 1_000}))
        .await;
    let failed = h.event("failed", id).await;
    assert_eq!(failed["attempt"], 1);
    let first_retry = failed["retry_at"].as_i64().unwrap() - START_MS;
    assert!((500..=1_000).contains(&first_retry), "{first_retry}");
    h.advance(Duration::from_millis(1_000));
    let failed = h.event("failed", id).await;
    assert_eq!(failed["attempt"], 2);
    let second_retry = failed["retry_at"].as_i64().unwrap() - (START_MS + 1_000);
    assert!((1_000..=2_000).contains(&second_retry), "{second_retry}");
    h.advance(Duration::from_millis(2_000));
    let dead = h.event("dead", id).await;
    assert_eq!(dead["attempt"], 3);
    let attempts: Vec<u32> = h.log.calls().iter().map(|c| c.1).collect();
    assert_eq!(attempts, [1, 2, 3]);

    let listed = h.call("dead", json!({"queue": "mail"})).await.unwrap();
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], id);
    assert_eq!(jobs[0]["errors"].as_array().unwrap().len(), 3);
    assert_eq!(jobs[0]["errors"][2]["attempt"], 3);

    let requeued = h.call("requeue", json!({"queue": "mail"})).await.unwrap();
    assert_eq!(requeued["requeued"], 1);
    h.event("failed", id).await;
    assert_eq!(h.log.calls().len(), 4);
    assert_eq!(h.log.calls()[3].1, 1, "attempts counted afresh");

    let ok = h
        .enqueue(json!({"queue": "mail", "target": "work.record", "params": {"tag": "fine"}}))
        .await;
    let done = h.event("completed", ok).await;
    assert_eq!(done["result"], json!({"tag": "fine", "attempt": 1}));
    let job = h.call("get", json!({"id": ok})).await.unwrap();
    assert_eq!(job["state"], "completed");
    assert_eq!(job["result"]["tag"], "fine");
    h.jobs.close();
}

/// A job whose worker died (its lease ran out) is recovered by another node and
/// runs again with attempt 2; the stalled event names it; the dead worker's late
/// answer changes nothing.
pub async fn expired_lease_is_recovered(backend: Arc<dyn JobBackend>) {
    let clock = Clock::manual(START_MS);
    // A node that only takes enqueues (no workers)…
    let takes = JobsConfig {
        workers: false,
        ..JobsConfig::default()
    };
    let first = Harness::start_on(backend.clone(), takes, clock.clone()).await;
    let id = first
        .enqueue(json!({"queue": "q", "target": "work.record", "params": {"tag": "x"}}))
        .await;
    // …a worker that takes the job and dies without a word…
    let now = clock.now_ms();
    let taken = backend
        .claim(now, &[], "dead-worker", now + 30_000)
        .await
        .unwrap();
    assert_eq!(taken.map(|j| (j.id, j.attempt)), Some((id, 1)));
    // …and a node with workers, which leaves the job alone until its lease ends.
    let mut h = Harness::start_on(backend.clone(), JobsConfig::default(), clock).await;
    assert_eq!(h.state(id).await, JobState::Running);
    h.advance(Duration::from_secs(31));
    let stalled = h.event("stalled", id).await;
    assert_eq!(stalled["attempt"], 1);
    let done = h.event("completed", id).await;
    assert_eq!(done["attempt"], 2);
    assert_eq!(h.log.calls(), [("x".to_owned(), 2)]);
    assert!(
        !backend
            .complete(id, "dead-worker", now, &json!("late"))
            .await
            .unwrap()
    );
    assert_eq!(
        h.jobs.get(id).await.unwrap().result,
        Some(json!({"tag": "x", "attempt": 2}))
    );
    h.jobs.close();
}

/// A unique key lets one job in per window; cancel stops a pending job and frees
/// its key; retry runs a cancelled job.
pub async fn unique_keys_and_cancel(backend: Arc<dyn JobBackend>) {
    let h = Harness::start(backend, JobsConfig::default()).await;
    h.call("pause", json!({"queue": "u"})).await.unwrap();
    let job = json!({"queue": "u", "target": "work.record", "params": {"tag": "u"}, "unique_key": "k", "unique_window_ms": 10_000});
    let first = h.call("enqueue", job.clone()).await.unwrap();
    let again = h.call("enqueue", job.clone()).await.unwrap();
    assert_eq!(first["created"], true);
    assert_eq!(again, json!({"id": first["id"], "created": false}));
    let id = first["id"].as_i64().unwrap();

    h.advance(Duration::from_millis(10_001));
    let after_window = h.call("enqueue", job.clone()).await.unwrap();
    assert_eq!(after_window["created"], true);
    let second = after_window["id"].as_i64().unwrap();

    let cancelled = h.call("cancel", json!({"id": second})).await.unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let third = h.call("enqueue", job).await.unwrap();
    assert_eq!(third["created"], true, "a cancelled job holds no key");
    let err = h.call("cancel", json!({"id": second})).await.unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    let missing = h.call("get", json!({"id": 999_999})).await.unwrap_err();
    assert!(missing.to_string().contains("no job"), "{missing}");

    h.call("retry", json!({"id": second})).await.unwrap();
    h.call("cancel", json!({"id": id})).await.unwrap();
    h.call("resume", json!({"queue": "u"})).await.unwrap();
    let calls = h.log.wait_calls(2).await;
    assert_eq!(calls.len(), 2);
    let listed = h
        .call("list", json!({"queue": "u", "state": "cancelled"}))
        .await
        .unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
    h.jobs.close();
}

/// Bad input is refused at enqueue with the field named, and nothing is kept.
pub async fn bad_input_is_refused(backend: Arc<dyn JobBackend>) {
    let config = JobsConfig {
        max_params_bytes: 1_000,
        ..JobsConfig::default()
    };
    let h = Harness::start(backend, config).await;
    let cases = [
        (json!({"target": "nope.send", "params": {}}), "/target"),
        (json!({"target": "work.missing", "params": {}}), "/target"),
        (json!({"target": "plain", "params": {}}), "/target"),
        (
            json!({"target": "work.record", "params": {}}),
            "/params/tag",
        ),
        (
            json!({"target": "work.record", "params": {"tag": 5}}),
            "/params/tag",
        ),
        (
            json!({"target": "work.record", "params": {"tag": "a", "extra": 1}}),
            "/params/extra",
        ),
        (
            json!({"target": "work.record", "params": {"tag": "a"}, "delay_ms": -5}),
            "/delay_ms",
        ),
        (
            json!({"target": "work.record", "params": {"tag": "x".repeat(2_000)}}),
            "/params",
        ),
        (
            json!({"target": "work.record", "params": {"tag": "a"}, "queue": "Bad Queue"}),
            "/queue",
        ),
        (
            json!({"target": "work.record", "params": {"tag": "a"}, "max_attempts": 0}),
            "/max_attempts",
        ),
        (
            json!({"target": "work.record", "params": {"tag": "a"}, "priority": 5_000}),
            "/priority",
        ),
        (
            json!({"target": "work.record", "params": {"tag": "a"}, "unique_window_ms": 5}),
            "/unique_window_ms",
        ),
    ];
    for (params, field) in cases {
        let err = h.call("enqueue", params.clone()).await.unwrap_err();
        assert_eq!(invalid_field(err), field, "{params}");
    }
    let stats = h.call("stats", json!({})).await.unwrap();
    assert_eq!(stats["queues"], json!([]));
    assert_eq!(h.jobs.metrics().counts().refused, 12);
    h.jobs.close();
}

/// Per-queue concurrency: with a limit of one, a hanging job holds its queue
/// while another queue keeps running.
pub async fn per_queue_concurrency(backend: Arc<dyn JobBackend>) {
    let mut config = JobsConfig::default();
    config.queues.insert("slow".to_owned(), 1);
    let mut h = Harness::start(backend, config).await;
    h.enqueue(json!({"queue": "slow", "target": "work.hang", "params": {"tag": "h1"}}))
        .await;
    h.log.wait_calls(1).await;
    let waiting = h
        .enqueue(json!({"queue": "slow", "target": "work.record", "params": {"tag": "s2"}}))
        .await;
    let other = h
        .enqueue(json!({"queue": "fast", "target": "work.record", "params": {"tag": "f"}}))
        .await;
    h.event("completed", other).await;
    assert_eq!(
        h.state(waiting).await,
        JobState::Pending,
        "the queue's limit was passed"
    );
    let stats = h.call("stats", json!({"queue": "slow"})).await.unwrap();
    assert_eq!(stats["queues"][0]["running"], 1);
    h.jobs.close();
}

/// A live worker keeps its lease: a job running for several leases (system clock,
/// short lease) is renewed, never marked stalled, never run twice.
pub async fn live_worker_keeps_its_lease(backend: Arc<dyn JobBackend>) {
    let config = JobsConfig {
        lease_ms: 300,
        poll_ms: 50,
        ..JobsConfig::default()
    };
    let h = Harness::start_on(backend, config, Clock::system()).await;
    let id = h
        .enqueue(json!({"queue": "long", "target": "work.hang", "params": {"tag": "l"}}))
        .await;
    h.log.wait_calls(1).await;
    let first = h.jobs.get(id).await.unwrap().lease_until.unwrap();
    // Wait (bounded) until the lease was renewed past three of its lengths.
    tokio::time::timeout(BOUND, async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let job = h.jobs.get(id).await.unwrap();
            assert_eq!(job.state, JobState::Running, "{job:?}");
            if job.lease_until.unwrap() > first + 900 {
                return;
            }
        }
    })
    .await
    .expect("the lease was renewed");
    let counts = h.jobs.metrics().counts();
    assert_eq!(counts.stalled, 0);
    assert_eq!(h.log.calls(), [("l".to_owned(), 1)], "run once");
    assert_eq!(h.jobs.get(id).await.unwrap().attempt, 1);
    h.jobs.close();
}

/// Two nodes' workers on one backend, racing for the same jobs: each job runs
/// exactly once, on its first attempt.
pub async fn two_nodes_run_each_job_once(backend: Arc<dyn JobBackend>) {
    const JOBS: usize = 40;
    let clock = Clock::manual(START_MS);
    let log = Arc::new(WorkLog::default());
    let config = JobsConfig {
        concurrency: 8,
        max_running: 8,
        ..JobsConfig::default()
    };
    let a =
        Harness::start_logged(backend.clone(), config.clone(), clock.clone(), log.clone()).await;
    let b = Harness::start_logged(backend.clone(), config, clock.clone(), log.clone()).await;
    a.call("pause", json!({"queue": "race"})).await.unwrap();
    for i in 0..JOBS {
        a.enqueue(
            json!({"queue": "race", "target": "work.record", "params": {"tag": format!("j{i}")}}),
        )
        .await;
    }
    a.call("resume", json!({"queue": "race"})).await.unwrap();
    // Wakes both dispatchers at once.
    clock.advance(Duration::from_millis(1));
    let calls = log.wait_calls(JOBS).await;
    let mut tags: Vec<&str> = calls.iter().map(|(t, _)| t.as_str()).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags.len(), JOBS, "a job ran twice: {calls:?}");
    assert!(calls.iter().all(|(_, attempt)| *attempt == 1), "{calls:?}");
    let started = a.jobs.metrics().counts().started + b.jobs.metrics().counts().started;
    assert_eq!(started, JOBS as u64);
    a.jobs.close();
    b.jobs.close();
}

/// Many enqueues of one unique key at once add one job; every caller is answered
/// its id.
pub async fn unique_key_holds_under_concurrent_enqueues(backend: Arc<dyn JobBackend>) {
    let h = Harness::start(backend, JobsConfig::default()).await;
    h.call("pause", json!({"queue": "once"})).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let node = h.node.clone();
        tasks.spawn(async move {
            let job = json!({"queue": "once", "target": "work.record", "params": {"tag": "o"}, "unique_key": "same"});
            node.call("jobs.enqueue", job, CallContext::new()).await.unwrap()
        });
    }
    let answers = tasks.join_all().await;
    let created = answers.iter().filter(|a| a["created"] == true).count();
    assert_eq!(created, 1, "{answers:?}");
    let first = &answers[0]["id"];
    assert!(answers.iter().all(|a| &a["id"] == first), "{answers:?}");
    let stats = h.call("stats", json!({"queue": "once"})).await.unwrap();
    assert_eq!(stats["queues"][0]["pending"], 1);
    h.jobs.close();
}

fn tx_job(tag: &str, key: Option<&str>) -> Enqueue {
    Enqueue {
        queue: Some("tx".to_owned()),
        target: "work.record".to_owned(),
        params: json!({"tag": tag}),
        unique_key: key.map(str::to_owned),
        ..Enqueue::default()
    }
}

fn put(id: &str) -> Op {
    Op::Put {
        collection: "orders".to_owned(),
        id: id.to_owned(),
        doc: json!({"id": id}),
        mode: PutMode::Insert,
        expected_version: None,
    }
}

/// A job enqueued in a DataStore transaction (same database) exists only if the
/// transaction commits; a unique key taken by a transaction that rolls back does
/// not block a later enqueue of it, even one made while that transaction was open.
pub async fn transactional_enqueue(backend: Arc<dyn JobBackend>, store: DataStore) {
    let mut h = Harness::start(backend, JobsConfig::default()).await;
    let ctx = CallContext::new();
    store
        .create_collection("orders", Default::default())
        .await
        .unwrap();

    // Committed: the order and its job, and the job runs.
    let (_, added) = h
        .jobs
        .transaction(&store, vec![put("o1")], vec![tx_job("c", None)], &ctx)
        .await
        .unwrap();
    assert!(added[0].created);
    h.event("completed", added[0].id).await;
    assert!(store.get("orders", "o1").await.unwrap().is_some());

    // Rolled back after the job was written: neither the order nor the job.
    h.call("pause", json!({"queue": "tx"})).await.unwrap();
    let (jobs, tx_ctx) = (h.jobs.clone(), ctx.clone());
    let failed = store
        .transaction_with(vec![put("o2")], |s| {
            async move {
                let added = jobs.enqueue_in(s, tx_job("r", None), &tx_ctx).await?;
                assert!(added.created);
                Err::<(), _>(JobError::invalid("/test", "the caller gives up"))
            }
            .boxed()
        })
        .await;
    assert!(
        matches!(failed, Err(JobError::Invalid { .. })),
        "{failed:?}"
    );
    assert!(store.get("orders", "o2").await.unwrap().is_none());
    let pending = h
        .jobs
        .list(Some("tx".to_owned()), Some(JobState::Pending), None, None)
        .await
        .unwrap();
    assert!(pending.is_empty(), "a rolled-back job exists: {pending:?}");

    // A bad job refuses the whole transaction before anything is written.
    let mut bad = tx_job("b", None);
    bad.delay_ms = Some(-1);
    let refused = h
        .jobs
        .transaction(&store, vec![put("o3")], vec![tx_job("ok", None), bad], &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, JobError::Invalid { field, .. } if field == "/jobs/1/delay_ms"),
        "{refused:?}"
    );
    assert!(store.get("orders", "o3").await.unwrap().is_none());

    // A unique key held by an open transaction that then rolls back.
    let (taken_tx, taken) = tokio::sync::oneshot::channel::<i64>();
    let (give_up_tx, give_up) = tokio::sync::oneshot::channel::<()>();
    let (jobs, inner_store) = (h.jobs.clone(), store.clone());
    let holder = tokio::spawn(async move {
        inner_store
            .transaction_with(Vec::new(), |s| {
                async move {
                    let ctx = CallContext::new();
                    let added = jobs.enqueue_in(s, tx_job("held", Some("k")), &ctx).await?;
                    taken_tx.send(added.id).unwrap();
                    give_up.await.unwrap();
                    Err::<(), _>(JobError::invalid("/test", "rolled back"))
                }
                .boxed()
            })
            .await
    });
    let rolled_back_id = tokio::time::timeout(BOUND, taken).await.unwrap().unwrap();
    let jobs = h.jobs.clone();
    let waiting = tokio::spawn(async move {
        jobs.enqueue(tx_job("later", Some("k")), &CallContext::new())
            .await
    });
    give_up_tx.send(()).unwrap();
    assert!(holder.await.unwrap().is_err());
    let later = tokio::time::timeout(BOUND, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(later.created, "the rolled-back key blocked the enqueue");
    let again = h
        .jobs
        .enqueue(tx_job("again", Some("k")), &ctx)
        .await
        .unwrap();
    assert_eq!((again.id, again.created), (later.id, false));
    // Only the later job holds the key (SQLite may reuse the rolled-back id).
    let pending = h
        .jobs
        .list(Some("tx".to_owned()), Some(JobState::Pending), None, None)
        .await
        .unwrap();
    let tags: Vec<&Value> = pending.iter().map(|j| &j.params["tag"]).collect();
    assert_eq!(tags, [&json!("later")], "rolled back: {rolled_back_id}");
    h.jobs.close();
}

/// On a backend whose jobs are not in the DataStore's database: an enqueue in a
/// DataStore transaction is refused with [`JobError::NotTransactional`] (saying
/// what to do instead) before anything is written, neither the data nor the job.
pub async fn transactional_enqueue_is_refused(backend: Arc<dyn JobBackend>, store: DataStore) {
    let h = Harness::start(backend, JobsConfig::default()).await;
    let name = h.jobs.backend().name();
    let ctx = CallContext::new();
    store
        .create_collection("orders", Default::default())
        .await
        .unwrap();
    let refused = h
        .jobs
        .transaction(&store, vec![put("o1")], vec![tx_job("t", None)], &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, JobError::NotTransactional { backend } if backend == name),
        "{refused:?}"
    );
    assert!(
        refused
            .to_string()
            .contains("enqueue after the transaction commits"),
        "{refused}"
    );
    assert!(store.get("orders", "o1").await.unwrap().is_none());

    let (jobs, tx_ctx) = (h.jobs.clone(), ctx.clone());
    let failed = store
        .transaction_with(vec![put("o2")], |s| {
            async move {
                jobs.enqueue_in(s, tx_job("t", None), &tx_ctx)
                    .await
                    .map(|_| ())
            }
            .boxed()
        })
        .await;
    assert!(
        matches!(failed, Err(JobError::NotTransactional { .. })),
        "{failed:?}"
    );
    assert!(store.get("orders", "o2").await.unwrap().is_none());
    let stats = h.call("stats", json!({})).await.unwrap();
    assert_eq!(stats["queues"], json!([]), "a refused job was kept");
    h.jobs.close();
}

/// A cron schedule fires once per fire time though two nodes' dispatchers both see
/// it due; its pattern is read in its time zone; bad schedules are refused naming
/// the field.
pub async fn cron_fires_once_across_two_nodes(backend: Arc<dyn JobBackend>) {
    let clock = Clock::manual(START_MS);
    let log = Arc::new(WorkLog::default());
    // The clock jumps a minute at a time: leases longer than that, so a job still
    // storing its answer is not taken for stalled.
    let config = JobsConfig {
        lease_ms: 3_600_000,
        ..JobsConfig::default()
    };
    let a =
        Harness::start_logged(backend.clone(), config.clone(), clock.clone(), log.clone()).await;
    let b = Harness::start_logged(backend.clone(), config, clock.clone(), log.clone()).await;
    let made = a
        .call("schedule", json!({"name": "tick", "cron": "* * * * *", "job": {"queue": "cron", "target": "work.record", "params": {"tag": "tick"}}}))
        .await
        .unwrap();
    assert_eq!(made["next_at"], START_MS + 60_000);
    // 09:00 in Paris on 2026-01-01 is 08:00 UTC.
    let paris = a
        .call("schedule", json!({"name": "paris", "cron": "0 9 * * *", "timezone": "Europe/Paris", "job": {"queue": "other", "target": "work.record", "params": {"tag": "paris"}}}))
        .await
        .unwrap();
    assert_eq!(paris["next_at"], START_MS + 8 * 3_600_000);

    for n in 1..=3 {
        clock.advance(Duration::from_secs(60));
        log.wait_calls(n).await;
    }
    let fired = a
        .jobs
        .list(Some("cron".to_owned()), None, None, None)
        .await
        .unwrap();
    let fire_times: Vec<i64> = fired.iter().map(|j| j.run_at).collect();
    assert_eq!(
        fire_times,
        [START_MS + 60_000, START_MS + 120_000, START_MS + 180_000],
        "{fired:?}"
    );
    // A dispatcher counts its fire just after the job exists, so the count may
    // trail the run by a moment: give it a bounded number of turns.
    let enqueued = || a.jobs.metrics().counts().enqueued + b.jobs.metrics().counts().enqueued;
    for _ in 0..10_000 {
        if enqueued() >= 3 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        enqueued(),
        3,
        "a fire time was enqueued twice (or never counted)"
    );
    assert_eq!(log.calls(), vec![("tick".to_owned(), 1); 3]);
    let listed = b.call("schedules", json!({})).await.unwrap();
    assert_eq!(listed["schedules"][1]["name"], "tick");
    assert_eq!(listed["schedules"][1]["next_at"], START_MS + 240_000);

    let removed = a.call("unschedule", json!({"name": "tick"})).await.unwrap();
    assert_eq!(removed["removed"], true);
    let bad = [
        (
            json!({"name": "x", "cron": "61 * * * *", "job": {"target": "work.record", "params": {"tag": "a"}}}),
            "/cron",
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "timezone": "Mars/Base", "job": {"target": "work.record", "params": {"tag": "a"}}}),
            "/timezone",
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "job": {"target": "work.nope"}}),
            "/job/target",
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "job": {"target": "work.record", "params": {"tag": "a"}, "delay_ms": 5}}),
            "/job/delay_ms",
        ),
        (
            json!({"name": "Bad Name", "cron": "* * * * *", "job": {"target": "work.record", "params": {"tag": "a"}}}),
            "/name",
        ),
    ];
    for (params, field) in bad {
        let err = a.call("schedule", params.clone()).await.unwrap_err();
        assert_eq!(invalid_field(err), field, "{params}");
    }
    a.jobs.close();
    b.jobs.close();
}

/// Queues take turns: with one worker, two queues' jobs alternate though one
/// queue's jobs are all older.
pub async fn queues_take_turns(backend: Arc<dyn JobBackend>) {
    let clock = Clock::manual(START_MS);
    let takes = JobsConfig {
        workers: false,
        ..JobsConfig::default()
    };
    let first = Harness::start_on(backend.clone(), takes, clock.clone()).await;
    for tag in ["big-1", "big-2", "big-3"] {
        first
            .enqueue(json!({"queue": "big", "target": "work.record", "params": {"tag": tag}}))
            .await;
    }
    for tag in ["small-1", "small-2"] {
        first
            .enqueue(json!({"queue": "small", "target": "work.record", "params": {"tag": tag}}))
            .await;
    }
    let one = JobsConfig {
        max_running: 1,
        ..JobsConfig::default()
    };
    let h = Harness::start_on(backend, one, clock).await;
    let calls = h.log.wait_calls(5).await;
    let tags: Vec<&str> = calls.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tags, ["big-1", "small-1", "big-2", "small-2", "big-3"]);
    h.jobs.close();
}

/// A queue's rate limit: at most `rate` starts per second of the queue's clock,
/// while other queues run freely.
pub async fn rate_limit_per_queue(backend: Arc<dyn JobBackend>) {
    let mut config = JobsConfig::default();
    config.rates.insert("slow".to_owned(), 2);
    let mut h = Harness::start(backend, config).await;
    for i in 0..5 {
        h.enqueue(
            json!({"queue": "slow", "target": "work.record", "params": {"tag": format!("s{i}")}}),
        )
        .await;
    }
    let slow = |calls: &[(String, u32)]| calls.iter().filter(|(t, _)| t.starts_with('s')).count();
    h.log.wait_calls(2).await;
    // A job of another queue runs meanwhile: the dispatcher went round again
    // and still left the limited queue out.
    let other = h
        .enqueue(json!({"queue": "free", "target": "work.record", "params": {"tag": "f1"}}))
        .await;
    h.event("completed", other).await;
    assert_eq!(slow(&h.log.calls()), 2, "{:?}", h.log.calls());

    h.advance(Duration::from_millis(500));
    h.log.wait_calls(4).await;
    let other = h
        .enqueue(json!({"queue": "free", "target": "work.record", "params": {"tag": "f2"}}))
        .await;
    h.event("completed", other).await;
    assert_eq!(slow(&h.log.calls()), 3, "half a second gives one token");

    h.advance(Duration::from_secs(1));
    let calls = h.log.wait_calls(7).await;
    assert_eq!(slow(&calls), 5);
    h.jobs.close();
}

/// On a backend that announces work ([`JobBackend::wakeups`]): an enqueue on one
/// node changes every other node's signal, and a node whose poll is ten minutes
/// starts another node's job without waiting for it.
pub async fn other_nodes_are_woken_without_polling(backend: Arc<dyn JobBackend>) {
    let Some(mut signal) = backend.wakeups() else {
        return;
    };
    let takes = JobsConfig {
        workers: false,
        ..JobsConfig::default()
    };
    let first = Harness::start_on(backend.clone(), takes, Clock::system()).await;
    signal.borrow_and_update();
    first
        .enqueue(json!({"queue": "w", "target": "work.record", "params": {"tag": "w0"}, "delay_ms": 600_000}))
        .await;
    tokio::time::timeout(BOUND, signal.changed())
        .await
        .expect("an enqueue was announced")
        .unwrap();

    let slow_poll = JobsConfig {
        poll_ms: 600_000,
        ..JobsConfig::default()
    };
    let worker = Harness::start_on(backend, slow_poll, Clock::system()).await;
    first
        .enqueue(json!({"queue": "w", "target": "work.record", "params": {"tag": "w1"}}))
        .await;
    let calls = worker.log.wait_calls(1).await;
    assert_eq!(calls[0].0, "w1");
    worker.jobs.close();
}

/// Batches: `claim_more` takes a queue's due jobs best first, at most its limit,
/// none of a paused queue, none not yet due, none of another queue;
/// `complete_many` stores what the worker holds and refuses the rest, job by
/// job; and a node whose jobs all finish together runs each once, its results
/// stored in batches.
pub async fn batches_claim_and_complete(backend: Arc<dyn JobBackend>) {
    let clock = Clock::manual(START_MS);
    let takes = JobsConfig {
        workers: false,
        ..JobsConfig::default()
    };
    let first = Harness::start_on(backend.clone(), takes, clock.clone()).await;
    let job = |queue: &str, tag: &str, priority: i32| json!({"queue": queue, "target": "work.record", "params": {"tag": tag}, "priority": priority});
    let mut ids = Vec::new();
    for (tag, priority) in [("b0", 0), ("b1", 5), ("b2", 0), ("b3", 5), ("b4", 0)] {
        ids.push(first.enqueue(job("b", tag, priority)).await);
    }
    let later = first
        .enqueue(json!({"queue": "b", "target": "work.record", "params": {"tag": "later"}, "priority": 9, "delay_ms": 60_000}))
        .await;
    let other = first.enqueue(job("other", "o", 9)).await;
    first.call("pause", json!({"queue": "p"})).await.unwrap();
    first.enqueue(job("p", "p", 0)).await;

    let now = clock.now_ms();
    let lease = now + 30_000;
    let taken = backend.claim_more("b", now, "w", lease, 3).await.unwrap();
    let seen: Vec<(i64, u32, JobState)> =
        taken.iter().map(|j| (j.id, j.attempt, j.state)).collect();
    assert_eq!(
        seen,
        [ids[1], ids[3], ids[0]].map(|id| (id, 1, JobState::Running)),
        "best first, at most the limit"
    );
    let rest = backend.claim_more("b", now, "w", lease, 10).await.unwrap();
    let rest: Vec<i64> = rest.iter().map(|j| j.id).collect();
    assert_eq!(
        rest,
        [ids[2], ids[4]],
        "the delayed job and other queues stay"
    );
    assert!(
        backend
            .claim_more("b", now, "w", lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        backend
            .claim_more("p", now, "w", lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(first.state(later).await, JobState::Pending);
    assert_eq!(first.state(other).await, JobState::Pending);

    let stored = backend
        .complete_many(
            "w",
            now,
            &[(ids[1], json!(1)), (ids[3], json!(3)), (i64::MAX, json!(0))],
        )
        .await
        .unwrap();
    assert_eq!(stored, [true, true, false]);
    let stored = backend
        .complete_many("not-w", now, &[(ids[0], json!(0))])
        .await
        .unwrap();
    assert_eq!(stored, [false], "another worker's job");
    let done = first.jobs.get(ids[3]).await.unwrap();
    assert_eq!(
        (done.state, done.result),
        (JobState::Completed, Some(json!(3)))
    );
    assert_eq!(first.state(ids[0]).await, JobState::Running);

    // Several enqueues in one step: a later job sees an earlier one's key.
    let new_job = |tag: &str, key: Option<&str>| crate::NewJob {
        queue: "e".to_owned(),
        target: "work.record".to_owned(),
        params: json!({"tag": tag}),
        priority: 0,
        run_at: now,
        max_attempts: 1,
        backoff_ms: 1_000,
        timeout_ms: 1_000,
        unique_key: key.map(str::to_owned),
        unique_window_ms: 60_000,
        metadata: Value::Null,
        caller: None,
        scopes: None,
        created_at: now,
    };
    let added = backend
        .enqueue_many(&[
            new_job("e1", Some("k")),
            new_job("e2", Some("k")),
            new_job("e3", None),
        ])
        .await
        .unwrap();
    assert_eq!(added.len(), 3);
    assert!(added[0].1 && !added[1].1 && added[2].1, "{added:?}");
    assert_eq!(added[1].0, added[0].0, "the key's holder is answered");
    assert!(added[2].0 > added[0].0, "ids in order");
    let plain = backend
        .enqueue_many(&[
            new_job("p1", None),
            new_job("p2", None),
            new_job("p3", None),
        ])
        .await
        .unwrap();
    for ((id, created), tag) in plain.iter().zip(["p1", "p2", "p3"]) {
        assert!(created);
        let job = first.jobs.get(*id).await.unwrap();
        assert_eq!(job.params["tag"], tag, "each id is its own job's");
    }

    // A node with room for all: 40 jobs finishing at once run once each.
    let wide = JobsConfig {
        max_running: 64,
        concurrency: 64,
        batch: 16,
        ..JobsConfig::default()
    };
    let mut h = Harness::start_on(backend, wide, clock).await;
    let mut many = Vec::new();
    for i in 0..40 {
        many.push(h.enqueue(job("many", &format!("m{i}"), 0)).await);
    }
    let mut left: std::collections::HashSet<i64> = many.iter().copied().collect();
    tokio::time::timeout(BOUND, async {
        while !left.is_empty() {
            let envelope = h.events.recv().await.expect("bus closed");
            if envelope.topic().as_str() == "jobs.many.completed" {
                let payload = envelope.payload().decode::<Value>().unwrap();
                left.remove(&payload["id"].as_i64().unwrap());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("jobs {left:?} did not complete"));
    let mut tags: Vec<String> = h
        .log
        .calls()
        .into_iter()
        .filter(|(t, _)| t.starts_with('m'))
        .map(|(t, attempt)| format!("{t}/{attempt}"))
        .collect();
    tags.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("m{i}/1")).collect();
    expected.sort();
    assert_eq!(tags, expected, "each job once, on its first attempt");
    first.jobs.close();
    h.jobs.close();
}

/// A queue's rate holds across nodes: two nodes with `rates.slow = 2` on one
/// backend start two of its jobs in all, not two each, until the shared bucket
/// refills; a node's unused tokens go back to the bucket for the others.
pub async fn rate_limit_is_shared_by_nodes(backend: Arc<dyn JobBackend>) {
    let clock = Clock::manual(START_MS);
    let mut config = JobsConfig::default();
    config.rates.insert("slow".to_owned(), 2);
    let log = Arc::new(WorkLog::default());
    let a =
        Harness::start_logged(backend.clone(), config.clone(), clock.clone(), log.clone()).await;
    for i in 0..6 {
        a.enqueue(
            json!({"queue": "slow", "target": "work.record", "params": {"tag": format!("s{i}")}}),
        )
        .await;
    }
    let b = Harness::start_logged(backend.clone(), config, clock.clone(), log.clone()).await;
    log.wait_calls(2).await;
    // Both nodes go round again (jobs of another queue on each) and still leave
    // the limited queue alone.
    a.enqueue(json!({"queue": "free", "target": "work.record", "params": {"tag": "f"}}))
        .await;
    b.enqueue(json!({"queue": "free", "target": "work.record", "params": {"tag": "f"}}))
        .await;
    b.enqueue(json!({"queue": "free", "target": "work.record", "params": {"tag": "f"}}))
        .await;
    let slow = |calls: &[(String, u32)]| calls.iter().filter(|(t, _)| t.starts_with('s')).count();
    log.wait_calls(5).await;
    assert_eq!(
        slow(&log.calls()),
        2,
        "two nodes, one bucket: {:?}",
        log.calls()
    );

    // A second refills the bucket: two more, whichever node takes them.
    a.advance(Duration::from_secs(1));
    let calls = log.wait_calls(7).await;
    assert_eq!(slow(&calls), 4, "{calls:?}");
    let (granted, _) = backend
        .take_tokens("slow", 2, clock.now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(granted, 0, "the nodes gave back nothing they did not take");
    a.advance(Duration::from_secs(1));
    let calls = log.wait_calls(9).await;
    assert_eq!(slow(&calls), 6);
    a.jobs.close();
    b.jobs.close();
}

/// A running job's target reports progress with its attempt: kept with the job,
/// announced as `jobs.<queue>.progress`; a report naming another attempt, an
/// oversized one, or one after the job ended is refused and changes nothing.
pub async fn progress_is_kept_and_announced(backend: Arc<dyn JobBackend>) {
    let config = JobsConfig {
        max_params_bytes: 64,
        ..JobsConfig::default()
    };
    let mut h = Harness::start(backend, config).await;
    let id = h
        .enqueue(json!({"queue": "p", "target": "work.held", "params": {"tag": "long"}}))
        .await;
    h.log.wait_calls(1).await;
    let job = h
        .call(
            "progress",
            json!({"id": id, "attempt": 1, "progress": {"done": 3, "of": 10}}),
        )
        .await
        .unwrap();
    assert_eq!(job["progress"], json!({"done": 3, "of": 10}));
    let event = h.event("progress", id).await;
    assert_eq!(
        (event["attempt"].clone(), event["progress"].clone()),
        (json!(1), json!({"done": 3, "of": 10}))
    );

    let stale = h
        .call(
            "progress",
            json!({"id": id, "attempt": 2, "progress": "late"}),
        )
        .await;
    assert!(stale.is_err(), "another attempt's report: {stale:?}");
    let huge = h
        .call(
            "progress",
            json!({"id": id, "attempt": 1, "progress": "x".repeat(100)}),
        )
        .await;
    assert_eq!(invalid_field(huge.unwrap_err()), "/progress");
    assert!(
        h.call(
            "progress",
            json!({"id": id + 1_000, "attempt": 1, "progress": 1})
        )
        .await
        .is_err()
    );
    assert_eq!(
        h.jobs.get(id).await.unwrap().progress,
        Some(json!({"done": 3, "of": 10})),
        "the refused reports changed nothing"
    );

    h.log.open_gate();
    h.event("completed", id).await;
    let ended = h
        .call(
            "progress",
            json!({"id": id, "attempt": 1, "progress": "after"}),
        )
        .await;
    assert!(ended.is_err(), "a report after the end: {ended:?}");
    let job = h.jobs.get(id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(
        job.progress,
        Some(json!({"done": 3, "of": 10})),
        "kept after the end"
    );
    h.jobs.close();
}
