//! The job queue of a served node under faults, and its CLI: jobs whose target is
//! a service in another process (`job_worker.py`, over `/ws`), that process killed
//! with SIGKILL mid-job; the node itself killed with SIGKILL with jobs enqueued and
//! running, then started again on the same data; and `plexus jobs` listing,
//! counting and requeueing dead jobs.

use std::collections::BTreeMap;

use super::*;

/// The target process's lines so far (JSON, one per call or registration), from
/// every worker of a test.
type Lines = watch::Sender<Vec<Value>>;

/// One `job_worker.py` process.
struct Worker {
    child: Child,
    log: watch::Receiver<String>,
}

impl Worker {
    /// Starts `job_worker.py` as `instance`, connecting to the URL in `url_file`,
    /// its stdout lines added to `lines`.
    fn spawn(url_file: &Path, instance: &str, lines: &Arc<Lines>) -> Worker {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/job_worker.py");
        let mut child = Command::new("python3")
            .arg(script)
            .env("WORKER_URL_FILE", url_file)
            .env("WORKER_INSTANCE", instance)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "python3 with websockets (pip install -r examples/python-echo/requirements.txt)",
            );
        let log = collect(child.stderr.take().unwrap());
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let lines = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("worker line not JSON ({e}): {line}"));
                lines.send_modify(|l| l.push(value));
            }
        });
        Worker { child, log }
    }

    /// Kills the process with SIGKILL and waits until it is gone.
    async fn sigkill(&mut self) {
        kill(
            Pid::from_raw(self.child.id().unwrap() as i32),
            Signal::SIGKILL,
        )
        .unwrap();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), None, "killed by a signal");
    }
}

/// The node's WebSocket URL.
fn ws_url(server: &Server) -> String {
    format!("{}/ws", server.url.replacen("http://", "ws://", 1))
}

/// Points the workers of `dir` at `server` (they read the file when they connect).
fn point_at(dir: &Path, server: &Server) -> PathBuf {
    let file = dir.join("worker-url");
    std::fs::write(&file, ws_url(server)).unwrap();
    file
}

/// Waits (bounded) until `lines` satisfy `done`; answers them.
async fn wait_lines(
    lines: &Arc<Lines>,
    what: &str,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let mut rx = lines.subscribe();
    let seen = tokio::time::timeout(WAIT, rx.wait_for(|l| done(l)))
        .await
        .map(|r| r.unwrap().clone());
    seen.unwrap_or_else(|_| panic!("{what}; the workers said: {:?}", lines.borrow()))
}

/// Waits until `instance` registered with the node at `url`, then until the node
/// shows at least `n` healthy `work` instances.
async fn registered(lines: &Arc<Lines>, instance: &str, url: &str, client: &Client, n: usize) {
    wait_lines(lines, &format!("{instance} registered at {url}"), |l| {
        l.iter()
            .any(|v| v["event"] == "registered" && v["instance"] == instance && v["url"] == url)
    })
    .await;
    tokio::time::timeout(WAIT, async {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        loop {
            every.tick().await;
            let services = client.services().await.unwrap();
            let healthy = services
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["descriptor"]["name"] == "work" && r["status"] == "healthy")
                .count();
            if healthy >= n {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} healthy work instances expected"));
}

/// The calls the workers received: `(instance, job id, tag, attempt)`.
fn calls(lines: &[Value]) -> Vec<(String, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or("null").to_owned();
    lines
        .iter()
        .filter(|v| v["event"] == "call")
        .map(|v| {
            (
                text(&v["instance"]),
                text(&v["job"]),
                text(&v["tag"]),
                text(&v["attempt"]),
            )
        })
        .collect()
}

/// Enqueues through `jobs.enqueue`; answers the id.
async fn enqueue(client: &Client, params: Value) -> i64 {
    let made = client.call("jobs.enqueue", params).await.unwrap();
    made["id"].as_i64().unwrap()
}

/// Polls `jobs.get` (bounded) until the job satisfies `done`; answers it.
async fn wait_job(client: &Client, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = tokio::time::timeout(WAIT, async {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        loop {
            every.tick().await;
            last = client.call("jobs.get", json!({"id": id})).await.unwrap();
            if done(&last) {
                return last.clone();
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("job {id} never got there: {last}"))
}

/// The stats of `queue`.
async fn queue_stats(client: &Client, queue: &str) -> Value {
    let stats = client
        .call("jobs.stats", json!({"queue": queue}))
        .await
        .unwrap();
    stats["queues"][0].clone()
}

/// The value of the counter `name` in the node's `/metrics`.
async fn counter(server: &Server, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}")) as u64
}

/// A job whose target runs in another process, `work.run` (not idempotent) served
/// by two `job_worker.py` instances over `/ws`. The instance running the job's
/// first attempt is killed with SIGKILL while it holds the call: the node sees
/// the socket drop, so the attempt fails at once as `unavailable` (the node is
/// the job's worker and holds its lease; the lease is not what recovers a job
/// whose target died, the failed call is), the job waits its backoff, and
/// attempt 2 runs on the other instance, which receives the attempt number in
/// `plexus.headers` and answers: the job is completed on attempt 2 with that
/// answer as its result and attempt 1's error in its history, and the target saw
/// exactly those two calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_target_killed_mid_job_runs_it_again_on_attempt_2() {
    let dir = temp_dir("jobs-external");
    let server = Server::start(&dir, "[node]\nname = \"jobs-ext\"\n[jobs]\npoll_ms = 100\n").await;
    let client = Client::new(&server.url, None).unwrap();
    let url_file = point_at(&dir, &server);
    let lines = Arc::new(watch::channel(Vec::new()).0);
    let mut workers = BTreeMap::new();
    for instance in ["work-a", "work-b"] {
        workers.insert(instance, Worker::spawn(&url_file, instance, &lines));
    }
    for (n, instance) in ["work-a", "work-b"].into_iter().enumerate() {
        registered(&lines, instance, &ws_url(&server), &client, n + 1).await;
    }

    let id = enqueue(
        &client,
        json!({"queue": "ext", "target": "work.run", "params": {"tag": "j1", "hold": true},
               "max_attempts": 3, "backoff_ms": 200}),
    )
    .await;
    let seen = wait_lines(&lines, "attempt 1 reached a worker", |l| {
        !calls(l).is_empty()
    })
    .await;
    let (first, job, tag, attempt) = calls(&seen).remove(0);
    assert_eq!(
        (job.as_str(), tag.as_str(), attempt.as_str()),
        (id.to_string().as_str(), "j1", "1"),
        "the target is told the job and its attempt"
    );
    let other = if first == "work-a" {
        "work-b"
    } else {
        "work-a"
    };
    workers.get_mut(first.as_str()).unwrap().sigkill().await;

    let done = wait_job(&client, id, |j| j["state"] == "completed").await;
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(
        done["result"],
        json!({"tag": "j1", "attempt": "2", "instance": other}),
        "{done}"
    );
    let errors = done["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{done}");
    assert_eq!(
        (&errors[0]["attempt"], &errors[0]["error"]),
        (&json!(1), &json!("unavailable")),
        "{done}"
    );
    let seen = calls(&lines.borrow());
    let expected = [
        (
            first.clone(),
            id.to_string(),
            "j1".to_owned(),
            "1".to_owned(),
        ),
        (
            other.to_owned(),
            id.to_string(),
            "j1".to_owned(),
            "2".to_owned(),
        ),
    ];
    assert_eq!(
        seen,
        expected,
        "the worker's log:\n{}",
        workers[other].log.borrow().as_str()
    );
}

/// How many jobs hold the queue's whole concurrency when the node is killed, and
/// how many wait behind them; every fourth waiting one always fails.
const HELD: usize = 4;
const WAITING: usize = 16;

/// A node killed with SIGKILL with jobs enqueued and running, started again on
/// the same data directory (SQLite, the embedded default). Queue `f` runs 4 at
/// once: 4 jobs are running (held by the target, in another process, on their
/// first attempt) and 16 are pending behind them; the queue is paused (so the
/// restarted node starts nothing before the target has reconnected to it) while
/// a client keeps enqueueing, and the node is killed mid-stream. After the
/// restart and a resume:
/// - every acknowledged enqueue is there, and at most one job more (the enqueue
///   in flight at the kill, committed but unanswered);
/// - every job ends in `completed` or `dead`, none left pending or running;
/// - the target saw each job's attempts once each, numbered 1, 2…: the held
///   jobs twice (attempt 1 interrupted by the kill, their lease ran out, attempt
///   2 completed: the one re-execution at-least-once allows, and only for jobs
///   that were running), every other job that completed exactly once (attempt 1),
///   every failing one exactly `max_attempts` (2) times, then dead;
/// - a completed job's stored result is its last attempt's answer;
/// - the restarted node's counters: as many completions and deaths as there are
///   completed and dead jobs (each job ended once), and 4 stalled leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_loses_no_acknowledged_job_and_ends_each_once() {
    killed_node("jobs-killed-node", "").await;
}

/// The same with the jobs in PostgreSQL (the server at `PLEXUS_TEST_POSTGRES_URL`,
/// default `postgres://postgres@127.0.0.1:5432/test`), in a schema of the test's
/// own, dropped when it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_loses_no_acknowledged_job_on_postgres() {
    let url = std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("pjk_{}_{nanos:x}", std::process::id());
    let section = format!(
        "backend = \"postgres\"\npostgres_url = \"{url}\"\npostgres_schema = \"{schema}\"\n"
    );
    killed_node("jobs-killed-node-pg", &section).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // The name is ours: `pjk_`, digits, hex letters and `_`.
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// The killed-node test with `backend` (more lines of the `[jobs]` section).
async fn killed_node(name: &str, backend: &str) {
    let dir = temp_dir(name);
    let config = format!(
        "[node]\nname = \"jobs-kill\"\n[jobs]\npoll_ms = 100\nlease_ms = 3000\n{backend}\
         [jobs.queues]\nf = {HELD}\n"
    );
    let mut server = Server::start(&dir, &config).await;
    let client = Client::new(&server.url, None).unwrap();
    let url_file = point_at(&dir, &server);
    let lines = Arc::new(watch::channel(Vec::new()).0);
    let _worker = Worker::spawn(&url_file, "work-1", &lines);
    registered(&lines, "work-1", &ws_url(&server), &client, 1).await;

    let mut acked = BTreeMap::new();
    for i in 0..HELD {
        let tag = format!("h{i}");
        let params =
            json!({"queue": "f", "target": "work.run", "params": {"tag": tag, "hold": true}});
        acked.insert(enqueue(&client, params).await, tag);
    }
    wait_lines(&lines, "the held jobs run", |l| calls(l).len() == HELD).await;
    for i in 0..WAITING {
        let tag = format!("w{i}");
        let fail = i % 4 == 0;
        let params = json!({"queue": "f", "target": "work.run", "params": {"tag": tag, "fail": fail},
                            "max_attempts": 2, "backoff_ms": 20});
        acked.insert(enqueue(&client, params).await, tag);
    }
    let stats = queue_stats(&client, "f").await;
    assert_eq!(
        (&stats["running"], &stats["pending"]),
        (&json!(HELD), &json!(WAITING)),
        "{stats}"
    );
    client
        .call("jobs.pause", json!({"queue": "f"}))
        .await
        .unwrap();

    // A client enqueues one job after another; the node is killed after five of
    // them were answered, the next one (or more) in flight.
    let (late_tx, mut late_rx) = watch::channel(Vec::<(i64, String)>::new());
    let enqueuer = {
        let client = Client::new(&server.url, None).unwrap();
        tokio::spawn(async move {
            for k in 0.. {
                let tag = format!("l{k}");
                let params = json!({"queue": "f", "target": "work.run", "params": {"tag": tag}});
                match client.call("jobs.enqueue", params).await {
                    Ok(made) => {
                        late_tx.send_modify(|l| l.push((made["id"].as_i64().unwrap(), tag)))
                    }
                    Err(_) => return,
                }
            }
        })
    };
    tokio::time::timeout(WAIT, late_rx.wait_for(|l| l.len() >= 5))
        .await
        .unwrap()
        .unwrap();
    sigkill(&mut server).await;
    tokio::time::timeout(WAIT, enqueuer)
        .await
        .expect("the enqueues stop with the node")
        .unwrap();
    acked.extend(late_rx.borrow().iter().cloned());

    let server = Server::start(&dir, &config).await;
    let client = Client::new(&server.url, None).unwrap();
    point_at(&dir, &server);
    registered(&lines, "work-1", &ws_url(&server), &client, 1).await;
    let listed = client
        .call("jobs.list", json!({"queue": "f"}))
        .await
        .unwrap();
    let listed: BTreeMap<i64, Value> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_i64().unwrap(), j.clone()))
        .collect();
    let missing: Vec<_> = acked.keys().filter(|id| !listed.contains_key(id)).collect();
    assert!(missing.is_empty(), "acknowledged jobs lost: {missing:?}");
    let extra: Vec<_> = listed.keys().filter(|id| !acked.contains_key(id)).collect();
    assert!(extra.len() <= 1, "jobs nobody enqueued: {extra:?}");
    client
        .call("jobs.resume", json!({"queue": "f"}))
        .await
        .unwrap();

    let total = listed.len() as u64;
    let mut last = Value::Null;
    let ended = tokio::time::timeout(WAIT, async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            last = queue_stats(&client, "f").await;
            let ended = last["completed"].as_u64().unwrap() + last["dead"].as_u64().unwrap();
            if ended == total && last["pending"] == 0 && last["running"] == 0 {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "not every job of {total} ended: {last}");

    let seen = calls(&lines.borrow());
    let (mut completed, mut dead) = (0, 0);
    for id in listed.keys() {
        let job = client.call("jobs.get", json!({"id": id})).await.unwrap();
        let tag = job["params"]["tag"].as_str().unwrap().to_owned();
        let attempts: Vec<&str> = seen
            .iter()
            .filter(|c| c.1 == id.to_string())
            .map(|c| c.3.as_str())
            .collect();
        assert!(
            seen.iter()
                .filter(|c| c.1 == id.to_string())
                .all(|c| c.2 == tag),
            "job {id}: {seen:?}"
        );
        // Held: interrupted by the kill, then run again. Failing: max_attempts.
        let twice = tag.starts_with('h') || job["params"]["fail"] == true;
        let expected: &[&str] = if twice { &["1", "2"] } else { &["1"] };
        assert_eq!(
            attempts,
            expected,
            "job {id} ({tag}) ran: {job}\nthe node's log:\n{}",
            server.log.borrow().as_str()
        );
        if job["params"]["fail"] == true {
            assert_eq!(job["state"], "dead", "{job}");
            assert_eq!(job["errors"].as_array().unwrap().len(), 2, "{job}");
            dead += 1;
        } else {
            assert_eq!(job["state"], "completed", "{job}");
            let last = *expected.last().unwrap();
            assert_eq!(job["attempt"], json!(last.parse::<u32>().unwrap()), "{job}");
            assert_eq!(
                job["result"],
                json!({"tag": tag, "attempt": last, "instance": "work-1"}),
                "{job}"
            );
            completed += 1;
        }
        if tag.starts_with('h') {
            let error = job["errors"][0]["error"].as_str().unwrap_or_default();
            assert!(error.contains("lease ran out"), "{job}");
        }
    }
    assert_eq!(dead, WAITING / 4);
    assert_eq!(
        counter(&server, "plexus_jobs_completed_total").await,
        completed
    );
    assert_eq!(
        counter(&server, "plexus_jobs_dead_total").await,
        dead as u64
    );
    assert_eq!(
        counter(&server, "plexus_jobs_stalled_total").await,
        HELD as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cli_lists_counts_and_requeues_dead_jobs() {
    let dir = temp_dir("jobs");
    let mut server = Server::start(&dir, "").await;
    // A job whose target always fails (no such collection), one attempt: dead.
    let made = server
        .json(&[
            "call",
            "jobs.enqueue",
            "--params",
            r#"{"queue": "mail", "target": "datastore.get", "params": {"collection": "nowhere", "id": "x"}, "max_attempts": 1}"#,
            "--json",
        ])
        .await;
    let id = made["id"].as_i64().unwrap();
    let client = Client::new(&server.url, None).unwrap();
    let client = &client;
    let dead = || async move {
        tokio::time::timeout(WAIT, async {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            loop {
                every.tick().await;
                let job = client.call("jobs.get", json!({"id": id})).await.unwrap();
                if job["state"] == "dead" {
                    return job;
                }
            }
        })
        .await
        .expect("the job died")
    };
    dead().await;

    let listed = server
        .json(&["jobs", "dead", "--queue", "mail", "--json"])
        .await;
    assert_eq!(listed["jobs"][0]["id"], id, "{listed}");
    let stats = server.json(&["jobs", "stats", "--json"]).await;
    let mail = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "mail")
        .unwrap();
    assert_eq!(mail["dead"], 1, "{stats}");
    let table = server.cli(&["jobs", "list", "--queue", "mail"]).await.ok();
    assert!(table.stdout.contains("datastore.get"), "{}", table.stdout);
    assert!(table.stdout.contains("dead"), "{}", table.stdout);

    let requeued = server
        .json(&["jobs", "requeue", "--queue", "mail", "--json"])
        .await;
    assert_eq!(requeued["requeued"], 1);
    let job = dead().await;
    assert_eq!(job["errors"].as_array().unwrap().len(), 2, "{job}");
    let retried = server
        .json(&["jobs", "retry", &id.to_string(), "--json"])
        .await;
    assert_eq!(retried["id"], id);
    let refused = server
        .cli(&["jobs", "requeue", "1", "--queue", "mail"])
        .await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(server.terminate().await, 0);
}
