//! The SQLite backend: the conformance suite (in real time: the file's I/O runs on
//! a thread of its own, which paused time would not wait for), and sessions that
//! survive a restart.

use std::path::PathBuf;
use std::sync::Arc;

use plexus_sessions::{SessionMetrics, Sessions, SessionsConfig, SqliteBackend, new_id};
use serde_json::json;

/// A fresh file under one folder of the temp folder (`plexus-sessions-tests`).
pub(crate) fn temp_file() -> PathBuf {
    std::env::temp_dir()
        .join("plexus-sessions-tests")
        .join(format!("{}.sqlite", &new_id()[..16]))
}

pub(crate) async fn open(config: SessionsConfig, path: &std::path::Path) -> Sessions {
    let backend = SqliteBackend::open(path, config.max_sessions)
        .await
        .unwrap();
    Sessions::new(Arc::new(backend), config, SessionMetrics::new())
}

plexus_sessions::session_conformance!(paused: false, |config| async move {
    crate::sqlite::open(config, &crate::sqlite::temp_file()).await
});

/// Sessions written before a restart (the file closed and opened again) are
/// there after it, with their data, version and expiry; revoked ones are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart() {
    let path = temp_file();
    let (kept, revoked) = {
        let sessions = open(SessionsConfig::default(), &path).await;
        let kept = sessions
            .create("ada", Some(600_000), Some(json!({"cart": 3})))
            .await
            .unwrap();
        let kept = sessions
            .update(
                &kept.id,
                json!({"theme": "dark"}),
                plexus_sessions::UpdateMode::Merge,
                None,
            )
            .await
            .unwrap();
        let revoked = sessions.create("ada", None, None).await.unwrap();
        sessions.revoke(&revoked.id).await.unwrap();
        (kept, revoked)
    };
    let sessions = open(SessionsConfig::default(), &path).await;
    assert_eq!(sessions.get(&kept.id).await.unwrap(), kept);
    assert!(sessions.get(&revoked.id).await.is_err());
    assert_eq!(
        sessions.list("ada", 0, None).await.unwrap().sessions,
        vec![kept]
    );
    drop(sessions);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
