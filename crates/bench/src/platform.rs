//! The agent platform's load test, for real: users calling the cache, locks, rate
//! limits and sessions of one node on Redis through `POST /rpc`, every request
//! checked.
//!
//! The platform this replaces claimed "over 500 requests/s, over 94% success" on
//! mocks. Here each of [`Load::users`] users (its own HTTP connection) runs a cycle
//! of ten calls (`cache.set`, `cache.get`, `lock.acquire`, `lock.release`,
//! `ratelimit.acquire`, `ratelimit.check`, `session.create`, `session.get`,
//! `session.touch`, `session.revoke`), each answer checked for what it must say (the
//! value read back, the token released, the request allowed, the session found);
//! any other answer fails the run. Latency is measured per request from its send.
//! Used by `plexus bench redis` (`platform_mix_c100`) and by its test.

use std::net::SocketAddr;
use std::time::Instant;

use hdrhistogram::Histogram;
use plexus_app::App;
use serde_json::{Value, json};

use crate::BenchError;

const BENCH: &str = "platform";

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

/// How much load.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Concurrent users, each on its own connection.
    pub users: usize,
    /// Requests in all (rounded down to whole cycles of ten per user).
    pub requests: usize,
}

/// What the load measured.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Requests answered as they must be (all of them, or the run failed).
    pub requests: usize,
    /// Requests per second over the run.
    pub per_second: f64,
    /// The 99th percentile latency, in microseconds.
    pub p99_us: f64,
}

/// A node with the four families on the Redis at `redis_url` under `prefix`,
/// serving `/rpc` on an ephemeral loopback port until dropped.
pub struct Node {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
}

impl Node {
    /// Starts it.
    pub async fn start(redis_url: &str, prefix: &str) -> Result<Self, BenchError> {
        let dir =
            std::env::temp_dir().join(format!("plexus-platform-{}", prefix.replace(':', "-")));
        let toml = format!(
            r#"[node]
data_dir = "{dir}"
[gateway]
bind = "127.0.0.1:0"
[redis]
url = "{redis_url}"
key_prefix = "{prefix}"
[cache]
backend = "redis"
[locks]
backend = "redis"
[sessions]
backend = "redis"
[limits]
backend = "redis"
[limits.rules.platform]
algorithm = "gcra"
limit = 1000000
window_ms = 1000
"#,
            dir = dir.display()
        );
        let app = App::builder().toml(toml).start().await.map_err(failed)?;
        let listening = app.listen().await.map_err(failed)?;
        let addr = listening.local_addr().map_err(failed)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            let _ = app
                .serve(listening, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            stop: Some(stop),
            served,
            dir,
        })
    }

    /// Stops it and removes its data folder.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.served).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One user's connection.
struct User {
    http: reqwest::Client,
    url: String,
    id: usize,
    hist: Histogram<u64>,
}

impl User {
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, BenchError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let sent = Instant::now();
        let bytes = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(failed)?
            .bytes()
            .await
            .map_err(failed)?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(failed)?;
        self.hist
            .record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX))
            .map_err(failed)?;
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| failed(format!("{method} failed: {answer}")))
    }

    /// One cycle of ten calls, every answer checked.
    async fn cycle(&mut self, n: usize) -> Result<(), BenchError> {
        let must = |ok: bool, what: &str| if ok { Ok(()) } else { Err(failed(what)) };
        let key = format!("user-{}-{n}", self.id);
        self.call("cache.set", json!({"key": key, "value": {"n": n}}))
            .await?;
        let got = self.call("cache.get", json!({"key": key})).await?;
        must(
            got["value"] == json!({"n": n}),
            "cache.get read back another value",
        )?;

        let lock = format!("lock-{}", self.id);
        let grant = self
            .call("lock.acquire", json!({"name": lock, "lease_ms": 5000}))
            .await?;
        let released = self
            .call(
                "lock.release",
                json!({"name": lock, "token": grant["token"]}),
            )
            .await?;
        must(released["released"] == true, "lock.release did not release")?;

        let limit = json!({"rule": "platform", "key": format!("user-{}", self.id)});
        let taken = self.call("ratelimit.acquire", limit.clone()).await?;
        must(taken["allowed"] == true, "ratelimit.acquire refused")?;
        let checked = self.call("ratelimit.check", limit).await?;
        must(checked["allowed"] == true, "ratelimit.check refused")?;

        let session = self
            .call(
                "session.create",
                json!({"subject": format!("user-{}", self.id), "ttl_ms": 60000, "data": {"n": n}}),
            )
            .await?;
        let id = session["id"].clone();
        let read = self.call("session.get", json!({"id": id})).await?;
        must(
            read["data"] == json!({"n": n}),
            "session.get read back other data",
        )?;
        self.call("session.touch", json!({"id": id})).await?;
        let revoked = self.call("session.revoke", json!({"id": id})).await?;
        must(revoked["revoked"] == 1, "session.revoke revoked nothing")
    }
}

/// Runs `load` against the node at `addr`.
pub async fn run(addr: SocketAddr, load: Load) -> Result<Measured, BenchError> {
    let users = load.users.max(1);
    let cycles = (load.requests / 10 / users).max(1);
    let url = format!("http://{addr}/rpc");
    let started = Instant::now();
    let tasks: Vec<_> = (0..users)
        .map(|id| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut user = User {
                    http: reqwest::Client::builder()
                        .pool_max_idle_per_host(1)
                        .build()
                        .map_err(failed)?,
                    url,
                    id,
                    hist: Histogram::new(3).map_err(failed)?,
                };
                for n in 0..cycles {
                    user.cycle(n).await?;
                }
                Ok::<_, BenchError>(user.hist)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).map_err(failed)?;
    for task in tasks {
        all.add(task.await.map_err(failed)??).map_err(failed)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = usize::try_from(all.len()).unwrap_or(usize::MAX);
    Ok(Measured {
        requests,
        per_second: requests as f64 / elapsed,
        p99_us: all.value_at_quantile(0.99) as f64,
    })
}
