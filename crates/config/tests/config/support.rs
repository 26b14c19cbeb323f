//! Shared test helpers: sample sections, bounded waits, bus and event helpers,
//! temporary directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plexus_bus::{Bus, SubscribeOptions, Subscription};
use plexus_config::{
    ConfigError, ConfigEvent, ConfigOptions, ConfigStore, FieldErrors, Section, Validate,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

/// Where the sample breaker section lives.
pub(crate) const BREAKER: &str = "services.storage.breaker";
/// Its failure rate.
pub(crate) const FAILURE_RATE: &str = "services.storage.breaker.failure_rate";

/// A small typed section with the usual kinds of rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Breaker {
    pub failure_rate: f64,
    pub minimum_calls: u32,
    pub name: String,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            failure_rate: 0.5,
            minimum_calls: 10,
            name: "storage".to_owned(),
        }
    }
}

impl Validate for Breaker {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("failure_rate", self.failure_rate, 0.0..=1.0)
            .at_least("minimum_calls", self.minimum_calls, 1)
            .non_empty("name", &self.name);
        errors.into_result()
    }
}

/// The TOML of a node whose storage breaker has `failure_rate`.
pub(crate) fn node_toml(failure_rate: f64) -> String {
    format!(
        "[node]\nname = \"alpha\"\n\n[services.storage.breaker]\nfailure_rate = {failure_rate:?}\nminimum_calls = 10\n"
    )
}

/// A store built from TOML text.
pub(crate) async fn store_from(toml: &str, options: ConfigOptions) -> ConfigStore {
    ConfigStore::builder()
        .options(options)
        .toml(toml)
        .build()
        .await
        .unwrap()
}

/// A store from [`node_toml`] with the breaker section registered.
pub(crate) async fn breaker_store(options: ConfigOptions) -> (ConfigStore, Section<Breaker>) {
    let store = store_from(&node_toml(0.5), options).await;
    let section = store.register_section::<Breaker>(BREAKER).await.unwrap();
    (store, section)
}

/// Bounded wait used instead of sleeping: fails the test if the future hangs.
pub(crate) async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("did not complete within 10 s")
}

/// The next local event, within the bounded wait.
pub(crate) async fn next_event(events: &mut broadcast::Receiver<ConfigEvent>) -> ConfigEvent {
    within(events.recv()).await.unwrap()
}

/// The first local event `pick` accepts, skipping others, within the bounded wait.
pub(crate) async fn wait_for<T>(
    events: &mut broadcast::Receiver<ConfigEvent>,
    mut pick: impl FnMut(&ConfigEvent) -> Option<T>,
) -> T {
    within(async {
        loop {
            let event = events.recv().await.unwrap();
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
}

/// A real bus subscriber on every configuration event.
pub(crate) fn config_events(bus: &Bus) -> Subscription {
    bus.subscribe("plexus.config.>", SubscribeOptions::new().name("test"))
        .unwrap()
}

/// The next event on the bus: its topic and its payload as JSON.
pub(crate) async fn next_on_bus(subscription: &mut Subscription) -> (String, Value) {
    let envelope = within(subscription.recv()).await.unwrap();
    let json = envelope.payload().encode().unwrap();
    (
        envelope.topic().as_str().to_owned(),
        serde_json::from_slice(&json).unwrap(),
    )
}

/// The field and reason of an [`ConfigError::Invalid`].
pub(crate) fn invalid(error: ConfigError) -> (String, String) {
    match error {
        ConfigError::Invalid { field, reason, .. } => (field, reason),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Registers the storage breaker section, expecting it refused: the field and the
/// reason.
pub(crate) async fn breaker_refused(store: &ConfigStore) -> (String, String) {
    invalid(
        store
            .register_section::<Breaker>(BREAKER)
            .await
            .expect_err("the breaker section is refused"),
    )
}

/// A temporary directory removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "plexus-config-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Replaces `name` by a rename, as editors and deployment tools do.
    pub(crate) fn replace(&self, name: &str, text: &str) -> PathBuf {
        let staging = self.0.join(format!(".{name}.staging"));
        std::fs::write(&staging, text).unwrap();
        let target = self.0.join(name);
        std::fs::rename(&staging, &target).unwrap();
        target
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
