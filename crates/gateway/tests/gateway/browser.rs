//! The dashboard in a real headless Chromium: `tests/clients/ui_browser.mjs` drives
//! Debian's `/usr/bin/chromium` with `playwright-core` (`npm ci --prefix
//! crates/gateway/tests/clients`; scripts/test installs both). Every page loads
//! without console errors, a call made during the test appears in the live tail, a
//! breaker opened by a failing service shows as open, an ops token cannot roll the
//! configuration back and an admin token can (through the page, after confirming),
//! the jobs page shows 100,001 dead jobs in a virtual, searchable list and an
//! admin's bulk retry through it runs the job again, the inference page shows the
//! tokens of a chat answered by a loopback fake provider, and 100,000 events in
//! the tail keep the list virtual and searchable.
//! Screenshots are written to `<target>/tmp/ui-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plexus_bus::SubscribeOptions;
use plexus_core::{
    CallContext, CallResult, Envelope, MethodDescriptor, Payload, Service, ServiceDescriptor,
    ServiceError, Topic, async_trait,
};
use plexus_gateway::{Gateway, GatewayConfig, TokenConfig};
use plexus_inference::testing::{COMPLETION_TOKENS, FakeProvider, PROMPT_TOKENS, Wire};
use plexus_inference::{Inference, InferenceConfig, InferenceMetrics, InferenceService};
use plexus_jobs::{Clock, JobMetrics, JobService, Jobs, JobsConfig, SqliteBackend};
use plexus_node::Node;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::support::{Spec, WAIT};

/// A service whose every call fails as unavailable: its breaker opens.
struct Flaky;

#[async_trait]
impl Service for Flaky {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("flaky", "example")
            .with_instance("flaky-1")
            .with_method(MethodDescriptor::new("work"))
    }

    async fn call(&self, _: &str, _: Value, _: CallContext) -> CallResult {
        Err(ServiceError::unavailable("always down"))
    }
}

/// A job target that fails while `failing` is set: its job dies, and once it
/// answers, a retry through the page completes the job.
struct Chores {
    failing: Arc<AtomicBool>,
}

#[async_trait]
impl Service for Chores {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("chores", "example")
            .with_instance("chores-1")
            .with_method(MethodDescriptor::new("run"))
    }

    async fn call(&self, _: &str, _: Value, _: CallContext) -> CallResult {
        if self.failing.load(Ordering::Acquire) {
            Err(ServiceError::failed("the mail server said no"))
        } else {
            Ok(json!({"done": true}))
        }
    }
}

/// How many dead jobs the jobs page must list without freezing.
const SEEDED_DEAD: u64 = 100_000;

/// The jobs family on a fresh SQLite file under `dir`, with [`SEEDED_DEAD`] dead
/// jobs in queue `imports`.
async fn jobs_with_dead(dir: &Path) -> (JobService, JobMetrics) {
    let db = dir.join(format!("ui-browser-jobs-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let backend = SqliteBackend::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let now = i64::try_from(plexus_core::Timestamp::now().as_micros() / 1000).unwrap();
    let seeded = backend
        .seed_dead("imports", "chores.run", SEEDED_DEAD, now)
        .await
        .unwrap();
    assert_eq!(seeded, SEEDED_DEAD);
    let metrics = JobMetrics::new();
    let jobs = Jobs::new(
        Arc::new(backend),
        JobsConfig::default(),
        metrics.clone(),
        Clock::system(),
    );
    (JobService::new(jobs), metrics)
}

/// The inference family over one loopback fake provider (`p0`, model `m0`),
/// alias `chat`.
fn inference_over(fake: &FakeProvider) -> (InferenceService, InferenceMetrics) {
    let config: InferenceConfig = serde_json::from_value(json!({
        "providers": {"p0": {"kind": "openai", "base_url": fake.base_url(), "api_key": "fake-key"}},
        "models": {"chat": [{"provider": "p0", "model": "m0"}]},
        "prices": {"m0": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
    }))
    .unwrap();
    let metrics = InferenceMetrics::new();
    let engine = Inference::new(config, metrics.clone()).unwrap();
    (InferenceService::new(engine), metrics)
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// How long the whole browser run may take (Chromium's start included).
const RUN: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_headless_chromium() {
    let ops = "ops-browser-token-0123456789";
    let admin = "admin-browser-token-0123456789";
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let failing = Arc::new(AtomicBool::new(true));
    let (jobs, job_metrics) = jobs_with_dead(&tmp).await;
    let fake = FakeProvider::start(Wire::OpenAi).await.unwrap();
    let (inference, inference_metrics) = inference_over(&fake);
    let node = Node::builder("ui-browser")
        .service(Arc::new(Spec::new()))
        .service(Arc::new(Flaky))
        .service(Arc::new(Chores {
            failing: failing.clone(),
        }))
        .service(Arc::new(jobs.clone()))
        .service(Arc::new(inference.clone()))
        .start()
        .await
        .unwrap();
    node.metrics().with_registry(|registry| {
        job_metrics.register(registry);
        inference_metrics.register(registry);
    });
    jobs.attach(&node);
    inference.engine().attach(&node);
    let config = GatewayConfig {
        tokens: vec![
            TokenConfig::new("root", admin, ["admin"]),
            TokenConfig::new("watcher", ops, ["ops"]),
        ],
        ..GatewayConfig::default()
    };
    let gateway = Gateway::builder(node.clone())
        .config(config)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));

    // A second configuration version to compare and roll back from, and an open
    // breaker to show.
    let internal = || CallContext::new().with_caller("setup");
    node.call(
        "node.config_set",
        json!({"path": "calls.services.flaky.breaker", "value": {
            "minimum_calls": 2, "failure_rate_threshold": 50,
            "window": {"kind": "count", "size": 10}, "wait_in_open_ms": 60000}}),
        internal(),
    )
    .await
    .unwrap();
    for _ in 0..4 {
        let _ = node.call("flaky.work", json!({}), internal()).await;
    }

    // One job that dies on its only attempt, beside the seeded ones; then its
    // target recovers, so a retry through the page completes it.
    let mut job_events = node
        .bus()
        .subscribe("jobs.mail.*", SubscribeOptions::default())
        .unwrap();
    let enqueued = node
        .call(
            "jobs.enqueue",
            json!({"queue": "mail", "target": "chores.run", "max_attempts": 1}),
            internal(),
        )
        .await
        .unwrap();
    let mail_job = enqueued["id"].as_i64().unwrap();
    // Waits for the event `topic` of queue `mail`, others passed over.
    let mut job_event = async |topic: &str| {
        tokio::time::timeout(WAIT, async {
            loop {
                let event = job_events.recv().await.expect("the subscription is open");
                if event.topic().as_str() == topic {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {topic} in time"));
    };
    job_event("jobs.mail.dead").await;
    failing.store(false, Ordering::Release);

    // A chat answered by the fake provider: its tokens are the inference page's.
    let chat = node
        .call(
            "inference.chat",
            json!({"model": "chat", "messages": [{"role": "user", "content": "Say hello"}]}),
            internal(),
        )
        .await
        .unwrap();
    assert_eq!(chat["usage"]["prompt_tokens"], json!(PROMPT_TOKENS));

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let mut child = Command::new("node")
        .arg("ui_browser.mjs")
        .args([base.as_str(), ops, admin])
        .arg(&shots)
        .current_dir(clients_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node`: {e}; it must be installed"));
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async |expected: &str| -> Value {
        let line = tokio::time::timeout(RUN, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no `{expected}` step in time"))
            .unwrap()
            .unwrap_or_else(|| panic!("the script ended before `{expected}`"));
        let step: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(step["step"], expected, "{step}");
        step
    };

    let pages = next("pages").await;
    assert_eq!(
        pages["absent"],
        json!({"health": null, "services": null, "bus": null, "tail": null,
               "datastore": "datastore", "jobs": null, "inference": null,
               "config": null, "audit": "audit"}),
        "{pages}"
    );

    let usage = next("inference").await;
    assert_eq!(
        (&usage["prompt"], &usage["completion"]),
        (&json!(PROMPT_TOKENS), &json!(COMPLETION_TOKENS)),
        "{usage}"
    );
    assert_eq!(usage["breakers"], json!(["closed"]), "{usage}");
    assert_eq!(
        usage["model"], "m0",
        "tokens count per model at its provider: {usage}"
    );

    let dead = next("jobs-dead").await;
    let seeded_and_mail = SEEDED_DEAD + 1;
    assert_eq!(
        dead["queueDead"],
        json!({"imports": SEEDED_DEAD, "mail": 1}),
        "{dead}"
    );
    assert_eq!(dead["loaded"], json!(seeded_and_mail), "{dead}");
    for key in ["domRows", "domRowsScrolled"] {
        let rows = dead[key].as_u64().unwrap();
        assert!(
            rows > 0 && rows < 200,
            "{key}: the dead list must stay virtual: {dead}"
        );
    }
    assert_eq!(dead["shownMail"], json!(1), "{dead}");
    assert_eq!(
        dead["mailError"], "`chores.run` failed: the mail server said no",
        "{dead}"
    );
    assert_eq!(dead["shownSeed"], json!(1), "{dead}");
    assert_eq!(dead["shownAll"], json!(seeded_and_mail), "{dead}");
    assert_eq!(dead["opsActions"], json!(0), "ops sees no action: {dead}");
    assert!(dead["firstPageMs"].as_u64().unwrap() < 5_000, "{dead}");

    let retried = next("jobs-retry").await;
    assert_eq!(retried["message"], "Requeued 1 job.", "{retried}");
    job_event("jobs.mail.completed").await;
    let job = node
        .call("jobs.get", json!({"id": mail_job}), internal())
        .await
        .unwrap();
    assert_eq!(
        (&job["state"], &job["attempt"]),
        (&json!("completed"), &json!(1))
    );

    assert_eq!(next("jobs-pause").await["message"], "Paused imports.");
    let stats = node
        .call("jobs.stats", json!({"queue": "imports"}), internal())
        .await
        .unwrap();
    assert_eq!(stats["queues"][0]["paused"], true, "{stats}");

    let tail = next("tail").await;
    assert_eq!(tail["answer"], json!(["hello", 5]));
    let cells = tail["cells"].as_array().unwrap();
    assert_eq!(cells[1], "call");
    assert_eq!(cells[2], "spec.get_data");
    assert_eq!(cells[3], "ok");
    assert_eq!(cells[5], "root");
    assert_eq!(
        cells[6].as_str().unwrap().len(),
        36,
        "a correlation id: {tail}"
    );

    let breaker = next("breaker").await;
    // The jobs service was the busiest while the dead list loaded: it has a line
    // in both charts.
    for chart in ["chartLines", "p99Lines"] {
        assert!(
            breaker[chart]
                .as_array()
                .is_some_and(|lines| lines.contains(&json!("jobs"))),
            "{chart}: {breaker}"
        );
    }

    let read_only = next("ops-read-only").await;
    assert_eq!(
        (
            &read_only["buttons"],
            &read_only["readOnly"],
            &read_only["refused"]
        ),
        (&json!(0), &json!(true), &json!(-32002)),
        "{read_only}"
    );
    assert_eq!(node.config().current_version(), 2);

    // A change made elsewhere shows on the open page, pushed over the live socket.
    assert_eq!(next("config-live").await["shown"], "v2");
    node.call(
        "node.config_set",
        json!({"path": "calls.default.timeout_ms", "value": 4321}),
        internal(),
    )
    .await
    .unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    stdin.flush().await.unwrap();
    assert_eq!(next("config-updated").await["shown"], "v3");

    let rollback = next("rollback").await;
    assert_eq!(
        (&rollback["before"], &rollback["after"]),
        (&json!("v3"), &json!("v4")),
        "{rollback}"
    );
    assert!(
        rollback["diffPaths"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .starts_with("calls.services.flaky.breaker")),
        "{rollback}"
    );
    let v4 = node.config().current();
    assert_eq!((v4.rollback_of, v4.author.as_str()), (Some(1), "root"));
    assert_eq!(node.config().get("calls.services.flaky").unwrap(), None);

    next("flood-ready").await;
    flood(&node, 100_000).await;
    stdin.write_all(b"go\n").await.unwrap();
    stdin.flush().await.unwrap();
    let flood = next("flood").await;
    assert!(flood["total"].as_u64().unwrap() >= 100_000, "{flood}");
    for key in ["domRows", "domRowsScrolled"] {
        let rows = flood[key].as_u64().unwrap();
        assert!(
            rows > 0 && rows < 200,
            "{key}: the list must render the rows in view only: {flood}"
        );
    }

    let done = next("done").await;
    assert_eq!(done["consoleErrors"], json!([]), "{done}");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    for shot in [
        "health",
        "services",
        "bus",
        "tail",
        "jobs",
        "inference",
        "config",
        "audit",
        "jobs-100k",
        "jobs-retried",
        "services-charts",
        "tail-100k",
    ] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(WAIT, served).await;
}

/// Publishes `n` events `flood.<i>` in chunks, each chunk once the tail's
/// subscription has taken the one before (so none is dropped), waiting on its
/// counters with a bound.
async fn flood(node: &Node, n: u64) {
    const CHUNK: u64 = 5_000;
    let tail = || {
        node.bus()
            .subscriptions()
            .into_iter()
            .find(|s| s.name.as_deref().is_some_and(|n| n.starts_with("ui-live-")))
            .expect("the page's live tail is subscribed")
    };
    let start = tail().stats.delivered;
    for chunk in 0..n / CHUNK {
        for i in chunk * CHUNK..(chunk + 1) * CHUNK {
            let topic = Topic::new(format!("flood.{i}")).unwrap();
            let event = Envelope::new(topic, Payload::json(&json!({"i": i})).unwrap());
            node.bus().publish(event).await.unwrap();
        }
        let want = start + (chunk + 1) * CHUNK;
        // A bound for a loaded machine: the page reads 5,000 events in well under it.
        tokio::time::timeout(Duration::from_secs(60), async {
            while tail().stats.delivered < want {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the tail did not take chunk {chunk}: {:?}", tail().stats));
    }
    assert_eq!(tail().stats.dropped, 0);
}
