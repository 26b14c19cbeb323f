//! The suite every session backend must pass (feature `test-util`).
//!
//! Each function takes `make`, which builds fresh, empty [`Sessions`] held to the
//! configuration it is given, and panics on a violation. Run them all with
//! [`session_conformance!`](crate::session_conformance):
//!
//! ```no_run
//! plexus_sessions::session_conformance!(paused: true, |config| async move {
//!     plexus_sessions::Sessions::in_memory(config)
//! });
//! ```
//!
//! Time-driven cases let time pass with `tokio::time::sleep` (under paused time,
//! `paused: true` for in-process backends, Tokio moves the clock at once; against a
//! server the wait is real, with TTLs of a second or two and margins of hundreds of
//! milliseconds), and wait for events with a bound ([`PATIENCE`]).
//!
//! The functions panic (they are tests): `unwrap_used` is allowed here.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::time::Duration;

use plexus_bus::{Bus, SubscribeOptions, Subscription};
use serde_json::{Value, json};

use crate::{
    OnCap, Session, SessionError, SessionEvent, Sessions, SessionsConfig, UpdateMode, is_id,
};

pub use plexus_redis::testing::{PATIENCE, eventually};

fn field_of(error: &SessionError) -> &str {
    match error {
        SessionError::Invalid { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn not_found<T: std::fmt::Debug>(result: Result<T, SessionError>) {
    match result {
        Err(SessionError::NotFound) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

/// A bus attached to `sessions`, and a subscription to every session event.
pub fn listen(sessions: &Sessions) -> Subscription {
    let bus = Bus::new();
    let events = bus.subscribe("session.>", SubscribeOptions::new()).unwrap();
    sessions.attach_bus(bus);
    events
}

/// The next session event, within [`PATIENCE`]: its topic and payload.
pub async fn next_event(events: &mut Subscription) -> (String, SessionEvent) {
    let envelope = tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("no session event in time")
        .expect("the bus closed");
    let event = envelope.payload().decode::<SessionEvent>().unwrap();
    (envelope.topic().as_str().to_owned(), (*event).clone())
}

/// The sessions' event stream has nothing more right now.
pub fn no_more_events(events: &mut Subscription) {
    if let Some(extra) = events.try_recv() {
        panic!("an unexpected event: {extra:?}");
    }
}

/// A session comes back as created: a fresh 256-bit id, its subject, data and
/// times, version 1; an id never issued is not found.
pub async fn create_then_get_round_trips<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(SessionsConfig::default()).await;
    let data = json!({"name": "Ada", "roles": ["admin"], "n": 1.5, "nested": {"a": []}});
    let made = sessions
        .create("user-1", Some(60_000), Some(data.clone()))
        .await
        .unwrap();
    assert!(is_id(&made.id), "{}", made.id);
    assert_eq!(made.expires_at_ms, made.created_at_ms + 60_000);
    let got = sessions.get(&made.id).await.unwrap();
    assert_eq!(got, made);
    assert_eq!((got.subject.as_str(), got.version), ("user-1", 1));
    assert_eq!(Value::Object(got.data), data);

    let other = sessions.create("user-1", None, None).await.unwrap();
    assert_ne!(other.id, made.id);
    assert!(other.data.is_empty());
    assert_eq!(
        other.expires_at_ms - other.created_at_ms,
        SessionsConfig::default().ttl_ms
    );
    not_found(sessions.get(&crate::new_id()).await);
    assert_eq!(
        sessions.metrics().get(crate::Counted::Created),
        2,
        "created counted"
    );
}

/// `touch` extends a session by its TTL from now and `get` does not: a touched
/// session outlives its first expiry, then expires in turn and is not found.
pub async fn touch_slides_the_expiry_and_get_does_not<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(SessionsConfig::default()).await;
    let ttl = 1_600;
    let made = sessions.create("u", Some(ttl), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(ttl / 2)).await;
    let read = sessions.get(&made.id).await.unwrap();
    assert_eq!(read.expires_at_ms, made.expires_at_ms, "get does not renew");
    let touched = sessions.touch(&made.id).await.unwrap();
    assert!(
        touched.expires_at_ms >= made.expires_at_ms + ttl / 2,
        "touch extends by the TTL from now: {} then {}",
        made.expires_at_ms,
        touched.expires_at_ms
    );
    // Past the first expiry, before the renewed one.
    tokio::time::sleep(Duration::from_millis(ttl * 3 / 4)).await;
    let alive = sessions.get(&made.id).await.unwrap();
    assert_eq!(alive.expires_at_ms, touched.expires_at_ms);
    assert_eq!(sessions.metrics().get(crate::Counted::Touched), 1);
    eventually("the renewed session expires", || async {
        matches!(sessions.get(&made.id).await, Err(SessionError::NotFound))
    })
    .await;
    not_found(sessions.touch(&made.id).await);
}

/// With `max_lifetime_ms`, neither the TTL nor a touch carries a session past its
/// creation plus that lifetime.
pub async fn the_lifetime_bounds_every_renewal<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let config = SessionsConfig {
        max_lifetime_ms: 30_000,
        ..SessionsConfig::default()
    };
    let sessions = make(config).await;
    let made = sessions.create("u", Some(60_000), None).await.unwrap();
    assert_eq!(made.expires_at_ms, made.created_at_ms + 30_000);
    let touched = sessions.touch(&made.id).await.unwrap();
    assert_eq!(touched.expires_at_ms, made.created_at_ms + 30_000);
    let short = sessions.create("u", Some(1_000), None).await.unwrap();
    assert_eq!(short.expires_at_ms, short.created_at_ms + 1_000);
}

/// `update` replaces or merges (null removes a key), adds one to the version, and
/// with an expected version refuses a stale writer with both versions named.
pub async fn update_replaces_merges_and_checks_the_version<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(SessionsConfig::default()).await;
    let id = sessions
        .create("u", None, Some(json!({"a": 1, "b": 2})))
        .await
        .unwrap()
        .id;
    let replaced = sessions
        .update(&id, json!({"c": 3}), UpdateMode::Replace, None)
        .await
        .unwrap();
    assert_eq!(
        (Value::Object(replaced.data), replaced.version),
        (json!({"c": 3}), 2)
    );
    let merged = sessions
        .update(
            &id,
            json!({"d": [4], "c": null}),
            UpdateMode::Merge,
            Some(2),
        )
        .await
        .unwrap();
    assert_eq!(
        (Value::Object(merged.data), merged.version),
        (json!({"d": [4]}), 3)
    );

    for mode in [UpdateMode::Replace, UpdateMode::Merge] {
        let err = sessions
            .update(&id, json!({"lost": true}), mode, Some(2))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SessionError::Conflict {
                expected: 2,
                actual: 3
            },
            "{mode:?}"
        );
    }
    let got = sessions.get(&id).await.unwrap();
    assert_eq!(
        (Value::Object(got.data), got.version),
        (json!({"d": [4]}), 3)
    );
    let unknown = crate::new_id();
    not_found(
        sessions
            .update(&unknown, json!({}), UpdateMode::Merge, None)
            .await,
    );
    not_found(
        sessions
            .update(&unknown, json!({}), UpdateMode::Replace, None)
            .await,
    );
}

/// A revoked session is gone for every operation; revoking it again says so;
/// revoking a subject revokes its sessions and no one else's.
pub async fn revoke_by_id_and_by_subject<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(SessionsConfig::default()).await;
    let id = sessions.create("a", None, None).await.unwrap().id;
    assert!(sessions.revoke(&id).await.unwrap());
    not_found(sessions.get(&id).await);
    not_found(sessions.touch(&id).await);
    not_found(
        sessions
            .update(&id, json!({}), UpdateMode::Replace, None)
            .await,
    );
    assert!(!sessions.revoke(&id).await.unwrap());

    for _ in 0..3 {
        sessions.create("a", None, None).await.unwrap();
    }
    let kept = sessions.create("b", None, None).await.unwrap().id;
    assert_eq!(sessions.revoke_subject("a").await.unwrap(), 3);
    assert_eq!(sessions.revoke_subject("a").await.unwrap(), 0);
    assert!(
        sessions
            .list("a", 0, None)
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
    sessions.get(&kept).await.unwrap();
    assert_eq!(sessions.metrics().get(crate::Counted::Revoked), 4);
}

/// A subject's live sessions come a page at a time, soonest to expire first, and
/// only its own.
pub async fn list_pages_a_subjects_sessions<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(SessionsConfig::default()).await;
    let mut made = Vec::new();
    for ttl in [50_000, 10_000, 40_000, 20_000, 30_000] {
        made.push(sessions.create("lister", Some(ttl), None).await.unwrap());
    }
    sessions.create("someone-else", None, None).await.unwrap();
    made.sort_by_key(|s| s.expires_at_ms);
    let mut seen: Vec<Session> = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let page = sessions.list("lister", offset, Some(2)).await.unwrap();
        assert!(page.sessions.len() <= 2);
        seen.extend(page.sessions);
        pages += 1;
        match page.next_offset {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made);
    let all = sessions.list("lister", 0, None).await.unwrap();
    assert_eq!((all.sessions.len(), all.next_offset), (5, None));
    assert!(
        sessions
            .list("nobody", 0, None)
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
}

fn capped(max: usize, on_cap: OnCap) -> SessionsConfig {
    SessionsConfig {
        max_per_subject: max,
        on_cap,
        ..SessionsConfig::default()
    }
}

/// Past the cap (`evict_oldest`), the subject's session that expires soonest is
/// revoked, counted and announced as `session.revoked` with reason `evicted`;
/// other subjects are not affected.
pub async fn the_cap_evicts_the_oldest<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(capped(2, OnCap::EvictOldest)).await;
    let mut events = listen(&sessions);
    let oldest = sessions.create("capped", Some(10_000), None).await.unwrap();
    let newer = sessions.create("capped", Some(20_000), None).await.unwrap();
    let other = sessions.create("other", Some(5_000), None).await.unwrap();
    let third = sessions.create("capped", Some(30_000), None).await.unwrap();
    not_found(sessions.get(&oldest.id).await);
    for kept in [&newer, &third, &other] {
        sessions.get(&kept.id).await.unwrap();
    }
    let (topic, event) = next_event(&mut events).await;
    assert_eq!(topic, crate::REVOKED);
    assert_eq!(
        event,
        SessionEvent {
            id: oldest.id.clone(),
            subject: "capped".to_owned(),
            reason: "evicted".to_owned()
        }
    );
    no_more_events(&mut events);
    assert_eq!(sessions.metrics().get(crate::Counted::Evicted), 1);
    let listed = sessions.list("capped", 0, None).await.unwrap().sessions;
    assert_eq!(listed.len(), 2);
}

/// Past the cap (`refuse`), the create is refused with a typed error, counted,
/// and nothing is evicted.
pub async fn the_cap_refuses_when_told_to<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(capped(2, OnCap::Refuse)).await;
    let first = sessions.create("capped", None, None).await.unwrap();
    sessions.create("capped", None, None).await.unwrap();
    let err = sessions.create("capped", None, None).await.unwrap_err();
    assert_eq!(err, SessionError::CapReached { max: 2 });
    assert_eq!(
        err.to_service_error().to_string(),
        "the subject already holds 2 sessions"
    );
    sessions.get(&first.id).await.unwrap();
    assert_eq!(sessions.metrics().get(crate::Counted::CapReached), 1);
    assert_eq!(sessions.metrics().get(crate::Counted::Evicted), 0);
    // A revoked session frees its place.
    sessions.revoke(&first.id).await.unwrap();
    sessions.create("capped", None, None).await.unwrap();
}

/// An expired session does not count against its subject's cap.
pub async fn expired_sessions_do_not_count_against_the_cap<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(capped(1, OnCap::Refuse)).await;
    let short = sessions.create("capped", Some(300), None).await.unwrap();
    eventually("the short session expires", || async {
        matches!(sessions.get(&short.id).await, Err(SessionError::NotFound))
    })
    .await;
    sessions.create("capped", None, None).await.unwrap();
}

/// Revoking announces exactly one `session.revoked` per session revoked, with its
/// id, subject and reason `revoked`; revoking what is gone announces nothing.
pub async fn revoking_announces_once<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let sessions = make(SessionsConfig::default()).await;
    let mut events = listen(&sessions);
    let one = sessions.create("s", None, None).await.unwrap();
    assert!(sessions.revoke(&one.id).await.unwrap());
    let (topic, event) = next_event(&mut events).await;
    assert_eq!(topic, crate::REVOKED);
    assert_eq!(
        event,
        SessionEvent {
            id: one.id.clone(),
            subject: "s".to_owned(),
            reason: "revoked".to_owned()
        }
    );
    assert!(!sessions.revoke(&one.id).await.unwrap());
    no_more_events(&mut events);

    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(sessions.create("s", None, None).await.unwrap().id);
    }
    assert_eq!(sessions.revoke_subject("s").await.unwrap(), 2);
    let mut announced = Vec::new();
    for _ in 0..2 {
        let (topic, event) = next_event(&mut events).await;
        assert_eq!(
            (topic.as_str(), event.reason.as_str()),
            (crate::REVOKED, "revoked")
        );
        announced.push(event.id);
    }
    ids.sort();
    announced.sort();
    assert_eq!(announced, ids);
    no_more_events(&mut events);
}

/// A session left alone expires: not found from then on, swept by the sweeper and
/// announced exactly once as `session.expired`; one that is revoked is not
/// announced as expired.
pub async fn expiry_is_announced_once<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let config = SessionsConfig {
        sweep_interval_ms: 20,
        ..SessionsConfig::default()
    };
    let sessions = make(config).await;
    let mut events = listen(&sessions);
    let sweeper = sessions.start_sweeper();
    let made = sessions
        .create("e", Some(300), Some(json!({"k": 1})))
        .await
        .unwrap();
    let revoked = sessions.create("e", Some(300), None).await.unwrap();
    sessions.revoke(&revoked.id).await.unwrap();
    let (_, event) = next_event(&mut events).await;
    assert_eq!(event.id, revoked.id);

    let (topic, event) = next_event(&mut events).await;
    assert_eq!(topic, crate::EXPIRED);
    assert_eq!(
        event,
        SessionEvent {
            id: made.id.clone(),
            subject: "e".to_owned(),
            reason: "expired".to_owned()
        }
    );
    not_found(sessions.get(&made.id).await);
    assert_eq!(sessions.sweep().await.unwrap(), 0, "nothing left to sweep");
    no_more_events(&mut events);
    assert_eq!(sessions.metrics().get(crate::Counted::Expired), 1);
    sweeper.abort();
}

/// Bad input is refused with a typed error naming the field.
pub async fn bad_input_is_refused_naming_the_field<M, F>(make: M)
where
    M: Fn(SessionsConfig) -> F,
    F: Future<Output = Sessions>,
{
    let config = SessionsConfig {
        ttl_ms: 5_000,
        max_ttl_ms: 10_000,
        max_data_bytes: 64,
        max_subject_bytes: 16,
        max_page: 10,
        ..SessionsConfig::default()
    };
    let sessions = make(config).await;
    let big = json!({"blob": "x".repeat(100)});
    let cases = [
        (sessions.create("u", Some(0), None).await, "/ttl_ms"),
        (sessions.create("u", Some(10_001), None).await, "/ttl_ms"),
        (sessions.create("u", None, Some(big.clone())).await, "/data"),
        (sessions.create("u", None, Some(json!([1]))).await, "/data"),
        (sessions.create("", None, None).await, "/subject"),
        (
            sessions.create(&"s".repeat(17), None, None).await,
            "/subject",
        ),
        (sessions.get("not-an-id").await, "/id"),
        (sessions.touch(&"A".repeat(64)).await, "/id"),
    ];
    for (result, field) in cases {
        assert_eq!(field_of(&result.unwrap_err()), field);
    }
    let id = sessions.create("u", None, None).await.unwrap().id;
    for mode in [UpdateMode::Replace, UpdateMode::Merge] {
        let err = sessions
            .update(&id, big.clone(), mode, None)
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "/data", "{mode:?}");
        let err = sessions
            .update(&id, json!(1), mode, None)
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "/data", "{mode:?}");
    }
    let err = sessions.revoke(&id[1..]).await.unwrap_err();
    assert_eq!(field_of(&err), "/id");
    let err = sessions.list("u", 0, Some(11)).await.unwrap_err();
    assert_eq!(field_of(&err), "/limit");
    let err = sessions.list("u", 0, Some(0)).await.unwrap_err();
    assert_eq!(field_of(&err), "/limit");
    // Nothing bad was written.
    assert_eq!(sessions.get(&id).await.unwrap().version, 1);
    assert_eq!(sessions.list("u", 0, None).await.unwrap().sessions.len(), 1);
}

/// Runs every case of the suite as a `#[tokio::test]`, each with fresh sessions
/// from `$make` (an `async` closure from [`SessionsConfig`] to [`Sessions`]).
/// `paused: true` runs them under paused time (for in-process backends).
#[macro_export]
macro_rules! session_conformance {
    (paused: $paused:literal, $make:expr) => {
        $crate::session_conformance!(@tests $paused, $make;
            create_then_get_round_trips,
            touch_slides_the_expiry_and_get_does_not,
            the_lifetime_bounds_every_renewal,
            update_replaces_merges_and_checks_the_version,
            revoke_by_id_and_by_subject,
            list_pages_a_subjects_sessions,
            the_cap_evicts_the_oldest,
            the_cap_refuses_when_told_to,
            expired_sessions_do_not_count_against_the_cap,
            revoking_announces_once,
            expiry_is_announced_once,
            bad_input_is_refused_naming_the_field,
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
