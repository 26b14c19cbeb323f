//! Caches on the test Redis under fresh key prefixes, and a private `redis-server`
//! that a test may kill and restart.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use plexus_cache::{Cache, CacheConfig, CacheMetrics, RedisStore};
use plexus_redis::{Redis, RedisConfig};
use tokio::process::{Child, Command};

pub(crate) use plexus_cache::conformance::eventually;

/// The Redis the tests share (never flushed: every test writes under its own prefix).
pub(crate) fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub(crate) fn unique_prefix() -> String {
    format!("plexus-test:{}:", uuid::Uuid::new_v4().simple())
}

/// `[redis]` for `url` under `prefix`, failing fast.
pub(crate) fn redis_config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        key_prefix: prefix.to_owned(),
        connect_timeout_ms: 500,
        response_timeout_ms: 500,
        ..RedisConfig::with_url(url)
    }
}

/// A cache on the test Redis under `prefix` (one client of it: each call opens its
/// own connection), with its store.
pub(crate) fn client(config: CacheConfig, url: &str, prefix: &str) -> (Cache, Arc<RedisStore>) {
    let redis = Redis::open(&redis_config(url, prefix)).unwrap();
    let metrics = CacheMetrics::new();
    let store = Arc::new(RedisStore::new(redis, &config, metrics.clone()));
    (Cache::new(store.clone(), config, metrics), store)
}

/// A fresh cache on the test Redis, two-tier or not; a two-tier one is returned
/// once its local tier is subscribed.
pub(crate) async fn redis_cache(config: CacheConfig, two_tier: bool) -> Cache {
    let config = CacheConfig {
        backend: plexus_cache::Backend::Redis,
        two_tier,
        ..config
    };
    let (cache, store) = client(config, &redis_url(), &unique_prefix());
    if two_tier {
        eventually("the local tier subscribes", || async {
            store.local_tier_live()
        })
        .await;
    }
    cache
}

/// A `redis-server` of the test's own on a free port, in a temp folder, without
/// persistence.
pub(crate) struct PrivateRedis {
    pub(crate) port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    pub(crate) async fn start() -> Self {
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
            child: None,
        };
        server.restart().await;
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub(crate) async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed for these tests");
        self.child = Some(child);
        let probe = Redis::open(&redis_config(&self.url(), "probe:")).unwrap();
        eventually("the private redis-server answers", || async {
            probe.ping().await.is_ok()
        })
        .await;
    }

    /// Kills the server and waits until it is gone.
    pub(crate) async fn kill(&mut self) {
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

/// How long an operation on a lost Redis may take to fail: the connect and
/// response bounds of [`redis_config`], with room for a loaded machine.
pub(crate) const FAIL_FAST: Duration = Duration::from_secs(3);
