//! Changes on the watch stream and on the bus.

use futures::StreamExt;
use plexus_bus::SubscribeOptions;
use plexus_core::ServiceStatus::{Healthy, Starting, Unhealthy};
use plexus_core::Topic;
use plexus_registry::{DeregisterReason, INSTANCE_HEADER, Lagged, RegistryChange, RegistryConfig};

use crate::support::{next_change, register, registry, registry_with, set_status, within};

#[tokio::test(start_paused = true)]
async fn watchers_get_every_change_in_order() {
    let (registry, _bus) = registry();
    let mut watch = registry.watch();
    register(&registry, "storage", "storage-1").await;
    set_status(&registry, "storage-1", Healthy, Some("ready")).await;
    // The same status and reason again is no change.
    set_status(&registry, "storage-1", Healthy, Some("ready")).await;
    // A heartbeat of a live instance is no change either.
    registry.heartbeat(&"storage-1".into()).await.unwrap();
    register(&registry, "storage", "storage-1").await;
    registry.deregister(&"storage-1".into()).await.unwrap();

    match next_change(&mut watch).await {
        RegistryChange::Registered {
            registration,
            replaced,
        } => {
            assert_eq!(registration.instance().as_str(), "storage-1");
            assert!(!replaced);
        }
        other => panic!("expected Registered, got {other:?}"),
    }
    match next_change(&mut watch).await {
        RegistryChange::StatusChanged {
            instance,
            from,
            to,
            reason,
            ..
        } => {
            assert_eq!(instance.as_str(), "storage-1");
            assert_eq!((from, to), (Starting, Healthy));
            assert_eq!(reason.as_deref(), Some("ready"));
        }
        other => panic!("expected StatusChanged, got {other:?}"),
    }
    match next_change(&mut watch).await {
        RegistryChange::Registered {
            registration,
            replaced,
        } => {
            assert!(replaced);
            assert_eq!(registration.status, Starting);
        }
        other => panic!("expected Registered (replaced), got {other:?}"),
    }
    match next_change(&mut watch).await {
        RegistryChange::Deregistered {
            instance, reason, ..
        } => {
            assert_eq!(instance.as_str(), "storage-1");
            assert_eq!(reason, DeregisterReason::Requested);
        }
        other => panic!("expected Deregistered, got {other:?}"),
    }
    drop(registry);
    assert!(
        within(watch.next()).await.is_none(),
        "the stream ends with the registry"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bus_subscriber_sees_each_change_on_its_topic_with_a_json_payload() {
    let (registry, bus) = registry();
    let mut sub = bus
        .subscribe("plexus.registry.>", SubscribeOptions::new())
        .unwrap();
    register(&registry, "storage", "storage-1").await;
    set_status(&registry, "storage-1", Unhealthy, Some("disk full")).await;
    registry.deregister(&"storage-1".into()).await.unwrap();

    let expected = [
        ("plexus.registry.registered", "registered"),
        ("plexus.registry.status", "status_changed"),
        ("plexus.registry.deregistered", "deregistered"),
    ];
    for (topic, kind) in expected {
        let envelope = within(sub.recv()).await.unwrap();
        assert_eq!(envelope.topic(), &Topic::new(topic).unwrap());
        assert_eq!(envelope.headers().get(INSTANCE_HEADER), Some("storage-1"));
        // In process the change travels typed; across a process it is JSON.
        let change = envelope.payload().get::<RegistryChange>().unwrap();
        assert_eq!(change.instance().as_str(), "storage-1");
        let json: serde_json::Value =
            serde_json::from_slice(&envelope.payload().encode().unwrap()).unwrap();
        assert_eq!(json["change"], kind);
        let decoded: RegistryChange = serde_json::from_value(json).unwrap();
        assert_eq!(&decoded, change);
    }
    assert!(sub.try_recv().is_none());
    let stats = registry.stats();
    assert_eq!((stats.published, stats.publish_failures), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn a_full_bus_subscriber_never_blocks_the_registry_and_is_counted() {
    let (registry, bus) = registry();
    let _slow = bus
        .subscribe("plexus.registry.>", SubscribeOptions::new().capacity(1))
        .unwrap();
    for i in 0..3 {
        register(&registry, "storage", &format!("storage-{i}")).await;
    }
    let stats = registry.stats();
    assert_eq!((stats.published, stats.publish_failures), (1, 2));
    assert_eq!(registry.list().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_slow_watcher_is_told_it_lagged_and_the_registry_does_not_wait() {
    let (registry, _bus) = registry_with(RegistryConfig {
        watch_capacity: 4,
        ..RegistryConfig::default()
    });
    let mut watch = registry.watch();
    for i in 0..10 {
        register(&registry, "storage", &format!("storage-{i}")).await;
    }
    let first = within(watch.next()).await.unwrap();
    assert_eq!(first, Err(Lagged { missed: 6 }));
    // Then the four most recent changes, in order.
    for i in 6..10 {
        let change = within(watch.next()).await.unwrap().unwrap();
        assert_eq!(change.instance().to_string(), format!("storage-{i}"));
    }
}
