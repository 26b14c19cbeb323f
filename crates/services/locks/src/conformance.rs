//! The suite every lock backend must pass (feature `test-util`).
//!
//! Each function takes `make`, which builds [`Locks`] on the backend under test
//! held to the configuration it is given, and panics on a violation. Every case
//! uses lock names of its own ([`fresh`]), so backends shared between tests (one
//! Redis, one PostgreSQL schema) need no cleaning. Run them all with
//! [`locks_conformance!`](crate::locks_conformance):
//!
//! ```no_run
//! plexus_locks::locks_conformance!(paused: true, |config| async move {
//!     plexus_locks::Locks::in_memory(config)
//! });
//! ```
//!
//! Time-driven cases wait for what they expect with a bound ([`eventually`]): under
//! paused time (`paused: true`, for the in-process backend) Tokio moves the clock
//! forward while the test waits; against a server the wait is real.
//!
//! The functions panic (they are tests): `unwrap_used` is allowed here.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::{LockError, Locks, LocksConfig};

pub use plexus_redis::testing::{PATIENCE, eventually};

/// A lock name no other test uses.
pub fn fresh(case: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{case}-{}-{nanos:x}-{n}", std::process::id())
}

const MS: fn(u64) -> Duration = Duration::from_millis;

fn field_of(error: &LockError) -> &str {
    match error {
        LockError::Invalid { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn assert_not_holder(result: Result<(), LockError>) {
    assert!(
        matches!(result, Err(LockError::NotHolder { .. })),
        "expected a not_holder refusal, got {result:?}"
    );
}

/// Grant, status, extend, release, status: what each says, and a release or an
/// extend after the release is refused.
pub async fn grant_extend_release_status<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("cycle");
    let free = locks.status(&name).await.unwrap();
    assert!(!free.held && free.token.is_none(), "{free:?}");
    let grant = locks
        .grant(&name, MS(30_000), MS(0), "worker-1")
        .await
        .unwrap();
    assert_eq!((grant.lease_ms, grant.waited_ms), (30_000, 0));
    let status = locks.status(&name).await.unwrap();
    assert!(status.held, "{status:?}");
    assert_eq!(status.holder.as_deref(), Some("worker-1"));
    assert_eq!(status.token, Some(grant.token));
    let left = status.remaining_ms.unwrap();
    assert!(left > 20_000 && left <= 30_000, "{status:?}");
    locks.extend(&name, grant.token, MS(60_000)).await.unwrap();
    let left = locks.status(&name).await.unwrap().remaining_ms.unwrap();
    assert!(left > 50_000 && left <= 60_000, "{left}");
    locks.release(&name, grant.token).await.unwrap();
    assert!(!locks.status(&name).await.unwrap().held);
    assert_not_holder(locks.release(&name, grant.token).await);
    assert_not_holder(locks.extend(&name, grant.token, MS(1_000)).await);
    let counts = locks.metrics().counts();
    assert_eq!(
        (counts.grants, counts.extensions, counts.releases),
        (1, 1, 1)
    );
    assert_eq!((counts.release_refusals, counts.extend_refusals), (1, 1));
}

/// Each grant's token is greater than the one before, across releases and expiries;
/// different names do not share a holder.
pub async fn tokens_strictly_increase<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("tokens");
    let mut last = 0;
    for _ in 0..5 {
        let grant = locks.grant(&name, MS(30_000), MS(0), "").await.unwrap();
        assert!(grant.token > last, "{} after {last}", grant.token);
        last = grant.token;
        locks.release(&name, grant.token).await.unwrap();
    }
    // Across an expiry.
    locks.grant(&name, MS(100), MS(0), "").await.unwrap();
    let after = locks.grant(&name, MS(30_000), MS(5_000), "").await.unwrap();
    assert!(after.token > last, "{} after {last}", after.token);
    let other = locks
        .grant(&fresh("tokens-other"), MS(30_000), MS(0), "")
        .await;
    assert!(other.is_ok(), "another name is another lock: {other:?}");
}

/// A token that is not the current grant's is refused for extend and release, and
/// leaves the holder's grant alone.
pub async fn a_wrong_token_is_refused<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("wrong");
    let grant = locks.grant(&name, MS(30_000), MS(0), "").await.unwrap();
    assert_not_holder(locks.extend(&name, grant.token + 1, MS(1_000)).await);
    assert_not_holder(locks.release(&name, grant.token - 1).await);
    assert_not_holder(locks.release(&fresh("never"), grant.token).await);
    let status = locks.status(&name).await.unwrap();
    assert_eq!(status.token, Some(grant.token));
    assert!(status.remaining_ms.unwrap() > 20_000, "{status:?}");
    let counts = locks.metrics().counts();
    assert_eq!((counts.extend_refusals, counts.release_refusals), (1, 2));
}

/// A held lock is refused at once without a wait (`busy`, retryable, counted).
pub async fn a_held_lock_is_busy<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("busy");
    locks.grant(&name, MS(30_000), MS(0), "a").await.unwrap();
    let err = locks
        .grant(&name, MS(30_000), MS(0), "b")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::Busy { waited_ms: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_service_error().is_retryable());
    assert_eq!(locks.metrics().counts().busy, 1);
    assert_eq!(locks.metrics().counts().waits, 0);
}

/// A lock whose holder neither extends nor releases is free once its lease is over,
/// and not before.
pub async fn expiry_frees_the_lock_after_its_lease<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("expiry");
    let start = Instant::now();
    let first = locks.grant(&name, MS(300), MS(0), "").await.unwrap();
    let early = locks.grant(&name, MS(30_000), MS(0), "").await;
    if start.elapsed() < MS(250) {
        assert!(matches!(early, Err(LockError::Busy { .. })), "{early:?}");
    }
    eventually("the lease runs out", || async {
        !locks.status(&name).await.unwrap().held
    })
    .await;
    assert!(
        start.elapsed() >= MS(290),
        "freed after {:?}",
        start.elapsed()
    );
    assert_not_holder(locks.extend(&name, first.token, MS(1_000)).await);
    let next = locks.grant(&name, MS(30_000), MS(0), "").await.unwrap();
    assert!(next.token > first.token);
}

/// A waiter gets the lock when its lease ends, within its wait, with a greater
/// token; the wait is counted.
pub async fn a_waiter_gets_the_lock_when_the_lease_ends<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("waiter");
    let first = locks.grant(&name, MS(400), MS(0), "").await.unwrap();
    let start = Instant::now();
    let next = locks
        .grant(&name, MS(30_000), MS(10_000), "")
        .await
        .unwrap();
    let waited = start.elapsed();
    assert!(next.token > first.token);
    assert!(waited >= MS(300) && waited < MS(5_000), "waited {waited:?}");
    assert!(next.waited_ms >= 300, "{next:?}");
    assert_eq!(locks.metrics().counts().waits, 1);
}

/// A waiter gets a lock released while it waits, well before the lease would end.
pub async fn a_waiter_gets_a_released_lock<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("released");
    let first = locks.grant(&name, MS(60_000), MS(0), "").await.unwrap();
    let waiter = {
        let (locks, name) = (locks.clone(), name.clone());
        tokio::spawn(async move { locks.grant(&name, MS(30_000), MS(20_000), "").await })
    };
    // Long enough for the waiter to find the lock held (its first pause is 5 ms);
    // `waited_ms` below shows that it did.
    tokio::time::sleep(MS(100)).await;
    locks.release(&name, first.token).await.unwrap();
    let next = waiter.await.unwrap().unwrap();
    assert!(next.token > first.token);
    assert!(next.waited_ms > 0 && next.waited_ms < 10_000, "{next:?}");
}

/// A wait is bounded: a lock held past it answers `busy` after about `wait_ms`.
pub async fn a_wait_is_bounded<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("bounded");
    locks.grant(&name, MS(60_000), MS(0), "").await.unwrap();
    let start = Instant::now();
    let err = locks
        .grant(&name, MS(1_000), MS(300), "")
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, LockError::Busy { waited_ms, .. } if waited_ms >= 300),
        "{err:?}"
    );
    assert!(took >= MS(300) && took < MS(2_300), "took {took:?}");
    let counts = locks.metrics().counts();
    assert_eq!((counts.busy, counts.waits), (1, 1));
}

/// Bad input is refused naming the field, before the backend is asked.
pub async fn bad_input_is_refused_naming_the_field<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let config = LocksConfig {
        max_name_bytes: 16,
        max_holder_bytes: 8,
        max_lease_ms: 10_000,
        max_wait_ms: 1_000,
        ..LocksConfig::default()
    };
    let locks = make(config).await;
    let long = "n".repeat(17);
    let cases = [
        ("", MS(1_000), MS(0), "", "/name"),
        (long.as_str(), MS(1_000), MS(0), "", "/name"),
        ("ok", MS(0), MS(0), "", "/lease_ms"),
        ("ok", MS(10_001), MS(0), "", "/lease_ms"),
        ("ok", MS(1_000), MS(1_001), "", "/wait_ms"),
        ("ok", MS(1_000), MS(0), "123456789", "/holder"),
    ];
    for (name, lease, wait, holder, field) in cases {
        let err = locks.grant(name, lease, wait, holder).await.unwrap_err();
        assert_eq!(field_of(&err), field, "{err}");
        let service = err.to_service_error();
        assert!(
            matches!(&service, plexus_core::ServiceError::InvalidParams { field: f, .. } if f == field),
            "{service:?}"
        );
    }
    let err = locks.extend("", 1, MS(1_000)).await.unwrap_err();
    assert_eq!(field_of(&err), "/name");
    let err = locks.extend("ok", 1, MS(0)).await.unwrap_err();
    assert_eq!(field_of(&err), "/lease_ms");
    let err = locks.status(&long).await.unwrap_err();
    assert_eq!(field_of(&err), "/name");
    assert!(locks.metrics().errors("invalid") >= 9);
    assert_eq!(locks.metrics().counts().grants, 0);
}

/// A guard's watchdog keeps the lease past its first term; dropping the guard
/// releases the lock.
pub async fn a_guard_keeps_its_lease_and_releases_on_drop<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("guard");
    let guard = locks.acquire(&name, MS(300), MS(0), "g").await.unwrap();
    // Three leases' time: without the watchdog the lock would be free.
    tokio::time::sleep(MS(900)).await;
    let status = locks.status(&name).await.unwrap();
    assert_eq!(status.token, Some(guard.token()), "{status:?}");
    assert!(!guard.is_lost());
    assert!(locks.metrics().counts().extensions >= 2);
    drop(guard);
    eventually("the dropped guard's lock is released", || async {
        !locks.status(&name).await.unwrap().held
    })
    .await;
    assert_eq!(locks.metrics().counts().releases, 1);
}

/// A guard whose grant is taken from it (released by its token elsewhere, or
/// expired) reports the lock lost.
pub async fn a_guard_reports_a_lost_lock<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("lost");
    let guard = locks.acquire(&name, MS(600), MS(0), "").await.unwrap();
    locks.release(&name, guard.token()).await.unwrap();
    let thief = locks.grant(&name, MS(30_000), MS(0), "").await.unwrap();
    tokio::time::timeout(PATIENCE, guard.lost()).await.unwrap();
    assert!(guard.is_lost());
    assert_eq!(locks.metrics().counts().lost, 1);
    assert_not_holder(guard.release().await);
    assert_eq!(locks.status(&name).await.unwrap().token, Some(thief.token));
}

/// A holder that dies (its watchdog gone, nothing released) leaves the lock held
/// until its lease is over, then free for the next holder with a greater token.
pub async fn a_dead_holders_lock_is_free_after_its_lease<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("dead");
    let guard = locks.acquire(&name, MS(400), MS(0), "").await.unwrap();
    let token = guard.token();
    let start = Instant::now();
    guard.abandon();
    assert_eq!(locks.status(&name).await.unwrap().token, Some(token));
    let next = locks
        .grant(&name, MS(30_000), MS(10_000), "")
        .await
        .unwrap();
    assert!(
        start.elapsed() >= MS(350),
        "free after {:?}",
        start.elapsed()
    );
    assert!(next.token > token);
}

/// Many tasks acquiring and releasing one lock: at no time do two of them believe
/// they hold it, and the tokens they get are in grant order.
pub async fn two_holders_never_both_hold_a_valid_token<M, F>(make: M)
where
    M: Fn(LocksConfig) -> F,
    F: Future<Output = Locks>,
{
    let locks = make(LocksConfig::default()).await;
    let name = fresh("contended");
    let holding = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (locks, name, holding, last) =
            (locks.clone(), name.clone(), holding.clone(), last.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..6 {
                let grant = locks
                    .grant(&name, MS(10_000), MS(60_000), "")
                    .await
                    .unwrap();
                let before = holding.swap(grant.token, Ordering::SeqCst);
                assert_eq!(
                    before, 0,
                    "token {} granted while {before} held",
                    grant.token
                );
                let previous = last.swap(grant.token, Ordering::SeqCst);
                assert!(grant.token > previous, "{} after {previous}", grant.token);
                tokio::task::yield_now().await;
                tokio::time::sleep(MS(2)).await;
                assert_eq!(holding.swap(0, Ordering::SeqCst), grant.token);
                locks.release(&name, grant.token).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(locks.metrics().counts().grants, 36);
}

/// Runs the whole suite as `#[tokio::test]`s on the backend `make` builds:
/// `paused: true` for in-process backends (time-driven cases under paused time).
#[macro_export]
macro_rules! locks_conformance {
    (paused: $paused:literal, $make:expr) => {
        $crate::locks_conformance!(@tests $paused, $make;
            grant_extend_release_status,
            tokens_strictly_increase,
            a_wrong_token_is_refused,
            a_held_lock_is_busy,
            expiry_frees_the_lock_after_its_lease,
            a_waiter_gets_the_lock_when_the_lease_ends,
            a_waiter_gets_a_released_lock,
            a_wait_is_bounded,
            bad_input_is_refused_naming_the_field,
            a_guard_keeps_its_lease_and_releases_on_drop,
            a_guard_reports_a_lost_lock,
            a_dead_holders_lock_is_free_after_its_lease,
            two_holders_never_both_hold_a_valid_token,
        );
    };
    (@tests $paused:literal, $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "current_thread", start_paused = $paused)]
            async fn $name() {
                $crate::conformance::$name($make).await;
            }
        )*
    };
}
