//! Versions: rollback, the bounded history, the history store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use plexus_bus::Bus;
use plexus_config::{
    ConfigError, ConfigEvent, ConfigOptions, ConfigStore, ConfigVersion, FieldErrors, HistoryError,
    HistoryStore, MemoryHistory, STARTUP_AUTHOR, Validate,
};
use serde::Deserialize;
use serde_json::json;

use crate::support::{
    FAILURE_RATE, breaker_store, config_events, invalid, next_event, next_on_bus, node_toml, within,
};

#[tokio::test]
async fn rollback_to_version_one_restores_it_and_is_announced() {
    let bus = Bus::new();
    let (store, mut section) = breaker_store(ConfigOptions::new().with_bus(bus.clone())).await;
    store.set(FAILURE_RATE, json!(0.7), "ops").await.unwrap();
    store.set(FAILURE_RATE, json!(0.9), "ops").await.unwrap();
    assert_eq!(within(section.changed()).await.unwrap().failure_rate, 0.9);
    let mut on_bus = config_events(&bus);
    let mut local = store.events();

    let version = store.rollback(1, "carol").await.unwrap();
    assert_eq!(version.version, 4);
    assert_eq!(version.rollback_of, Some(1));
    assert_eq!(version.reason, "rollback to version 1");
    assert_eq!(version.changed, [FAILURE_RATE]);
    assert_eq!(version.document, store.version(1).unwrap().document);
    assert_eq!(within(section.changed()).await.unwrap().failure_rate, 0.5);
    assert_eq!(store.get(FAILURE_RATE).unwrap(), Some(json!(0.5)));

    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.changed");
    assert_eq!(payload["version"], json!(4));
    assert_eq!(payload["paths"], json!([FAILURE_RATE]));
    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.rolled_back");
    assert_eq!(payload, json!({"to": 1, "version": 4, "author": "carol"}));
    assert!(matches!(next_event(&mut local).await, ConfigEvent::Changed(c) if c.version == 4));
    assert!(matches!(
        next_event(&mut local).await,
        ConfigEvent::RolledBack(r) if r.to == 1 && r.version == 4
    ));

    let history: Vec<(u64, Option<u64>)> = store
        .history()
        .iter()
        .map(|v| (v.version, v.rollback_of))
        .collect();
    assert_eq!(history, [(1, None), (2, None), (3, None), (4, Some(1))]);
    assert_eq!(store.history()[0].author, STARTUP_AUTHOR);
}

#[tokio::test]
async fn history_is_bounded_by_its_option() {
    let (store, _section) = breaker_store(ConfigOptions::new().with_max_history(3)).await;
    let mut local = store.events();
    for i in 1..=5 {
        store
            .set(FAILURE_RATE, json!(f64::from(i) / 10.0), "ops")
            .await
            .unwrap();
    }
    let kept: Vec<u64> = store.history().iter().map(|v| v.version).collect();
    assert_eq!(kept, [4, 5, 6]);
    assert!(store.version(3).is_none());
    assert!(matches!(
        store.rollback(1, "ops").await,
        Err(ConfigError::UnknownVersion {
            version: 1,
            oldest: 4,
            newest: 6
        })
    ));
    let rejected = loop {
        if let ConfigEvent::Rejected(r) = next_event(&mut local).await {
            break r;
        }
    };
    assert!(
        rejected.reason.contains("no version 1"),
        "{}",
        rejected.reason
    );

    let version = store.rollback(4, "ops").await.unwrap();
    assert_eq!(version.version, 7);
    assert_eq!(store.get(FAILURE_RATE).unwrap(), Some(json!(0.3)));
    let kept: Vec<u64> = store.history().iter().map(|v| v.version).collect();
    assert_eq!(kept, [5, 6, 7]);
}

#[derive(Debug, Default, Deserialize)]
struct Limits {
    max: u32,
}

impl Validate for Limits {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors.at_most("max", self.max, 100);
        errors.into_result()
    }
}

#[tokio::test]
async fn a_rollback_is_validated_like_any_change() {
    let store =
        ConfigStore::new(json!({"limits": {"max": 500}}), ConfigOptions::default()).unwrap();
    store.set("limits.max", json!(50), "ops").await.unwrap();
    // Registered after version 1: version 1 breaks its rules.
    let limits = store.register_section::<Limits>("limits").await.unwrap();

    let (field, reason) = invalid(store.rollback(1, "ops").await.unwrap_err());
    assert_eq!(field, "limits.max");
    assert_eq!(reason, "must be at most 100, got 500");
    assert_eq!(store.current_version(), 2);
    assert_eq!(limits.current().max, 50);
}

/// A history store that can be told to fail.
struct Flaky {
    inner: MemoryHistory,
    failing: AtomicBool,
}

#[async_trait::async_trait]
impl HistoryStore for Flaky {
    async fn append(&self, version: &ConfigVersion) -> Result<(), HistoryError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err("disk full".into());
        }
        self.inner.append(version).await
    }
    async fn load(&self) -> Result<Vec<ConfigVersion>, HistoryError> {
        self.inner.load().await
    }
}

#[tokio::test]
async fn a_change_the_history_store_cannot_record_is_not_made() {
    let history = Arc::new(Flaky {
        inner: MemoryHistory::new(10),
        failing: AtomicBool::new(false),
    });
    let store = ConfigStore::builder()
        .toml(node_toml(0.5))
        .history(history.clone())
        .build()
        .await
        .unwrap();
    let section = store
        .register_section::<crate::support::Breaker>(crate::support::BREAKER)
        .await
        .unwrap();
    let mut local = store.events();
    history.failing.store(true, Ordering::SeqCst);

    let error = store
        .set(FAILURE_RATE, json!(0.2), "ops")
        .await
        .unwrap_err();
    assert!(matches!(&error, ConfigError::History(e) if e.to_string() == "disk full"));
    assert_eq!(store.current_version(), 1);
    assert_eq!(section.current().failure_rate, 0.5);
    assert!(
        matches!(next_event(&mut local).await, ConfigEvent::Rejected(r) if r.reason.contains("disk full"))
    );

    history.failing.store(false, Ordering::SeqCst);
    assert_eq!(
        store
            .set(FAILURE_RATE, json!(0.2), "ops")
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(history.inner.len(), 2);
}

#[tokio::test]
async fn a_store_resumes_from_its_history() {
    let history = Arc::new(MemoryHistory::new(10));
    let build = |toml: String| {
        ConfigStore::builder()
            .toml(toml)
            .history(history.clone())
            .build()
    };
    let first = build(node_toml(0.5)).await.unwrap();
    first.set(FAILURE_RATE, json!(0.3), "ops").await.unwrap();
    drop(first);

    // The start-up file differs from the last version: it is recorded on top.
    let second = build(node_toml(0.5)).await.unwrap();
    let versions: Vec<(u64, String)> = second
        .history()
        .iter()
        .map(|v| (v.version, v.author.clone()))
        .collect();
    assert_eq!(
        versions,
        [
            (1, "startup".into()),
            (2, "ops".into()),
            (3, "startup".into())
        ]
    );
    assert_eq!(second.current().changed, [FAILURE_RATE]);
    assert_eq!(
        second.current().reason,
        "the start-up configuration differs from version 2"
    );
    assert_eq!(second.get(FAILURE_RATE).unwrap(), Some(json!(0.5)));
    second.rollback(2, "ops").await.unwrap();
    drop(second);

    // The same document as the last version resumes it as is.
    let third = build(node_toml(0.3)).await.unwrap();
    assert_eq!(third.current_version(), 4);
    assert_eq!(third.current().rollback_of, Some(2));
    assert_eq!(history.len(), 4);
}
