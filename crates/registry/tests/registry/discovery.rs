//! Registering, discovering and the lock-free read path.

use std::sync::Arc;
use std::time::Duration;

use plexus_bus::Bus;
use plexus_core::{InstanceId, MethodDescriptor, ServiceDescriptor, ServiceStatus};
use plexus_registry::{
    MemoryBackend, Query, Registration, Registry, RegistryBackend, RegistryConfig, RegistryError,
};

use crate::support::{descriptor, register, registry, registry_with, set_status};

fn ids(registrations: &[Registration]) -> Vec<String> {
    registrations
        .iter()
        .map(|r| r.instance().to_string())
        .collect()
}

/// storage-1, storage-2 (persistence, `get` + `put`, tag core), cache-1 (memory,
/// `get`, tag edge), search-1 (index, `query`, tags core + edge).
async fn populated() -> Registry {
    let (registry, _bus) = registry();
    let storage = |instance: &str| {
        ServiceDescriptor::new("storage", "persistence")
            .with_instance(instance)
            .with_method(MethodDescriptor::new("get"))
            .with_method(MethodDescriptor::new("put"))
            .with_tag("core")
    };
    registry.register(storage("storage-1")).await.unwrap();
    registry.register(storage("storage-2")).await.unwrap();
    let cache = ServiceDescriptor::new("cache", "memory")
        .with_instance("cache-1")
        .with_method(MethodDescriptor::new("get"))
        .with_tag("edge");
    registry.register(cache).await.unwrap();
    let search = ServiceDescriptor::new("search", "index")
        .with_instance("search-1")
        .with_method(MethodDescriptor::new("query"))
        .with_tag("core")
        .with_tag("edge");
    registry.register(search).await.unwrap();
    set_status(&registry, "storage-1", ServiceStatus::Healthy, None).await;
    set_status(
        &registry,
        "cache-1",
        ServiceStatus::Degraded,
        Some("warm-up"),
    )
    .await;
    registry
}

#[tokio::test(start_paused = true)]
async fn registering_starts_an_instance_in_starting_with_its_descriptor() {
    let (registry, _bus) = registry();
    let d = descriptor("storage", "storage-1").with_version("1.2.0");
    let reg = registry.register(d.clone()).await.unwrap();
    assert_eq!(reg.status, ServiceStatus::Starting);
    assert_eq!(*reg.descriptor, d);
    assert_eq!(reg.registered_at, reg.last_heartbeat);
    assert_eq!(registry.get(&"storage-1".into()), Some(reg));
    assert_eq!(registry.get(&"storage-2".into()), None);
}

#[tokio::test(start_paused = true)]
async fn discovery_by_each_key_and_combined() {
    let registry = populated().await;
    let find = |q: Query| ids(&registry.discover(&q));
    assert_eq!(
        find(Query::new()),
        ["cache-1", "search-1", "storage-1", "storage-2"]
    );
    assert_eq!(
        find(Query::new().name("storage")),
        ["storage-1", "storage-2"]
    );
    assert_eq!(find(Query::new().service_type("memory")), ["cache-1"]);
    assert_eq!(
        find(Query::new().method("get")),
        ["cache-1", "storage-1", "storage-2"]
    );
    assert_eq!(
        find(Query::new().method("get").method("put")),
        ["storage-1", "storage-2"]
    );
    assert_eq!(find(Query::new().tag("edge")), ["cache-1", "search-1"]);
    assert_eq!(find(Query::new().tag("edge").tag("core")), ["search-1"]);
    assert_eq!(
        find(Query::new().status(ServiceStatus::Starting)),
        ["search-1", "storage-2"]
    );
    assert_eq!(
        find(Query::new().accepting_calls()),
        ["cache-1", "storage-1"]
    );
    assert_eq!(
        find(Query::new().method("get").tag("core").accepting_calls()),
        ["storage-1"]
    );
    assert_eq!(
        find(Query::new().name("storage").service_type("memory")),
        Vec::<String>::new()
    );
    assert_eq!(find(Query::new().method("delete")), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn the_read_path_serves_instances_and_routable_ones_from_the_latest_snapshot() {
    let registry = populated().await;
    let storage = "storage".into();
    assert_eq!(
        ids(&registry.instances(&storage)),
        ["storage-1", "storage-2"]
    );
    assert_eq!(ids(&registry.routable(&storage)), ["storage-1"]);
    assert!(registry.instances(&"nothing".into()).is_empty());

    let before = registry.routable(&storage);
    set_status(&registry, "storage-2", ServiceStatus::Healthy, None).await;
    assert_eq!(
        ids(&registry.routable(&storage)),
        ["storage-1", "storage-2"]
    );
    // A slice handed out earlier is an immutable snapshot.
    assert_eq!(ids(&before), ["storage-1"]);
    // Between changes, readers share one slice.
    assert!(Arc::ptr_eq(
        &registry.routable(&storage),
        &registry.routable(&storage)
    ));

    set_status(&registry, "storage-1", ServiceStatus::ShuttingDown, None).await;
    registry.deregister(&"storage-2".into()).await.unwrap();
    assert!(registry.routable(&storage).is_empty());
    assert_eq!(ids(&registry.instances(&storage)), ["storage-1"]);
}

#[tokio::test(start_paused = true)]
async fn counts_by_status_cover_every_status() {
    let registry = populated().await;
    let counts = registry.counts();
    assert_eq!(counts.len(), ServiceStatus::ALL.len());
    assert_eq!(counts[&ServiceStatus::Starting], 2);
    assert_eq!(counts[&ServiceStatus::Healthy], 1);
    assert_eq!(counts[&ServiceStatus::Degraded], 1);
    assert_eq!(counts[&ServiceStatus::Stopped], 0);
    let stats = registry.stats();
    assert_eq!(stats.instances, 4);
    assert_eq!(stats.by_status, counts);
    let snapshot = registry.snapshot();
    assert_eq!(ids(&snapshot.instances), ids(&registry.list()));
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["by_status"]["degraded"], 1);
    assert_eq!(json["instances"][0]["descriptor"]["name"], "cache");
    assert_eq!(json["instances"][0]["reason"], "warm-up");
}

#[tokio::test(start_paused = true)]
async fn an_instance_id_of_another_service_is_refused_and_the_same_service_replaces() {
    let (registry, _bus) = registry();
    register(&registry, "storage", "node-a-1").await;
    set_status(&registry, "node-a-1", ServiceStatus::Healthy, None).await;

    let err = registry
        .register(descriptor("cache", "node-a-1"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::DuplicateInstance {
            instance: "node-a-1".into(),
            existing: "storage".into(),
            requested: "cache".into(),
        }
    );
    assert!(err.to_string().contains("`storage`"), "{err}");
    assert_eq!(
        registry.get(&"node-a-1".into()).unwrap().status,
        ServiceStatus::Healthy
    );

    tokio::time::advance(Duration::from_secs(5)).await;
    let again = registry
        .register(descriptor("storage", "node-a-1").with_version("2.0.0"))
        .await
        .unwrap();
    assert_eq!(again.status, ServiceStatus::Starting);
    assert_eq!(again.descriptor.version, "2.0.0");
    assert_eq!(registry.list().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_descriptor_is_refused_naming_the_field() {
    let (registry, _bus) = registry();
    let bad = descriptor("storage", "storage-1")
        .with_method(MethodDescriptor::new("put").with_params(serde_json::json!(42)));
    let err = registry.register(bad).await.unwrap_err();
    match &err {
        RegistryError::InvalidDescriptor(e) => assert_eq!(e.field, "methods[1].params"),
        other => panic!("expected InvalidDescriptor, got {other:?}"),
    }
    assert!(err.to_string().contains("methods[1].params"), "{err}");
    let dotted = ServiceDescriptor::new("sto.rage", "p");
    match registry.register(dotted).await.unwrap_err() {
        RegistryError::InvalidDescriptor(e) => assert_eq!(e.field, "name"),
        other => panic!("expected InvalidDescriptor, got {other:?}"),
    }
    assert!(registry.list().is_empty());
}

#[tokio::test(start_paused = true)]
async fn unknown_instances_are_not_found() {
    let (registry, _bus) = registry();
    let ghost: InstanceId = "ghost-1".into();
    let not_found = RegistryError::NotFound {
        instance: ghost.clone(),
    };
    assert_eq!(registry.deregister(&ghost).await.unwrap_err(), not_found);
    assert_eq!(registry.heartbeat(&ghost).await.unwrap_err(), not_found);
    assert_eq!(
        registry
            .set_status(&ghost, ServiceStatus::Healthy, None)
            .await
            .unwrap_err(),
        not_found
    );
}

#[tokio::test(start_paused = true)]
async fn the_registry_refuses_past_max_instances_but_re_registration_fits() {
    let (registry, _bus) = registry_with(RegistryConfig {
        max_instances: 2,
        ..RegistryConfig::default()
    });
    register(&registry, "a", "a-1").await;
    register(&registry, "a", "a-2").await;
    assert_eq!(
        registry.register(descriptor("a", "a-3")).await.unwrap_err(),
        RegistryError::Full { limit: 2 }
    );
    register(&registry, "a", "a-2").await;
    registry.deregister(&"a-1".into()).await.unwrap();
    register(&registry, "a", "a-3").await;
}

#[tokio::test]
async fn configuration_errors_name_the_field() {
    let bad = [
        (
            RegistryConfig {
                heartbeat_ttl: Duration::ZERO,
                ..RegistryConfig::default()
            },
            "heartbeat_ttl",
        ),
        (
            RegistryConfig {
                sweep_interval: Duration::ZERO,
                ..RegistryConfig::default()
            },
            "sweep_interval",
        ),
        (
            RegistryConfig {
                watch_capacity: 0,
                ..RegistryConfig::default()
            },
            "watch_capacity",
        ),
        (
            RegistryConfig {
                max_instances: 0,
                ..RegistryConfig::default()
            },
            "max_instances",
        ),
    ];
    for (config, field) in bad {
        match Registry::new(config, Bus::new()).unwrap_err() {
            RegistryError::InvalidConfig { field: f, .. } => assert_eq!(f, field),
            other => panic!("expected InvalidConfig for {field}, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_registry_on_a_backend_starts_from_what_it_holds() {
    let backend = Arc::new(MemoryBackend::new());
    let stored = Registration::new(
        descriptor("storage", "storage-9"),
        plexus_core::Timestamp::now(),
    );
    backend.put(stored.clone()).await.unwrap();
    let registry = Registry::with_backend(RegistryConfig::default(), Bus::new(), backend.clone())
        .await
        .unwrap();
    assert_eq!(registry.get(&"storage-9".into()), Some(stored));
    assert_eq!(registry.instances(&"storage".into()).len(), 1);
    registry.deregister(&"storage-9".into()).await.unwrap();
    assert_eq!(backend.list().await.unwrap(), vec![]);
}

#[tokio::test(start_paused = true)]
async fn a_service_slice_is_replaced_only_when_that_service_changes() {
    let registry = populated().await;
    let storage = "storage".into();
    let cache = "cache".into();
    let (storage_before, cache_before) = (registry.instances(&storage), registry.instances(&cache));

    // A heartbeat is not a change of the slice (the call path resyncs on a new one).
    tokio::time::advance(Duration::from_secs(3)).await;
    registry.heartbeat(&"storage-1".into()).await.unwrap();
    assert!(Arc::ptr_eq(&storage_before, &registry.instances(&storage)));
    let beat = registry.get(&"storage-1".into()).unwrap().last_heartbeat;
    assert_eq!(
        beat.as_micros() - storage_before[0].last_heartbeat.as_micros(),
        3_000_000
    );

    // A change to the cache replaces the cache's slice only.
    set_status(&registry, "cache-1", ServiceStatus::Healthy, None).await;
    assert!(Arc::ptr_eq(&storage_before, &registry.instances(&storage)));
    assert!(!Arc::ptr_eq(&cache_before, &registry.instances(&cache)));
    assert_eq!(registry.instances(&cache)[0].status, ServiceStatus::Healthy);

    // Deregistering the last instance removes the service.
    registry.deregister(&"cache-1".into()).await.unwrap();
    assert!(registry.instances(&cache).is_empty());
    assert!(Arc::ptr_eq(&storage_before, &registry.instances(&storage)));
}
