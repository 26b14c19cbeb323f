//! The in-process backend: the conformance suite under paused time, and its bound
//! on the number of sessions.

use plexus_sessions::{Counted, SessionError, Sessions, SessionsConfig};

plexus_sessions::session_conformance!(paused: true, |config| async move {
    Sessions::in_memory(config)
});

/// Past `max_sessions`, a create is refused with a typed error and counted; an
/// expired session, once swept, frees its place.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_count_bound_refuses_and_counts() {
    let config = SessionsConfig {
        max_sessions: 3,
        ..SessionsConfig::default()
    };
    let sessions = Sessions::in_memory(config);
    sessions.create("a", Some(100), None).await.unwrap();
    sessions.create("b", None, None).await.unwrap();
    sessions.create("c", None, None).await.unwrap();
    let err = sessions.create("d", None, None).await.unwrap_err();
    assert_eq!(err, SessionError::Full { max: 3 });
    assert_eq!(sessions.metrics().get(Counted::Full), 1);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sessions.sweep().await.unwrap(), 1);
    sessions.create("d", None, None).await.unwrap();
}

/// A sweep takes at most `sweep_batch` sessions: a backlog is taken over several.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_sweep_does_bounded_work() {
    let config = SessionsConfig {
        sweep_batch: 4,
        ..SessionsConfig::default()
    };
    let sessions = Sessions::in_memory(config);
    for i in 0..10 {
        sessions
            .create(&format!("u{i}"), Some(10), None)
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(sessions.sweep().await.unwrap());
    }
    assert_eq!(counts, [4, 4, 2, 0]);
    assert_eq!(sessions.metrics().get(Counted::Expired), 10);
}

/// The sweeper takes nothing out before a bus is attached (no expiry goes
/// unannounced), sweeps once one is, and stops at `stop_sweeper`.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_sweeper_waits_for_a_bus_and_stops_when_told() {
    let config = SessionsConfig {
        sweep_interval_ms: 10,
        ..SessionsConfig::default()
    };
    let sessions = Sessions::in_memory(config);
    let sweeper = sessions.start_sweeper();
    let first = sessions.create("u", Some(10), None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        sessions.metrics().get(Counted::Expired),
        0,
        "swept unannounced"
    );

    let mut events = plexus_sessions::conformance::listen(&sessions);
    let (_, event) = plexus_sessions::conformance::next_event(&mut events).await;
    assert_eq!(event.id, first.id);

    sessions.stop_sweeper();
    sweeper.await.unwrap();
    sessions.create("u", Some(10), None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sessions.metrics().get(Counted::Expired), 1, "stopped");
    assert_eq!(sessions.sweep().await.unwrap(), 1);
}
