//! Faults against a private `redis-server` on a free port (never the shared one):
//! killed while in use and restarted.

use std::sync::Arc;

use plexus_redis::testing::eventually;
use plexus_redis::testing::{assert_down_through, assert_up_through, node_with};
use plexus_sessions::{
    RedisBackend, SessionMetrics, SessionService, Sessions, SessionsConfig, UpdateMode,
};
use serde_json::json;
use tokio::time::Instant;

use crate::support::{FAIL_FAST, PrivateRedis};

/// While Redis is down every operation fails within a bound with a typed
/// `Unavailable` (through the node too: `ServiceError::Unavailable`), counted, and
/// the `redis` health component says so; once Redis is back the same node works
/// again, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_fails_fast_then_recovers_without_a_restart() {
    let mut server = PrivateRedis::start().await;
    let redis = server.connect();
    let config = SessionsConfig {
        backend: plexus_sessions::Backend::Redis,
        ..SessionsConfig::default()
    };
    let sessions = Sessions::new(
        Arc::new(RedisBackend::new(redis.clone())),
        config,
        SessionMetrics::new(),
    );
    let node = node_with(Arc::new(SessionService::new(sessions.clone())), redis).await;
    let made = sessions.create("u", None, None).await.unwrap();

    server.kill().await;
    let at = Instant::now();
    let err = sessions.get(&made.id).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = sessions.touch(&made.id).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = sessions.create("u", None, None).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = sessions
        .update(&made.id, json!({"a": 1}), UpdateMode::Merge, None)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = sessions.sweep().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(at.elapsed() < FAIL_FAST * 2, "took {:?}", at.elapsed());
    assert!(sessions.metrics().errors("unavailable") >= 5);

    assert_down_through(&node, "session.get", json!({"id": made.id})).await;

    server.restart().await;
    // The private server keeps nothing across a restart: sessions start afresh.
    eventually("sessions work again", || async {
        sessions.create("u", None, None).await.is_ok()
    })
    .await;
    let again = sessions.create("u", None, None).await.unwrap();
    let got = assert_up_through(&node, "session.get", json!({"id": again.id})).await;
    assert_eq!(got["subject"], "u");
}
