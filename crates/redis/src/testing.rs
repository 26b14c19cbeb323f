//! Helpers for the tests of every family that keeps state in Redis (feature
//! `test-util`): the shared test server under a fresh key prefix, a private
//! `redis-server` a test may kill and restart, and waiting on an event with a bound.
//!
//! The shared server (`PLEXUS_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) is
//! never flushed: every test writes under its own [`unique_prefix`]. Fault tests
//! never stop it: they start a [`PrivateRedis`] on a free port.
//!
//! The helpers panic (they are for tests): `unwrap_used` is allowed here.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, clippy::expect_used)]

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{Redis, RedisConfig};

/// How long [`eventually`] waits for what it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long an operation on a lost Redis may take to fail: the connect and
/// response bounds of [`test_config`], with room for a loaded machine.
pub const FAIL_FAST: Duration = Duration::from_secs(3);

/// Waits until `check` holds, looking every 5 ms, for at most [`PATIENCE`]; panics
/// naming `what` otherwise. Under paused time Tokio moves the clock forward while
/// it waits; against a server the wait is real.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(PATIENCE, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "not within {PATIENCE:?}: {what}");
}

/// A gate tasks wait at until a test opens it: the way a test holds a loader, a
/// handler or a lock holder at a known point without sleeping.
#[derive(Clone, Debug)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens it.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Waits until it is open.
    pub async fn wait(&self) {
        let mut open = self.0.subscribe();
        let _ = open.wait_for(|o| *o).await;
    }
}

/// The Redis the tests share: `PLEXUS_TEST_REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("plexus-test:{}:", uuid::Uuid::new_v4().simple())
}

/// `[redis]` for `url` under `prefix`, failing fast (half a second to connect and
/// to answer).
pub fn test_config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        key_prefix: prefix.to_owned(),
        connect_timeout_ms: 500,
        response_timeout_ms: 500,
        ..RedisConfig::with_url(url)
    }
}

/// A connection to the shared test server under a fresh prefix.
pub fn shared() -> Redis {
    Redis::open(&test_config(&redis_url(), &unique_prefix())).unwrap()
}

/// A `redis-server` of the test's own on a free port, in a temp folder, without
/// persistence (or, [`PrivateRedis::start_durable`], with an append-only file);
/// killed when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
    durable: bool,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Starts one with `appendonly yes` and `appendfsync always` (every write is in
    /// its folder's append-only file before it is acknowledged, so a restart after
    /// [`kill`](Self::kill) finds it) and waits until it answers.
    pub async fn start_durable() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(durable: bool) -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let dir =
            std::env::temp_dir().join(format!("plexus-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            dir,
            durable,
            child: None,
        };
        server.restart().await;
        server
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A connection to it under a fresh prefix, failing fast.
    pub fn connect(&self) -> Redis {
        Redis::open(&test_config(&self.url(), &unique_prefix())).unwrap()
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        let appendonly = if self.durable {
            ["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            ["--appendonly", "no", "--appendfsync", "everysec"]
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(appendonly)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed for these tests");
        self.child = Some(child);
        let probe = Redis::open(&test_config(&self.url(), "probe:")).unwrap();
        eventually("the private redis-server answers", || async {
            probe.ping().await.is_ok()
        })
        .await;
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node named `faults` serving `service`, with the `redis` health component of
/// `redis`: what a family's fault test drives through the call path.
pub async fn node_with(
    service: std::sync::Arc<dyn plexus_core::Service>,
    redis: Redis,
) -> plexus_node::Node {
    plexus_node::Node::builder("faults")
        .service(service)
        .component(crate::redis_component(redis))
        .start()
        .await
        .unwrap()
}

/// With Redis down: `method` through `node` fails as `Unavailable` within
/// `4 × FAIL_FAST`, and the `redis` health component reports the failure.
pub async fn assert_down_through(
    node: &plexus_node::Node,
    method: &str,
    params: serde_json::Value,
) {
    let at = tokio::time::Instant::now();
    let err = node
        .call(method, params, plexus_core::CallContext::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, plexus_node::CallError::Unavailable { .. }),
        "{method}: {err:?}"
    );
    assert!(
        at.elapsed() < FAIL_FAST * 4,
        "{method} took {:?}",
        at.elapsed()
    );
    let health = node.health().check_now(crate::COMPONENT).await.unwrap();
    assert!(health.consecutive_failures >= 1, "{health:?}");
    assert!(health.detail.contains("unavailable"), "{health:?}");
}

/// With Redis back: `method` through `node` answers (its answer is returned), and
/// the `redis` health component is healthy again; then the node shuts down.
pub async fn assert_up_through(
    node: &plexus_node::Node,
    method: &str,
    params: serde_json::Value,
) -> serde_json::Value {
    let answer = node
        .call(method, params, plexus_core::CallContext::new())
        .await
        .unwrap();
    let health = node.health().check_now(crate::COMPONENT).await.unwrap();
    assert_eq!(health.consecutive_failures, 0, "{health:?}");
    node.shutdown(Duration::from_secs(1)).await;
    answer
}
