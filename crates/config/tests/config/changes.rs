//! Changes: a valid change becomes a version and is announced on the bus, locally
//! and to the section; an invalid one is refused naming the field and changes
//! nothing.

use std::sync::Arc;

use plexus_bus::Bus;
use plexus_config::{
    ConfigChanged, ConfigError, ConfigEvent, ConfigOptions, ConfigRejected, ConfigStore,
};
use serde_json::json;
use tokio::sync::broadcast::error::TryRecvError;

use crate::support::{
    BREAKER, Breaker, FAILURE_RATE, breaker_store, config_events, invalid, next_event, next_on_bus,
    node_toml, store_from, within,
};

#[tokio::test]
async fn a_valid_change_is_a_new_version_announced_everywhere() {
    let bus = Bus::new();
    let mut on_bus = config_events(&bus);
    let (store, mut section) = breaker_store(ConfigOptions::new().with_bus(bus.clone())).await;
    let mut local = store.events();

    let version = store.set(FAILURE_RATE, json!(0.3), "alice").await.unwrap();
    assert_eq!(version.version, 2);
    assert_eq!(version.changed, [FAILURE_RATE]);
    assert_eq!(version.author, "alice");
    assert_eq!(version.reason, format!("set {FAILURE_RATE}"));
    assert_eq!(store.current_version(), 2);
    assert_eq!(store.get(FAILURE_RATE).unwrap(), Some(json!(0.3)));

    // The section's subscriber sees the new value without asking again.
    let seen = within(section.changed()).await.unwrap();
    assert_eq!(seen.failure_rate, 0.3);
    assert_eq!(section.current().failure_rate, 0.3);

    // A real bus subscriber gets it as JSON…
    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.changed");
    assert_eq!(
        payload,
        json!({"version": 2, "author": "alice", "reason": format!("set {FAILURE_RATE}"), "paths": [FAILURE_RATE]})
    );
    // …and the local stream as a typed event.
    assert_eq!(
        next_event(&mut local).await,
        ConfigEvent::Changed(ConfigChanged {
            version: 2,
            author: "alice".into(),
            reason: format!("set {FAILURE_RATE}"),
            paths: vec![FAILURE_RATE.into()],
        })
    );
    let versions: Vec<u64> = store.history().iter().map(|v| v.version).collect();
    assert_eq!(versions, [1, 2]);
}

#[tokio::test]
async fn an_invalid_change_is_refused_naming_the_field_and_the_old_value_stays() {
    let bus = Bus::new();
    let mut on_bus = config_events(&bus);
    let (store, section) = breaker_store(ConfigOptions::new().with_bus(bus.clone())).await;
    let watching = section.subscribe();
    let mut local = store.events();
    let before = section.current();

    let (field, reason) = invalid(
        store
            .set(FAILURE_RATE, json!(1.5), "bob")
            .await
            .unwrap_err(),
    );
    assert_eq!(field, FAILURE_RATE);
    assert_eq!(reason, "must be between 0 and 1, got 1.5");

    assert_eq!(store.current_version(), 1);
    assert_eq!(store.get(FAILURE_RATE).unwrap(), Some(json!(0.5)));
    assert!(Arc::ptr_eq(&section.current(), &before));
    assert!(!watching.has_changed().unwrap());
    assert_eq!(store.history().len(), 1);

    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.rejected");
    assert_eq!(payload["field"], json!(FAILURE_RATE));
    assert_eq!(payload["author"], json!("bob"));
    assert!(payload["reason"].as_str().unwrap().contains("got 1.5"));
    assert!(matches!(
        next_event(&mut local).await,
        ConfigEvent::Rejected(ConfigRejected { field: Some(f), .. }) if f == FAILURE_RATE
    ));

    // A value of the wrong type in a whole new document.
    let mut document = serde_json::Value::clone(&store.document());
    document["services"]["storage"]["breaker"]["minimum_calls"] = json!("ten");
    let (field, reason) = invalid(store.apply(document, "bob", "typo").await.unwrap_err());
    assert_eq!(field, "services.storage.breaker.minimum_calls");
    assert_eq!(reason, "invalid type: string \"ten\", expected u32");
    assert_eq!(section.current().minimum_calls, 10);
    assert!(!watching.has_changed().unwrap());
    assert_eq!(store.current_version(), 1);
}

#[tokio::test]
async fn a_document_equal_to_the_one_in_force_makes_no_version() {
    let (store, _section) = breaker_store(ConfigOptions::default()).await;
    let mut local = store.events();
    let same = serde_json::Value::clone(&store.document());
    let version = store.apply(same, "ops", "no-op").await.unwrap();
    assert_eq!(version.version, 1);
    assert_eq!(
        store
            .set(FAILURE_RATE, json!(0.5), "ops")
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(local.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test]
async fn sections_wake_only_for_their_own_part() {
    let store = store_from(&node_toml(0.5), ConfigOptions::default()).await;
    let storage = store.register_section::<Breaker>(BREAKER).await.unwrap();
    let mut cache = store
        .register_section::<Breaker>("services.cache.breaker")
        .await
        .unwrap();
    let storage_updates = storage.subscribe();
    let storage_before = storage.current();

    store
        .set("services.cache.breaker.minimum_calls", json!(3), "ops")
        .await
        .unwrap();
    assert_eq!(within(cache.changed()).await.unwrap().minimum_calls, 3);
    assert!(!storage_updates.has_changed().unwrap());
    assert!(Arc::ptr_eq(&storage.current(), &storage_before));

    // Other parts of the document change without waking either.
    let cache_updates = cache.subscribe();
    store.set("node.name", json!("beta"), "ops").await.unwrap();
    assert!(!cache_updates.has_changed().unwrap());
    assert!(!storage_updates.has_changed().unwrap());
}

#[tokio::test]
async fn paths_can_be_set_and_removed() {
    let (store, section) = breaker_store(ConfigOptions::default()).await;
    let mut local = store.events();

    let version = store
        .set("services.search.pool.size", json!(4), "ops")
        .await
        .unwrap();
    assert_eq!(version.changed, ["services.search.pool.size"]);
    assert_eq!(
        store.get("services.search.pool").unwrap(),
        Some(json!({"size": 4}))
    );

    let error = store
        .set("node.name.first", json!("x"), "ops")
        .await
        .unwrap_err();
    assert!(matches!(
        &error,
        ConfigError::InvalidPath { path, reason }
            if path == "node.name.first" && reason == "leads through `node.name`, which is a string, not a table"
    ));
    assert!(matches!(
        store.set("node..name", json!(1), "ops").await,
        Err(ConfigError::InvalidPath { .. })
    ));

    // Removing a section's value brings back its default.
    store.set(FAILURE_RATE, json!(0.2), "ops").await.unwrap();
    let version = store.remove(FAILURE_RATE, "ops").await.unwrap();
    assert_eq!(version.changed, [FAILURE_RATE]);
    assert_eq!(store.get(FAILURE_RATE).unwrap(), None);
    assert_eq!(
        section.current().failure_rate,
        Breaker::default().failure_rate
    );
    assert!(matches!(
        store.remove(FAILURE_RATE, "ops").await,
        Err(ConfigError::InvalidPath { reason, .. }) if reason == "is not set"
    ));

    // Every refusal was announced; every accepted change too.
    let mut kinds = Vec::new();
    while let Ok(event) = local.try_recv() {
        kinds.push(match event {
            ConfigEvent::Changed(_) => "changed",
            ConfigEvent::Rejected(_) => "rejected",
            ConfigEvent::RolledBack(_) => "rolled_back",
        });
    }
    assert_eq!(
        kinds,
        [
            "changed", "rejected", "rejected", "changed", "changed", "rejected"
        ]
    );
}

#[tokio::test]
async fn oversized_input_is_refused_with_its_bound() {
    let options = ConfigOptions {
        max_document_bytes: 200,
        max_depth: 4,
        max_text_bytes: 16,
        ..ConfigOptions::default()
    };
    let (store, _section) = breaker_store(options).await;

    assert!(matches!(
        store.set("blob", json!("x".repeat(200)), "ops").await,
        Err(ConfigError::TooLarge {
            option: "max_document_bytes",
            limit: 200,
            ..
        })
    ));
    assert!(matches!(
        store.set("a.b.c.d.e", json!(1), "ops").await,
        Err(ConfigError::TooDeep { field, limit: 4 }) if field == "a.b.c.d"
    ));
    assert!(matches!(
        store.set("node.name", json!("x"), &"a".repeat(17)).await,
        Err(ConfigError::TooLarge { what, option: "max_text_bytes", .. }) if what == "author"
    ));
    assert!(matches!(
        store.apply(json!("text"), "ops", "why").await,
        Err(ConfigError::NotATable { kind: "a string" })
    ));
    assert_eq!(store.current_version(), 1);
}

#[tokio::test]
async fn changes_made_at_once_are_serialized_and_none_is_lost() {
    let store = ConfigStore::new(json!({}), ConfigOptions::default()).unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .set(&format!("keys.k{i}"), json!(i), &format!("writer-{i}"))
                    .await
                    .unwrap()
                    .version
            })
        })
        .collect();
    let mut versions = Vec::new();
    for writer in writers {
        versions.push(within(writer).await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<u64>>());
    let keys = store.get("keys").unwrap().unwrap();
    assert_eq!(keys.as_object().unwrap().len(), 8);
    assert_eq!(store.history().len(), 9);
}
