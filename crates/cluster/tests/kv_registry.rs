//! The registry's backend conformance suite on a JetStream KV bucket of the shared
//! NATS server (`PLEXUS_TEST_NATS_URL`), one fresh bucket per test.
#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use plexus_cluster::{KvRegistry, KvRegistryConfig, instance_key, instance_of_key};
use plexus_core::{InstanceId, ServiceDescriptor, Timestamp};
use plexus_registry::{Registration, RegistryBackend};

const PREFIX: &str = "plexus_test_reg_";

fn nats_url() -> String {
    std::env::var("PLEXUS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh bucket named after the time, after removing test buckets older than an
/// hour (left by runs that ended early), so the shared server does not fill up.
async fn fresh() -> KvRegistry {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let mut names = jetstream.stream_names();
    let mut old = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        let born = name
            .strip_prefix("KV_")
            .and_then(|b| b.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if born.is_some_and(|b| b + 3600 < now_secs()) {
            old.push(name);
        }
    }
    for name in old {
        let _ = jetstream.delete_stream(&name).await;
    }
    let config = KvRegistryConfig {
        bucket: format!("{PREFIX}{}_{}", now_secs(), uuid::Uuid::now_v7().simple()),
        ..KvRegistryConfig::default()
    };
    KvRegistry::open(&jetstream, &config).await.unwrap()
}

plexus_registry::backend_conformance!(fresh);

/// Any instance id is a valid key, and two ids never share one.
#[test]
fn every_instance_id_has_its_own_valid_key() {
    let ids = [
        "storage-1",
        "a.b",
        "a=2Eb",
        "x/y z",
        "ünï",
        ".lead",
        "trail.",
    ];
    let keys: Vec<String> = ids
        .iter()
        .map(|i| instance_key(&InstanceId::new(*i)))
        .collect();
    for key in &keys {
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)),
            "{key}"
        );
    }
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{keys:?}");
    for (id, key) in ids.iter().zip(&keys) {
        assert_eq!(instance_of_key(key), Some(InstanceId::new(*id)));
    }
    assert_eq!(instance_of_key("bad=Z"), None);
}

/// Two nodes on one bucket see each other's instances, and a write that lost a
/// race is refused by the revision check rather than lost.
#[tokio::test]
async fn two_nodes_share_one_bucket_and_concurrent_heartbeats_all_land() {
    let first = fresh().await;
    let client = async_nats::connect(nats_url()).await.unwrap();
    let second = KvRegistry::open(
        &async_nats::jetstream::new(client),
        &KvRegistryConfig {
            bucket: first.store().name.clone(),
            ..KvRegistryConfig::default()
        },
    )
    .await
    .unwrap();
    let descriptor = ServiceDescriptor::new("storage", "test").with_instance("storage.node-a");
    first
        .put(Registration::new(descriptor, Timestamp::from_micros(1)))
        .await
        .unwrap();
    let seen = second.list().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].instance().as_str(), "storage.node-a");

    // Heartbeats from both sides at once: every one is applied in some order, so the
    // last stored is one of them and none failed.
    let id = InstanceId::new("storage.node-a");
    let mut beats = Vec::new();
    for n in 0..20u64 {
        let backend = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let id = id.clone();
        beats.push(tokio::spawn(async move {
            backend
                .heartbeat(&id, Timestamp::from_micros(100 + n))
                .await
        }));
    }
    for beat in beats {
        beat.await.unwrap().unwrap();
    }
    let stored = first.get(&id).await.unwrap().unwrap();
    assert!((100..120).contains(&stored.last_heartbeat.as_micros()));
    assert_eq!(second.remove(&id).await.unwrap().unwrap().instance(), &id);
    assert_eq!(first.get(&id).await.unwrap(), None);
}

/// Two nodes' registries on one bucket: what one registers, changes and removes
/// shows in the other's snapshot and watch, as a local change would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_registry_sees_another_nodes_instances_come_change_and_go() {
    use plexus_bus::Bus;
    use plexus_core::ServiceStatus;
    use plexus_registry::{DeregisterReason, Registry, RegistryChange, RegistryConfig};
    use std::sync::Arc;

    let shared = fresh().await;
    let a = Registry::with_backend(
        RegistryConfig::default(),
        Bus::new(),
        Arc::new(shared.clone()),
    )
    .await
    .unwrap();
    let b = Registry::with_backend(
        RegistryConfig::default(),
        Bus::new(),
        Arc::new(shared.clone()),
    )
    .await
    .unwrap();
    let mut changes = b.watch();
    let following = shared.follow(b.clone());

    let descriptor = ServiceDescriptor::new("storage", "test").with_instance("storage-on-a");
    let id = InstanceId::new("storage-on-a");
    a.register(descriptor).await.unwrap();
    match next_change(&mut changes).await {
        RegistryChange::Registered { registration, .. } => {
            assert_eq!(registration.instance(), &id);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.instances_named("storage").len(), 1);

    a.set_status(&id, ServiceStatus::Healthy, None)
        .await
        .unwrap();
    match next_change(&mut changes).await {
        RegistryChange::StatusChanged { to, .. } => assert_eq!(to, ServiceStatus::Healthy),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.get(&id).unwrap().status, ServiceStatus::Healthy);

    // A heartbeat moves the time only: no change event, the snapshot follows.
    let beat = a.heartbeat(&id).await.unwrap();
    a.deregister(&id).await.unwrap();
    match next_change(&mut changes).await {
        RegistryChange::Deregistered { reason, .. } => {
            assert_eq!(reason, DeregisterReason::Elsewhere);
        }
        other => panic!("{other:?}"),
    }
    assert!(b.get(&id).is_none());
    assert!(beat.last_heartbeat.as_micros() > 0);
    following.abort();
}

async fn next_change(changes: &mut plexus_registry::Watch) -> plexus_registry::RegistryChange {
    tokio::time::timeout(std::time::Duration::from_secs(10), changes.next())
        .await
        .expect("a change within 10 s")
        .unwrap()
        .unwrap()
}
