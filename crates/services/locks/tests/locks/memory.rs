//! The in-process backend: the conformance suite under paused time, and its cap.

use std::time::Duration;

use plexus_locks::{LockError, Locks, LocksConfig};

plexus_locks::locks_conformance!(paused: true, |config| async move { Locks::in_memory(config) });

/// Past `max_locks` held locks an acquire is refused (`too_many`, counted); an
/// expired lock makes room.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_lock_cap_refuses_and_counts_and_expired_locks_make_room() {
    let locks = Locks::in_memory(LocksConfig {
        max_locks: 2,
        ..LocksConfig::default()
    });
    let ms = Duration::from_millis;
    locks.grant("a", ms(100), ms(0), "").await.unwrap();
    locks.grant("b", ms(10_000), ms(0), "").await.unwrap();
    let err = locks.grant("c", ms(1_000), ms(0), "").await.unwrap_err();
    assert!(matches!(err, LockError::TooMany { limit: 2 }), "{err:?}");
    assert!(err.to_service_error().is_retryable());
    assert_eq!(locks.metrics().errors("too_many"), 1);
    tokio::time::advance(ms(101)).await;
    locks.grant("c", ms(1_000), ms(0), "").await.unwrap();
}
