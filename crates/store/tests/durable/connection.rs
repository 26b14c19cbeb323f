//! Connection loss: with the database gone, calls fail fast with a typed
//! `Unavailable`, the health check says so, the relay waits; once it is back the
//! reconnect heal action succeeds, calls work again, and nothing committed before
//! the loss is lost or left undelivered. (The `datastore` service under the same
//! loss is tested in `plexus-datastore`.)
//!
//! PostgreSQL is reached through the project's TCP fault proxy (the shared server
//! is never touched); in `Refuse` mode it cuts every open connection and every new
//! one. SQLite loses its file by having its folder renamed away and a plain file put
//! in its place, which denies access even to root. SQLite keeps a file it has open:
//! a connection already open goes on reading and writing the moved file (what it
//! writes is there when the file comes back); what fails is opening the file, which
//! the pool does for every new connection. So the SQLite test keeps the pool's open
//! connections busy, and every call needs a new one.

use std::time::Duration;

use plexus_bus::{Bus, SubscribeOptions, Subscription};
use plexus_core::HealthState;
use plexus_faultproxy::Mode;
use plexus_registry::health::{CheckError, HealAction, HealKind, HealthCheck, check_fn};
use plexus_store::{DataStore, Outbox, OutboxError, PutMode, RelayConfig, RelayHandle, StoreError};
use serde_json::json;
use tokio::time::Instant;

use crate::support::{PATIENCE, Place, behind_a_fresh_proxy, cases_outbox, event, put_case};

/// Calls must fail within the acquire timeout, plus this.
const FAST: Duration = Duration::from_secs(3);
const ACQUIRE_MS: u64 = 2_000;

/// Writes ten documents, each with its durable event, before the loss.
async fn before_the_loss(ds: &DataStore) -> Outbox {
    let outbox = cases_outbox(ds).await;
    for i in 0..10 {
        put_case(&outbox, i, vec![event("cases.opened", json!({"i": i}))]).await;
    }
    outbox
}

/// A relay on a fresh bus, retrying every 10 to 100 ms, started while the store
/// is lost: returns once it has met a store error, with a subscription to `cases.>`.
async fn a_relay_meeting_the_loss(outbox: &Outbox) -> (Bus, Subscription, RelayHandle) {
    let bus = Bus::new();
    let sub = bus.subscribe("cases.>", SubscribeOptions::new()).unwrap();
    let config = RelayConfig {
        retry_backoff_ms: 10,
        max_backoff_ms: 100,
        ..RelayConfig::default()
    };
    let relay = outbox.spawn_relay(bus.clone(), config).unwrap();
    let mut watch = relay.watch();
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.store_errors >= 1))
        .await
        .unwrap()
        .unwrap();
    (bus, sub, relay)
}

/// Receives the ten events written [`before_the_loss`].
async fn the_ten_events(sub: &mut Subscription) {
    for _ in 0..10 {
        tokio::time::timeout(PATIENCE, sub.recv())
            .await
            .unwrap()
            .unwrap();
    }
}

/// While the database is gone: every kind of call fails fast and typed.
async fn during_the_loss(ds: &DataStore, outbox: &Outbox) {
    let started = Instant::now();
    let err = ds
        .put("cases", "c99", &json!({"a": 1}), PutMode::Insert, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());

    let err = outbox
        .put(
            "cases",
            "c97",
            &json!({"a": 1}),
            PutMode::Insert,
            None,
            vec![event("cases.opened", json!({}))],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, OutboxError::Store(StoreError::Unavailable { .. })),
        "{err:?}"
    );

    let started = Instant::now();
    assert!(matches!(
        ds.store().ping().await,
        Err(StoreError::Unavailable { .. })
    ));
    assert!(started.elapsed() < FAST);
    let store = ds.store().clone();
    let check = check_fn(move || {
        let store = store.clone();
        async move { Ok::<_, CheckError>(store.health().await) }
    });
    let report = check.check().await.unwrap();
    assert_eq!(report.state, HealthState::Unhealthy);
    assert!(report.detail.contains("unavailable"), "{}", report.detail);
    assert!(ds.store().reconnect().await.is_err());
}

/// Once the database is back: the heal action succeeds, calls work, nothing is
/// lost, and the relay delivers every event committed before the loss.
async fn after_the_loss(
    ds: &DataStore,
    outbox: &Outbox,
    bus: &Bus,
    relay: plexus_store::RelayHandle,
) {
    let store = ds.store().clone();
    let heal = HealAction::reconnect("store", move || {
        let store = store.clone();
        async move { store.reconnect().await }
    });
    assert_eq!(heal.kind(), HealKind::Reconnect);
    ds.store().reconnect().await.unwrap();
    assert_eq!(ds.store().health().await.state, HealthState::Healthy);
    ds.put("cases", "c10", &json!({"i": 10}), PutMode::Insert, None)
        .await
        .unwrap();
    for i in 0..=10 {
        let doc = ds.get("cases", &format!("c{i}")).await.unwrap().unwrap();
        assert_eq!(doc.doc["i"], i);
    }
    assert!(ds.get("cases", "c99").await.unwrap().is_none());
    assert!(ds.get("cases", "c97").await.unwrap().is_none());
    let mut watch = relay.watch();
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.delivered == 10))
        .await
        .unwrap()
        .unwrap();
    let stats = relay.shutdown().await;
    assert!(stats.store_errors >= 1, "{stats:?}");
    assert_eq!(outbox.pending().await.unwrap(), 0);
    let _ = bus;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_a_fault_proxy() {
    let (proxy, url, place) = behind_a_fresh_proxy().await;
    let ds = place
        .open_with(|c| {
            c.url = url.clone();
            c.acquire_timeout_ms = ACQUIRE_MS;
        })
        .await;
    let outbox = before_the_loss(&ds).await;

    proxy.set_mode(Mode::Refuse);
    during_the_loss(&ds, &outbox).await;
    // A relay started during the loss keeps trying.
    let (bus, mut sub, relay) = a_relay_meeting_the_loss(&outbox).await;
    assert!(sub.try_recv().is_none());
    assert!(proxy.stats().cut >= 1);

    proxy.set_mode(Mode::Forward);
    after_the_loss(&ds, &outbox, &bus, relay).await;
    the_ten_events(&mut sub).await;
    ds.store().close().await;
    place.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_whose_file_goes_away() {
    let place = Place::new(plexus_store::BackendKind::Sqlite);
    let ds = place.open_with(|c| c.acquire_timeout_ms = ACQUIRE_MS).await;
    let outbox = before_the_loss(&ds).await;

    // Every connection the pool has open is in use elsewhere… (A connection given
    // back returns to the pool in a task of its own: wait until all are idle.)
    tokio::time::timeout(PATIENCE, async {
        loop {
            let pool = ds.store().pool_state();
            if pool.idle == pool.size {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let mut held = Vec::new();
    while ds.store().pool_state().idle > 0 {
        held.push(ds.store().session().await.unwrap());
    }
    assert!(!held.is_empty());
    // …when the folder moves away and a plain file takes its path.
    let aside = place.dir.with_extension("aside");
    std::fs::rename(&place.dir, &aside).unwrap();
    std::fs::write(&place.dir, b"not a folder").unwrap();
    during_the_loss(&ds, &outbox).await;
    let (bus, mut sub, relay) = a_relay_meeting_the_loss(&outbox).await;

    std::fs::remove_file(&place.dir).unwrap();
    std::fs::rename(&aside, &place.dir).unwrap();
    drop(held);
    after_the_loss(&ds, &outbox, &bus, relay).await;
    the_ten_events(&mut sub).await;
    ds.store().close().await;
    place.remove().await;
}
