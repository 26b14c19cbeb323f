//! The watched file: a valid change is reloaded, an invalid one is refused and
//! the old configuration stays. Waited on by event, with a bounded timeout.

use std::path::Path;
use std::time::Duration;

use plexus_bus::Bus;
use plexus_config::{ConfigEvent, ConfigOptions, ConfigStore};
use serde_json::json;

use crate::support::{
    BREAKER, Breaker, FAILURE_RATE, TempDir, config_events, next_on_bus, node_toml, wait_for,
};

/// A store on `file` and the variables `env`, publishing on `bus` and debouncing
/// the watched file for 20 ms.
async fn store_on(file: &Path, env: &[(&str, &str)], bus: &Bus) -> ConfigStore {
    let options = ConfigOptions::new()
        .with_bus(bus.clone())
        .with_watch_debounce(Duration::from_millis(20));
    ConfigStore::builder()
        .options(options)
        .file(file)
        .env(env.iter().copied())
        .build()
        .await
        .expect("the store loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_reloaded_with_its_environment_overrides() {
    let dir = TempDir::new();
    let file = dir.replace("node.toml", &node_toml(0.5));
    let bus = Bus::new();
    let store = store_on(&file, &[("PLEXUS_NODE__NAME", "from-env")], &bus).await;
    let section = store.register_section::<Breaker>(BREAKER).await.unwrap();
    let mut local = store.events();
    let mut on_bus = config_events(&bus);
    let watch = store.watch_file(&file).unwrap();
    assert_eq!(watch.path(), file);

    dir.replace("node.toml", &node_toml(0.2));
    let changed = wait_for(&mut local, |event| match event {
        ConfigEvent::Changed(c) => Some(c.clone()),
        _ => None,
    })
    .await;
    assert_eq!(changed.version, 2);
    assert_eq!(changed.author, format!("file:{}", file.display()));
    assert_eq!(changed.paths, [FAILURE_RATE]);
    assert_eq!(section.current().failure_rate, 0.2);
    // The override still sits on top of the file.
    assert_eq!(store.get("node.name").unwrap(), Some(json!("from-env")));
    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.changed");
    assert_eq!(payload["version"], json!(2));

    // Once the handle is dropped, the file is no longer followed.
    drop(watch);
    dir.replace("node.toml", &node_toml(0.4));
    store.reload_file(&file).await.unwrap();
    assert_eq!(store.current_version(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_and_the_old_configuration_stays() {
    let dir = TempDir::new();
    let file = dir.replace("node.toml", &node_toml(0.5));
    let bus = Bus::new();
    let store = store_on(&file, &[], &bus).await;
    let section = store.register_section::<Breaker>(BREAKER).await.unwrap();
    let mut local = store.events();
    let mut on_bus = config_events(&bus);
    let _watch = store.watch_file(&file).unwrap();

    // Out of range.
    dir.replace("node.toml", &node_toml(1.5));
    let rejected = wait_for(&mut local, |event| match event {
        ConfigEvent::Rejected(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(rejected.field.as_deref(), Some(FAILURE_RATE));
    assert!(rejected.reason.contains("got 1.5"), "{}", rejected.reason);
    assert_eq!(rejected.author, format!("file:{}", file.display()));
    assert_eq!(section.current().failure_rate, 0.5);
    assert_eq!(store.current_version(), 1);
    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.rejected");
    assert_eq!(payload["field"], json!(FAILURE_RATE));

    // Not TOML at all: refused with the line.
    dir.replace("node.toml", "[node]\nname = \"alpha\"\nbroken = = 1\n");
    let reason = wait_for(&mut local, |event| match event {
        ConfigEvent::Rejected(r) if r.field.is_none() => Some(r.reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("node.toml:3:"), "{reason}");
    assert_eq!(store.current_version(), 1);
    assert_eq!(section.current().failure_rate, 0.5);

    // A good file again is taken.
    dir.replace("node.toml", &node_toml(0.25));
    let version = wait_for(&mut local, |event| match event {
        ConfigEvent::Changed(c) => Some(c.version),
        _ => None,
    })
    .await;
    assert_eq!(version, 2);
    assert_eq!(section.current().failure_rate, 0.25);
}

#[tokio::test]
async fn watching_needs_a_file_name() {
    let store = ConfigStore::new(json!({}), ConfigOptions::default()).unwrap();
    assert!(matches!(
        store.watch_file("/"),
        Err(plexus_config::ConfigError::Watch { .. })
    ));
    let dir = TempDir::new();
    assert!(store.watch_file(dir.path().join("later.toml")).is_ok());
}
