//! The suite every [`RegistryBackend`] must pass (feature `test-util`).
//!
//! Each function takes a fresh, empty backend and panics on a violation. Run them all
//! as `#[tokio::test]`s with [`backend_conformance!`](crate::backend_conformance),
//! giving it an async closure that builds a fresh backend:
//!
//! ```no_run
//! plexus_registry::backend_conformance!(|| async { plexus_registry::MemoryBackend::new() });
//! ```
//!
//! The functions panic (they are tests): `unwrap_used` is allowed here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use plexus_core::{InstanceId, ServiceDescriptor, ServiceStatus, Timestamp};

use crate::{Registration, RegistryBackend, RegistryError, StaleMark, StatusUpdate};

fn registration(service: &str, instance: &str, at: u64) -> Registration {
    let descriptor = ServiceDescriptor::new(service, "test").with_instance(instance);
    Registration::new(descriptor, Timestamp::from_micros(at))
}

fn id(instance: &str) -> InstanceId {
    InstanceId::new(instance)
}

/// A new instance is stored, readable and listed; putting it reports nothing replaced.
pub async fn put_then_get<B: RegistryBackend>(backend: B) {
    let reg = registration("storage", "storage-1", 10);
    assert_eq!(backend.put(reg.clone()).await.unwrap(), None);
    assert_eq!(
        backend.get(&id("storage-1")).await.unwrap(),
        Some(reg.clone())
    );
    assert_eq!(backend.list().await.unwrap(), vec![reg]);
    assert_eq!(backend.get(&id("storage-2")).await.unwrap(), None);
}

/// Putting an instance of the same service again replaces it and returns the old one.
pub async fn put_replaces_same_service<B: RegistryBackend>(backend: B) {
    let first = registration("storage", "storage-1", 10);
    let second = Registration {
        descriptor: Arc::new(first.descriptor.as_ref().clone().with_version("2.0.0")),
        ..registration("storage", "storage-1", 20)
    };
    backend.put(first.clone()).await.unwrap();
    assert_eq!(backend.put(second.clone()).await.unwrap(), Some(first));
    assert_eq!(backend.get(&id("storage-1")).await.unwrap(), Some(second));
    assert_eq!(backend.list().await.unwrap().len(), 1);
}

/// An instance id held by another service is refused, naming both, and nothing changes.
pub async fn put_refuses_instance_of_another_service<B: RegistryBackend>(backend: B) {
    let held = registration("storage", "shared-1", 10);
    backend.put(held.clone()).await.unwrap();
    let err = backend
        .put(registration("cache", "shared-1", 20))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::DuplicateInstance {
            instance: id("shared-1"),
            existing: "storage".into(),
            requested: "cache".into(),
        }
    );
    assert_eq!(backend.get(&id("shared-1")).await.unwrap(), Some(held));
}

/// Removing returns what was stored once, then nothing.
pub async fn remove_returns_the_registration_once<B: RegistryBackend>(backend: B) {
    let reg = registration("storage", "storage-1", 10);
    backend.put(reg.clone()).await.unwrap();
    backend
        .put(registration("storage", "storage-2", 10))
        .await
        .unwrap();
    assert_eq!(backend.remove(&id("storage-1")).await.unwrap(), Some(reg));
    assert_eq!(backend.remove(&id("storage-1")).await.unwrap(), None);
    assert_eq!(backend.get(&id("storage-1")).await.unwrap(), None);
    let left: Vec<_> = backend.list().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].instance().as_str(), "storage-2");
}

/// Listing is sorted by instance id whatever the order of puts.
pub async fn list_is_sorted_by_instance<B: RegistryBackend>(backend: B) {
    for instance in ["c-2", "a-1", "b-9", "a-0"] {
        backend.put(registration("svc", instance, 1)).await.unwrap();
    }
    let ids: Vec<String> = backend
        .list()
        .await
        .unwrap()
        .iter()
        .map(|r| r.instance().to_string())
        .collect();
    assert_eq!(ids, ["a-0", "a-1", "b-9", "c-2"]);
}

/// A status update returns the status before and the registration after; the
/// status time moves only when the status changes.
pub async fn update_status_reports_previous_and_moves_since<B: RegistryBackend>(backend: B) {
    backend
        .put(registration("storage", "storage-1", 10))
        .await
        .unwrap();
    let healthy = StatusUpdate {
        status: ServiceStatus::Healthy,
        reason: Some("ready".into()),
        at: Timestamp::from_micros(50),
        stale: None,
    };
    let updated = backend
        .update_status(&id("storage-1"), healthy)
        .await
        .unwrap();
    assert_eq!(updated.previous, ServiceStatus::Starting);
    assert_eq!(updated.registration.status, ServiceStatus::Healthy);
    assert_eq!(updated.registration.reason.as_deref(), Some("ready"));
    assert_eq!(
        updated.registration.status_since,
        Timestamp::from_micros(50)
    );

    let same_status = StatusUpdate {
        status: ServiceStatus::Healthy,
        reason: Some("still ready".into()),
        at: Timestamp::from_micros(90),
        stale: None,
    };
    let updated = backend
        .update_status(&id("storage-1"), same_status)
        .await
        .unwrap();
    assert_eq!(updated.previous, ServiceStatus::Healthy);
    assert_eq!(
        updated.registration.status_since,
        Timestamp::from_micros(50)
    );
    assert_eq!(updated.registration.reason.as_deref(), Some("still ready"));
    let stored = backend.get(&id("storage-1")).await.unwrap().unwrap();
    assert_eq!(stored, updated.registration);
}

/// A stale mark is stored with the status and cleared by the next update.
pub async fn update_status_stores_and_clears_stale_mark<B: RegistryBackend>(backend: B) {
    backend
        .put(registration("storage", "storage-1", 10))
        .await
        .unwrap();
    let mark = StaleMark {
        since: Timestamp::from_micros(70),
        previous: ServiceStatus::Starting,
    };
    let stale = StatusUpdate {
        status: ServiceStatus::Unhealthy,
        reason: Some(crate::STALE_REASON.into()),
        at: Timestamp::from_micros(70),
        stale: Some(mark),
    };
    backend
        .update_status(&id("storage-1"), stale)
        .await
        .unwrap();
    let stored = backend.get(&id("storage-1")).await.unwrap().unwrap();
    assert_eq!(stored.stale, Some(mark));
    let revived = StatusUpdate {
        status: ServiceStatus::Starting,
        reason: None,
        at: Timestamp::from_micros(80),
        stale: None,
    };
    let updated = backend
        .update_status(&id("storage-1"), revived)
        .await
        .unwrap();
    assert_eq!(updated.previous, ServiceStatus::Unhealthy);
    assert_eq!(updated.registration.stale, None);
    assert_eq!(updated.registration.reason, None);
}

/// Status updates and heartbeats of an unknown instance fail with `NotFound`.
pub async fn unknown_instance_is_not_found<B: RegistryBackend>(backend: B) {
    let update = StatusUpdate {
        status: ServiceStatus::Healthy,
        reason: None,
        at: Timestamp::from_micros(1),
        stale: None,
    };
    let not_found = RegistryError::NotFound {
        instance: id("ghost-1"),
    };
    assert_eq!(
        backend
            .update_status(&id("ghost-1"), update)
            .await
            .unwrap_err(),
        not_found
    );
    assert_eq!(
        backend
            .heartbeat(&id("ghost-1"), Timestamp::from_micros(1))
            .await
            .unwrap_err(),
        not_found
    );
    assert_eq!(backend.list().await.unwrap(), vec![]);
}

/// A heartbeat moves only `last_heartbeat`.
pub async fn heartbeat_moves_only_last_heartbeat<B: RegistryBackend>(backend: B) {
    let reg = registration("storage", "storage-1", 10);
    backend.put(reg.clone()).await.unwrap();
    let beat = backend
        .heartbeat(&id("storage-1"), Timestamp::from_micros(500))
        .await
        .unwrap();
    assert_eq!(beat.last_heartbeat, Timestamp::from_micros(500));
    assert_eq!(
        beat,
        Registration {
            last_heartbeat: Timestamp::from_micros(500),
            ..reg
        }
    );
    assert_eq!(backend.get(&id("storage-1")).await.unwrap(), Some(beat));
}

/// Puts from many tasks at once all land, each exactly once.
pub async fn concurrent_puts_all_land<B: RegistryBackend>(backend: B) {
    let backend = Arc::new(backend);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let backend = Arc::clone(&backend);
            tokio::spawn(async move {
                backend
                    .put(registration("svc", &format!("svc-{i:02}"), i))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let ids: BTreeSet<String> = backend
        .list()
        .await
        .unwrap()
        .iter()
        .map(|r| r.instance().to_string())
        .collect();
    let expected: BTreeSet<String> = (0..64).map(|i| format!("svc-{i:02}")).collect();
    assert_eq!(ids, expected);
}

/// Expands to one `#[tokio::test]` per conformance function, each given a fresh
/// backend from `$make`, an async closure (`|| async { MyBackend::connect().await }`).
#[macro_export]
macro_rules! backend_conformance {
    ($make:expr) => {
        $crate::backend_conformance!(@tests $make;
            put_then_get,
            put_replaces_same_service,
            put_refuses_instance_of_another_service,
            remove_returns_the_registration_once,
            list_is_sorted_by_instance,
            update_status_reports_previous_and_moves_since,
            update_status_stores_and_clears_stale_mark,
            unknown_instance_is_not_found,
            heartbeat_moves_only_last_heartbeat,
            concurrent_puts_all_land,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let backend = ($make)().await;
                $crate::conformance::$name(backend).await;
            }
        )*
    };
}
