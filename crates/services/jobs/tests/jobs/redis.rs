//! The conformance suite on the Redis backend (the shared test server, each test
//! under a key prefix of its own, so they run in parallel), the refusal of a
//! transactional enqueue, and a private `redis-server` killed and restarted under
//! running jobs.

use std::sync::Arc;

use plexus_jobs::conformance::{self, Harness};
use plexus_jobs::{Clock, JobBackend, JobState, JobsConfig, RedisBackend};
use plexus_node::CallError;
use plexus_redis::testing::{self, PrivateRedis};
use plexus_store::{DataStore, StoreConfig};
use serde_json::json;

/// The backend on the shared server under a fresh prefix.
fn fresh() -> Arc<dyn JobBackend> {
    Arc::new(RedisBackend::new(testing::shared()))
}

/// A DataStore in SQL is refused as a home for Redis jobs, typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_enqueue_is_refused() {
    let dir = std::env::temp_dir().join(format!("plexus-jobs-{}", crate::unique()));
    let store = DataStore::connect(&StoreConfig::sqlite_in(&dir))
        .await
        .unwrap();
    conformance::transactional_enqueue_is_refused(fresh(), store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                conformance::$name(fresh()).await;
            }
        )*
    };
}

suite!(
    ordering_delay_and_pause,
    retries_backoff_dead_and_requeue,
    expired_lease_is_recovered,
    unique_keys_and_cancel,
    bad_input_is_refused,
    per_queue_concurrency,
    live_worker_keeps_its_lease,
    two_nodes_run_each_job_once,
    unique_key_holds_under_concurrent_enqueues,
    cron_fires_once_across_two_nodes,
    queues_take_turns,
    rate_limit_per_queue,
    other_nodes_are_woken_without_polling,
    batches_claim_and_complete,
    rate_limit_is_shared_by_nodes,
    progress_is_kept_and_announced,
);

/// How many jobs the fault test keeps running (held at the gate) when the server
/// is killed, and how many more wait; every fifth waiting one always fails.
const HELD: usize = 4;
const WAITING: usize = 20;

/// A private `redis-server` with an append-only file, killed with SIGKILL while
/// jobs are running and waiting, then restarted on the same port: an enqueue
/// meanwhile is refused as unavailable (not acknowledged); the workers count the
/// outage and pause, the running jobs' outcomes wait for the server, then all
/// resume; every acknowledged job is still there and ends exactly once, completed
/// (on its first attempt: nothing ran twice) or dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_job() {
    let mut server = PrivateRedis::start_durable().await;
    let backend = Arc::new(RedisBackend::new(server.connect()));
    let config = JobsConfig {
        concurrency: HELD,
        max_running: HELD,
        lease_ms: 20_000,
        poll_ms: 50,
        ..JobsConfig::default()
    };
    let h = Harness::start_on(backend, config, Clock::system()).await;
    let mut acked = Vec::new();
    for i in 0..HELD {
        acked.push(
            h.enqueue(
                json!({"queue": "f", "target": "work.held", "params": {"tag": format!("h{i}")}}),
            )
            .await,
        );
    }
    h.log.wait_calls(HELD).await;
    for i in 0..WAITING {
        let fail_until = if i % 5 == 0 { 99 } else { 0 };
        acked.push(
            h.enqueue(json!({"queue": "f", "target": "work.record", "params": {"tag": format!("w{i}"), "fail_until": fail_until}, "max_attempts": 2, "backoff_ms": 10}))
                .await,
        );
    }

    server.kill().await;
    let refused = h
        .call(
            "enqueue",
            json!({"queue": "f", "target": "work.record", "params": {"tag": "down"}}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CallError::Unavailable { .. }),
        "{refused:?}"
    );
    testing::eventually("the workers meet the outage", || async {
        h.jobs.metrics().counts().unavailable > 0
    })
    .await;
    // The held jobs answer while the server is down: their workers keep trying
    // to store the outcomes (within their lease) until it is back. Ten more
    // failed steps (each takes a failed reconnect) outlast the first try of each.
    h.log.open_gate();
    let seen = h.jobs.metrics().counts().unavailable;
    testing::eventually("the outcomes meet the outage", || async {
        h.jobs.metrics().counts().unavailable >= seen + 10
    })
    .await;
    server.restart().await;
    let total = acked.len();
    testing::eventually("every acknowledged job ends", || async {
        let stats = h.jobs.stats(Some("f")).await;
        stats.is_ok_and(|s| {
            s.first()
                .is_some_and(|s| s.completed + s.dead == total as u64)
        })
    })
    .await;

    let mut completed = 0;
    for id in &acked {
        let job = h.jobs.get(*id).await.unwrap();
        match job.state {
            JobState::Completed => {
                completed += 1;
                assert_eq!(job.attempt, 1, "run again: {job:?}");
                assert!(job.result.is_some(), "{job:?}");
            }
            JobState::Dead => assert_eq!(job.errors.len(), 2, "{job:?}"),
            other => panic!("job {id} ended {other:?}"),
        }
    }
    assert_eq!(completed, total - WAITING / 5);
    let counts = h.jobs.metrics().counts();
    assert_eq!(counts.completed, completed as u64, "a job completed twice");
    assert_eq!(counts.dead, (WAITING / 5) as u64, "a job died twice");
    assert_eq!(counts.enqueued, total as u64);
    assert_eq!((counts.stalled, counts.lost), (0, 0), "{counts:?}");
    h.jobs.close();
}
