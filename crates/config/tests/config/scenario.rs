//! The seed scenario, on a real circuit breaker: a configuration change raises a
//! breaker's threshold on a live service without a restart; a 150% threshold is
//! refused naming the field, and the old value keeps working; rolling back to
//! version 1 restores it; each step emits an event on the bus.

use std::sync::Arc;

use arc_swap::ArcSwap;
use plexus_bus::Bus;
use plexus_config::{ConfigOptions, ConfigStore, FieldErrors, Section, Validate};
use plexus_resilience::{BreakerConfig, CircuitBreaker, State};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::support::{config_events, invalid, next_on_bus, within};

/// The resilience crate's own breaker configuration as a typed section.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
struct BreakerPolicy(BreakerConfig);

impl Validate for BreakerPolicy {
    fn validate(&self) -> Result<(), FieldErrors> {
        self.0
            .validate()
            .map_err(|e| FieldErrors::one(e.field, e.reason))
    }
}

const NODE: &str = r#"
[services.storage.breaker]
name = "storage"
window = { kind = "count", size = 4 }
minimum_calls = 4
failure_rate_threshold = 50
"#;
const THRESHOLD: &str = "services.storage.breaker.failure_rate_threshold";

/// A live service: it keeps its breaker in step with its configuration section,
/// rebuilding it on every change, and says so on `rebuilt`.
fn serve(
    mut policy: Section<BreakerPolicy>,
    breaker: Arc<ArcSwap<CircuitBreaker>>,
    rebuilt: mpsc::Sender<f64>,
) {
    tokio::spawn(async move {
        while let Some(policy) = policy.changed().await {
            breaker.store(Arc::new(CircuitBreaker::new(policy.0.clone()).unwrap()));
            if rebuilt.send(policy.0.failure_rate_threshold).await.is_err() {
                return;
            }
        }
    });
}

/// Two failures and two successes: a 50% failure rate over the window.
async fn half_failing(breaker: &CircuitBreaker) -> State {
    for fail in [true, false, true, false] {
        let _ = breaker
            .call(async move { if fail { Err("down") } else { Ok(()) } })
            .await;
    }
    breaker.state()
}

#[tokio::test]
async fn a_breaker_threshold_is_raised_refused_and_rolled_back_on_a_live_service() {
    let bus = Bus::new();
    let mut on_bus = config_events(&bus);
    let store = ConfigStore::builder()
        .options(ConfigOptions::new().with_bus(bus.clone()))
        .toml(NODE)
        .build()
        .await
        .unwrap();
    let policy = store
        .register_section::<BreakerPolicy>("services.storage.breaker")
        .await
        .unwrap();
    let breaker = Arc::new(ArcSwap::from_pointee(
        CircuitBreaker::new(policy.current().0.clone()).unwrap(),
    ));
    let (rebuilt, mut rebuilds) = mpsc::channel(4);
    serve(policy.clone(), breaker.clone(), rebuilt);

    // Version 1: 50% failures reach the 50% threshold.
    assert_eq!(half_failing(&breaker.load()).await, State::Open);

    // Raise the threshold at run time: the service picks it up, no restart.
    store.set(THRESHOLD, json!(80), "ops").await.unwrap();
    assert_eq!(within(rebuilds.recv()).await, Some(80.0));
    assert_eq!(half_failing(&breaker.load()).await, State::Closed);
    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(
        (topic.as_str(), &payload["version"]),
        ("plexus.config.changed", &json!(2))
    );
    assert_eq!(payload["paths"], json!([THRESHOLD]));

    // 150% is refused, naming the field; 80 keeps working.
    let (field, reason) = invalid(store.set(THRESHOLD, json!(150), "ops").await.unwrap_err());
    assert_eq!(field, THRESHOLD);
    assert_eq!(reason, "150 is not a percentage in (0, 100]");
    assert_eq!(policy.current().0.failure_rate_threshold, 80.0);
    assert!(rebuilds.try_recv().is_err());
    assert_eq!(half_failing(&breaker.load()).await, State::Closed);
    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.rejected");
    assert_eq!(payload["field"], json!(THRESHOLD));

    // Roll back to version 1: the 50% threshold is back in force.
    let version = store.rollback(1, "ops").await.unwrap();
    assert_eq!(version.version, 3);
    assert_eq!(within(rebuilds.recv()).await, Some(50.0));
    assert_eq!(half_failing(&breaker.load()).await, State::Open);
    let (topic, _) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.changed");
    let (topic, payload) = next_on_bus(&mut on_bus).await;
    assert_eq!(topic, "plexus.config.rolled_back");
    assert_eq!(
        (&payload["to"], &payload["version"]),
        (&json!(1), &json!(3))
    );
}
