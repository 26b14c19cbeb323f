//! Connection loss seen through the family: with the database gone, a
//! `datastore.*` call fails as a typed, retryable `Unavailable`, the service and the
//! store's reconnect (the `database` component's heal) fails; once it is back, the
//! reconnect succeeds and calls work again.
//!
//! PostgreSQL is reached through the project's TCP fault proxy (`Refuse` cuts every
//! connection); SQLite loses its file by having its folder renamed away and a plain
//! file put in its place, with every connection the pool holds kept busy so each
//! call needs a new one (the store's own connection tests say why).

use std::time::Duration;

use plexus_core::{CallContext, HealthState, Service, ServiceError};
use plexus_datastore::{DataStoreService, database_component};
use plexus_faultproxy::{FaultProxy, Mode};
use plexus_store::{BackendKind, DataStore};
use serde_json::json;

use crate::support::{PATIENCE, Place, postgres_through};

const ACQUIRE_MS: u64 = 2_000;

/// While the database is gone: the call fails typed and retryable, and every
/// health view says so.
async fn during_the_loss(service: &DataStoreService) {
    let err = service
        .call(
            "put",
            json!({"collection": "cases", "id": "c98", "doc": {"a": 1}}),
            CallContext::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    let report = service.health().await.unwrap();
    assert_eq!(report.state, HealthState::Unhealthy);
    let component = database_component(service.store().store().clone());
    assert_eq!(component.name(), "database");
    assert!(service.store().store().reconnect().await.is_err());
}

/// Once it is back: the heal succeeds and the service answers.
async fn after_the_loss(service: &DataStoreService) {
    service.store().store().reconnect().await.unwrap();
    assert_eq!(service.health().await.unwrap().state, HealthState::Healthy);
    let put = service
        .call(
            "put",
            json!({"collection": "cases", "id": "c1", "doc": {"a": 1}}),
            CallContext::new(),
        )
        .await
        .unwrap();
    assert_eq!(put["version"], 1);
}

async fn ready(ds: &DataStore) -> DataStoreService {
    let service = DataStoreService::new(ds.clone());
    service
        .call(
            "create_collection",
            json!({"name": "cases"}),
            CallContext::new(),
        )
        .await
        .unwrap();
    service
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_a_fault_proxy() {
    let (upstream, _) = postgres_through(None).await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let (_, url) = postgres_through(Some(proxy.addr())).await;
    let place = Place::new(BackendKind::Postgres);
    let ds = place
        .open_with(|c| {
            c.url = url.clone();
            c.acquire_timeout_ms = ACQUIRE_MS;
        })
        .await;
    let service = ready(&ds).await;
    proxy.set_mode(Mode::Refuse);
    during_the_loss(&service).await;
    proxy.set_mode(Mode::Forward);
    after_the_loss(&service).await;
    ds.store().close().await;
    place.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_whose_file_goes_away() {
    let place = Place::new(BackendKind::Sqlite);
    let ds = place.open_with(|c| c.acquire_timeout_ms = ACQUIRE_MS).await;
    let service = ready(&ds).await;
    // Every connection the pool has open is in use elsewhere…
    tokio::time::timeout(PATIENCE, async {
        loop {
            let pool = ds.store().pool_state();
            if pool.idle == pool.size {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
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
    during_the_loss(&service).await;
    std::fs::remove_file(&place.dir).unwrap();
    std::fs::rename(&aside, &place.dir).unwrap();
    drop(held);
    after_the_loss(&service).await;
    ds.store().close().await;
    place.remove().await;
}
