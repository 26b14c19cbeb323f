//! Heartbeats, stale detection and deregistration after the grace period, at exact
//! virtual instants.

use std::time::Duration;

use futures::StreamExt;
use plexus_core::ServiceStatus;
use plexus_registry::{
    DeregisterReason, HEARTBEAT_RESUMED_REASON, RegistryChange, RegistryConfig, STALE_REASON,
};
use tokio::time::Instant;

use crate::support::{next_change, register, registry_with, set_status, within};

const SECOND: Duration = Duration::from_secs(1);

/// TTL 10 s, grace 30 s, a sweep every second.
fn config() -> RegistryConfig {
    RegistryConfig {
        heartbeat_ttl: 10 * SECOND,
        deregister_after: 30 * SECOND,
        sweep_interval: SECOND,
        ..RegistryConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_instance_is_stale_after_the_ttl_and_deregistered_after_the_grace() {
    let (registry, _bus) = registry_with(config());
    let start = Instant::now();
    register(&registry, "storage", "storage-1").await;
    set_status(&registry, "storage-1", ServiceStatus::Healthy, None).await;
    let mut watch = registry.watch();
    registry.spawn_sweeper();

    // At 10 s the heartbeat is exactly as old as the TTL, not older: the sweep at
    // 11 s is the first to find it stale.
    let stale = next_change(&mut watch).await;
    assert_eq!(start.elapsed(), 11 * SECOND);
    match stale {
        RegistryChange::Stale {
            instance,
            last_heartbeat,
            at,
            ..
        } => {
            assert_eq!(instance.as_str(), "storage-1");
            assert_eq!(at.as_micros() - last_heartbeat.as_micros(), 11_000_000);
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    match next_change(&mut watch).await {
        RegistryChange::StatusChanged {
            from, to, reason, ..
        } => {
            assert_eq!(
                (from, to),
                (ServiceStatus::Healthy, ServiceStatus::Unhealthy)
            );
            assert_eq!(reason.as_deref(), Some(STALE_REASON));
        }
        other => panic!("expected StatusChanged, got {other:?}"),
    }
    assert_eq!(start.elapsed(), 11 * SECOND);
    let now = registry.get(&"storage-1".into()).unwrap();
    assert_eq!(now.status, ServiceStatus::Unhealthy);
    assert!(registry.routable(&"storage".into()).is_empty());

    // Deregistered at the first sweep where the heartbeat is older than 10 + 30 s.
    match next_change(&mut watch).await {
        RegistryChange::Deregistered { reason, .. } => {
            assert_eq!(reason, DeregisterReason::Stale)
        }
        other => panic!("expected Deregistered, got {other:?}"),
    }
    assert_eq!(start.elapsed(), 41 * SECOND);
    assert!(registry.get(&"storage-1".into()).is_none());
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_an_instance_fresh() {
    let (registry, _bus) = registry_with(config());
    register(&registry, "storage", "storage-1").await;
    registry.spawn_sweeper();
    let mut watch = registry.watch();
    // A heartbeat every 9 s for two minutes: never older than the TTL at a sweep.
    for _ in 0..13 {
        tokio::time::advance(9 * SECOND).await;
        registry.heartbeat(&"storage-1".into()).await.unwrap();
    }
    let report = registry.sweep().await.unwrap();
    assert!(report.marked_stale.is_empty() && report.deregistered.is_empty());
    assert_eq!(
        registry.get(&"storage-1".into()).unwrap().status,
        ServiceStatus::Starting
    );
    // Nothing was published: heartbeats of a live instance are not changes.
    registry.deregister(&"storage-1".into()).await.unwrap();
    assert!(matches!(
        next_change(&mut watch).await,
        RegistryChange::Deregistered { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_in_the_grace_period_restores_the_status_before_stale() {
    let (registry, _bus) = registry_with(config());
    register(&registry, "storage", "storage-1").await;
    set_status(
        &registry,
        "storage-1",
        ServiceStatus::Degraded,
        Some("warm-up"),
    )
    .await;
    tokio::time::advance(11 * SECOND).await;
    let report = registry.sweep().await.unwrap();
    assert_eq!(report.marked_stale, vec!["storage-1".into()]);
    let stale = registry.get(&"storage-1".into()).unwrap();
    assert_eq!(stale.status, ServiceStatus::Unhealthy);
    assert_eq!(stale.stale.unwrap().previous, ServiceStatus::Degraded);
    // A second sweep does not mark it again.
    assert!(registry.sweep().await.unwrap().marked_stale.is_empty());

    let mut watch = registry.watch();
    tokio::time::advance(20 * SECOND).await;
    let back = registry.heartbeat(&"storage-1".into()).await.unwrap();
    assert_eq!(back.status, ServiceStatus::Degraded);
    assert_eq!(back.reason.as_deref(), Some(HEARTBEAT_RESUMED_REASON));
    assert_eq!(back.stale, None);
    match next_change(&mut watch).await {
        RegistryChange::StatusChanged { from, to, .. } => {
            assert_eq!(
                (from, to),
                (ServiceStatus::Unhealthy, ServiceStatus::Degraded)
            )
        }
        other => panic!("expected StatusChanged, got {other:?}"),
    }
    // Fresh again: the next sweeps leave it alone.
    tokio::time::advance(10 * SECOND).await;
    assert_eq!(registry.sweep().await.unwrap(), Default::default());
}

#[tokio::test(start_paused = true)]
async fn a_stopped_instance_is_not_marked_stale_but_is_deregistered_after_the_grace() {
    let (registry, _bus) = registry_with(config());
    register(&registry, "storage", "storage-1").await;
    set_status(&registry, "storage-1", ServiceStatus::Stopped, None).await;
    tokio::time::advance(40 * SECOND).await;
    assert_eq!(registry.sweep().await.unwrap(), Default::default());
    assert_eq!(
        registry.get(&"storage-1".into()).unwrap().status,
        ServiceStatus::Stopped
    );
    tokio::time::advance(SECOND).await;
    let report = registry.sweep().await.unwrap();
    assert_eq!(report.deregistered, vec!["storage-1".into()]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_sweeper() {
    let (registry, _bus) = registry_with(config());
    register(&registry, "storage", "storage-1").await;
    let mut watch = registry.watch();
    registry.spawn_sweeper();
    assert!(registry.sweeper_running());
    registry.shutdown();
    assert!(!registry.sweeper_running());
    // A minute of virtual time passes with no change: no sweep ran.
    let quiet = tokio::time::timeout(60 * SECOND, watch.next()).await;
    assert!(quiet.is_err(), "a change arrived after shutdown: {quiet:?}");
    assert_eq!(
        registry.get(&"storage-1".into()).unwrap().status,
        ServiceStatus::Starting
    );
    // Started again, its first sweep finds the instance silent past TTL and grace.
    registry.spawn_sweeper();
    assert!(matches!(
        next_change(&mut watch).await,
        RegistryChange::Deregistered {
            reason: DeregisterReason::Stale,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_does_not_keep_a_dropped_registry_alive() {
    let (registry, _bus) = registry_with(config());
    registry.spawn_sweeper();
    let mut watch = registry.watch();
    drop(registry);
    // The change stream ends only when the registry itself is gone.
    assert!(within(watch.next()).await.is_none());
}

/// Two nodes' registries sharing one backend (as a cluster shares NATS KV): node
/// `b`'s sweeper sees node `a`'s instance late and marks it stale, then removes it.
/// Node `a` registered it, so neither mark applies on `a` (it keeps routing to its
/// own instance), `a`'s next heartbeat puts the shared entry right, and a removal
/// by `b` is written back.
#[tokio::test(start_paused = true)]
async fn another_nodes_stale_mark_does_not_override_an_instance_registered_here() {
    let shared: std::sync::Arc<dyn plexus_registry::RegistryBackend> =
        std::sync::Arc::new(plexus_registry::MemoryBackend::new());
    let open = || async {
        plexus_registry::Registry::with_backend(config(), plexus_bus::Bus::new(), shared.clone())
            .await
            .unwrap()
    };
    let a = open().await;
    register(&a, "plexus", "plexus-1@a").await;
    set_status(&a, "plexus-1@a", ServiceStatus::Healthy, None).await;
    let b = open().await;
    let id: plexus_core::InstanceId = "plexus-1@a".into();

    // Node b's sweeper finds the heartbeat older than the TTL: it marks the shared
    // entry stale, and node a's watch hands that entry to node a.
    tokio::time::advance(11 * SECOND).await;
    assert_eq!(
        b.sweep().await.unwrap().marked_stale,
        std::slice::from_ref(&id)
    );
    let marked = shared.get(&id).await.unwrap().unwrap();
    assert!(marked.stale.is_some() && marked.status == ServiceStatus::Unhealthy);
    a.apply_remote(&id, Some(marked)).await;
    assert_eq!(
        a.routable(&"plexus".into()).len(),
        1,
        "a keeps its own instance"
    );
    assert_eq!(a.get(&id).unwrap().status, ServiceStatus::Healthy);

    // Node a's next heartbeat puts its status back in the shared entry.
    a.heartbeat(&id).await.unwrap();
    let repaired = shared.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (repaired.status, repaired.stale),
        (ServiceStatus::Healthy, None)
    );

    // Node b removes it after the grace (a's heartbeats late again): a writes it back.
    tokio::time::advance(45 * SECOND).await;
    assert_eq!(
        b.sweep().await.unwrap().deregistered,
        std::slice::from_ref(&id)
    );
    assert!(shared.get(&id).await.unwrap().is_none());
    a.apply_remote(&id, None).await;
    assert!(shared.get(&id).await.unwrap().is_some(), "written back");
    assert_eq!(a.routable(&"plexus".into()).len(), 1);

    // An instance a learnt from elsewhere still takes other nodes' marks.
    let mut other = plexus_registry::Registration::new(
        crate::support::descriptor("cache", "cache-1@b"),
        a.now(),
    );
    a.apply_remote(&"cache-1@b".into(), Some(other.clone()))
        .await;
    other.status = ServiceStatus::Unhealthy;
    a.apply_remote(&"cache-1@b".into(), Some(other)).await;
    assert_eq!(
        a.get(&"cache-1@b".into()).unwrap().status,
        ServiceStatus::Unhealthy
    );
}

#[tokio::test(start_paused = true)]
async fn the_generation_grows_with_every_change_but_not_with_heartbeats() {
    let (registry, _bus) = registry_with(config());
    let first = registry.generation();
    register(&registry, "storage", "storage-1").await;
    let registered = registry.generation();
    assert!(registered > first);
    registry.heartbeat(&"storage-1".into()).await.unwrap();
    assert_eq!(
        registry.generation(),
        registered,
        "a heartbeat changes nothing"
    );
    set_status(&registry, "storage-1", ServiceStatus::Healthy, None).await;
    let healthy = registry.generation();
    assert!(healthy > registered);
    registry.deregister(&"storage-1".into()).await.unwrap();
    assert!(registry.generation() > healthy);
}

/// Two nodes on one backend both sweep a dead third node's instances: the one
/// that comes second finds one already removed and still marks the rest stale in
/// the same sweep (it used to stop at the first with "is not registered").
#[tokio::test(start_paused = true)]
async fn a_sweep_goes_on_past_an_instance_another_node_removed_first() {
    let shared: std::sync::Arc<dyn plexus_registry::RegistryBackend> =
        std::sync::Arc::new(plexus_registry::MemoryBackend::new());
    let b =
        plexus_registry::Registry::with_backend(config(), plexus_bus::Bus::new(), shared.clone())
            .await
            .unwrap();
    let ids: Vec<plexus_core::InstanceId> = ["cache-1@c", "lock-1@c", "session-1@c"]
        .map(Into::into)
        .into();
    for id in &ids {
        let registration = plexus_registry::Registration::new(
            crate::support::descriptor("svc", id.as_str()),
            b.now(),
        );
        shared.put(registration.clone()).await.unwrap();
        b.apply_remote(id, Some(registration)).await;
    }
    tokio::time::advance(11 * SECOND).await;
    // Another node removed the first one; b has not heard yet.
    shared.remove(&ids[0]).await.unwrap();
    let report = b.sweep().await.unwrap();
    assert_eq!(report.marked_stale, ids[1..]);
    for id in &ids[1..] {
        let entry = shared.get(id).await.unwrap().unwrap();
        assert!(entry.stale.is_some(), "{id}");
    }
}
