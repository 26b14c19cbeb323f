//! The Redis backend on the shared test server: the conformance suite, and expiry
//! announced exactly once when two nodes sweep the same Redis.

use std::collections::HashSet;

use plexus_sessions::conformance::{listen, next_event, no_more_events};
use plexus_sessions::{Counted, EXPIRED, SessionsConfig};

use crate::support::{client, redis_url, unique_prefix};

plexus_sessions::session_conformance!(paused: false, |config| async move {
    crate::support::redis_sessions(config)
});

/// Two nodes (two connections, two buses, two sweepers every 5 ms) on one Redis:
/// each of 40 expiring sessions is announced as `session.expired` by exactly one
/// of them, and the expired counters of both add up to 40.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_announce_each_expiry_exactly_once() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let config = SessionsConfig {
        sweep_interval_ms: 5,
        sweep_batch: 7,
        ..SessionsConfig::default()
    };
    let a = client(config.clone(), &url, &prefix);
    let b = client(config, &url, &prefix);
    let (mut a_events, mut b_events) = (listen(&a), listen(&b));
    let sweepers = [a.start_sweeper(), b.start_sweeper()];
    let mut ids = HashSet::new();
    for i in 0..40_u64 {
        let node = if i % 2 == 0 { &a } else { &b };
        let made = node
            .create(&format!("user-{}", i % 5), Some(200 + i * 5), None)
            .await
            .unwrap();
        ids.insert(made.id);
    }
    let mut announced = HashSet::new();
    let mut by = [0_usize; 2];
    while announced.len() < ids.len() {
        let (topic, event, who) = tokio::select! {
            (t, e) = next_event(&mut a_events) => (t, e, 0),
            (t, e) = next_event(&mut b_events) => (t, e, 1),
        };
        assert_eq!(
            (topic.as_str(), event.reason.as_str()),
            (EXPIRED, "expired")
        );
        assert!(ids.contains(&event.id), "an unknown session announced");
        assert!(announced.insert(event.id), "a session announced twice");
        by[who] += 1;
    }
    // Nothing is left for either sweeper to take.
    assert_eq!(a.sweep().await.unwrap() + b.sweep().await.unwrap(), 0);
    for sweeper in sweepers {
        sweeper.abort();
    }
    no_more_events(&mut a_events);
    no_more_events(&mut b_events);
    assert_eq!(
        a.metrics().get(Counted::Expired) + b.metrics().get(Counted::Expired),
        40
    );
    assert_eq!(by[0] + by[1], 40);
}

/// Sessions created on one node are read, renewed, updated and revoked on another
/// (they share the Redis and its clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_sessions() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let a = client(SessionsConfig::default(), &url, &prefix);
    let b = client(SessionsConfig::default(), &url, &prefix);
    let made = a.create("shared", Some(60_000), None).await.unwrap();
    assert_eq!(b.get(&made.id).await.unwrap(), made);
    b.touch(&made.id).await.unwrap();
    assert_eq!(a.list("shared", 0, None).await.unwrap().sessions.len(), 1);
    assert!(b.revoke(&made.id).await.unwrap());
    assert!(a.get(&made.id).await.is_err());
}

/// The cap holds under concurrency across nodes (create and its cap check are one
/// script): 30 concurrent creates for one subject from two nodes leave exactly 3
/// live sessions, 27 evicted (`evict_oldest`), or 3 created and 27 refused
/// (`refuse`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_holds_under_concurrent_creates_from_two_nodes() {
    for on_cap in [
        plexus_sessions::OnCap::EvictOldest,
        plexus_sessions::OnCap::Refuse,
    ] {
        let (url, prefix) = (redis_url(), unique_prefix());
        let config = SessionsConfig {
            max_per_subject: 3,
            on_cap,
            ..SessionsConfig::default()
        };
        let nodes = [
            client(config.clone(), &url, &prefix),
            client(config, &url, &prefix),
        ];
        let mut creates = Vec::new();
        for i in 0..30 {
            let node = nodes[i % 2].clone();
            creates.push(tokio::spawn(async move {
                node.create("crowded", None, None).await
            }));
        }
        let mut created = 0;
        for create in creates {
            match create.await.unwrap() {
                Ok(_) => created += 1,
                Err(plexus_sessions::SessionError::CapReached { max: 3 }) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        let live = nodes[0].list("crowded", 0, None).await.unwrap().sessions;
        assert_eq!(live.len(), 3, "{on_cap:?}");
        let evicted: u64 = nodes
            .iter()
            .map(|n| n.metrics().get(Counted::Evicted))
            .sum();
        match on_cap {
            plexus_sessions::OnCap::EvictOldest => assert_eq!((created, evicted), (30, 27)),
            plexus_sessions::OnCap::Refuse => assert_eq!((created, evicted), (3, 0)),
        }
    }
}
