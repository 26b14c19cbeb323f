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

/// A new process (here: a new backend) starts its tokens above the old one's: they
/// are floored by the clock in microseconds.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_new_backend_starts_above_the_old_ones_tokens() {
    let ms = Duration::from_millis;
    let old = Locks::in_memory(LocksConfig::default());
    let mut last = 0;
    for _ in 0..100 {
        let grant = old.grant("job", ms(1_000), ms(0), "").await.unwrap();
        old.release("job", grant.token).await.unwrap();
        last = grant.token;
    }
    // 100 grants ran the counter at most 100 µs ahead of the clock; a restart takes
    // longer than that (the wall clock, which paused Tokio time does not stop).
    std::thread::sleep(Duration::from_millis(1));
    let new = Locks::in_memory(LocksConfig::default());
    let grant = new.grant("job", ms(1_000), ms(0), "").await.unwrap();
    assert!(grant.token > last, "{} after {last}", grant.token);
    assert!(grant.token < 1 << 53, "tokens stay exact in JSON numbers");
}
