//! Typed sections: defaults, registration checks, field-named errors, handles.

use std::collections::BTreeMap;
use std::sync::Arc;

use plexus_config::{ConfigError, ConfigOptions, FieldErrors, Validate};
use serde::Deserialize;
use serde_json::json;

use crate::support::{
    BREAKER, Breaker, FAILURE_RATE, breaker_refused, invalid, node_toml, store_from,
};

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Service {
    breaker: Breaker,
    replicas: u32,
}

impl Validate for Service {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .nested("breaker", &self.breaker)
            .range("replicas", self.replicas, 0..=16);
        errors.into_result()
    }
}

#[tokio::test]
async fn an_absent_section_is_its_default_and_a_partial_one_is_completed() {
    let store = store_from(
        "[services.storage.breaker]\nminimum_calls = 3\n",
        ConfigOptions::default(),
    )
    .await;
    let absent = store
        .register_section::<Breaker>("services.cache.breaker")
        .await
        .unwrap();
    assert_eq!(*absent.current(), Breaker::default());

    let partial = store.register_section::<Breaker>(BREAKER).await.unwrap();
    assert_eq!(partial.current().minimum_calls, 3);
    assert_eq!(partial.current().failure_rate, 0.5);
    assert_eq!(partial.read(|b| b.name.clone()), "storage");

    let custom = Breaker {
        failure_rate: 0.1,
        ..Breaker::default()
    };
    let chosen = store
        .register_section_with_default("services.queue.breaker", custom.clone())
        .await
        .unwrap();
    assert_eq!(*chosen.current(), custom);
    assert_eq!(
        store.sections(),
        ["services.cache.breaker", "services.queue.breaker", BREAKER]
    );
}

#[tokio::test]
async fn registration_checks_the_document_in_force() {
    let store = store_from(&node_toml(1.5), ConfigOptions::default()).await;
    let (field, reason) = breaker_refused(&store).await;
    assert_eq!(field, FAILURE_RATE);
    assert_eq!(reason, "must be between 0 and 1, got 1.5");
    assert!(store.sections().is_empty());
    assert!(matches!(
        store.section::<Breaker>(BREAKER),
        Err(ConfigError::NotRegistered { path }) if path == BREAKER
    ));

    // A default that breaks its own rules is refused too.
    let store = store_from("", ConfigOptions::default()).await;
    let broken = Breaker {
        minimum_calls: 0,
        ..Breaker::default()
    };
    let (field, _) = invalid(
        store
            .register_section_with_default(BREAKER, broken)
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "services.storage.breaker.minimum_calls");
}

#[tokio::test]
async fn type_errors_and_unknown_keys_name_the_field() {
    let store = store_from(
        "[services.storage.breaker]\nfailure_rate = \"high\"\n",
        ConfigOptions::default(),
    )
    .await;
    let (field, reason) = breaker_refused(&store).await;
    assert_eq!(field, FAILURE_RATE);
    assert_eq!(reason, "invalid type: string \"high\", expected f64");

    let store = store_from(
        "[services.storage.breaker]\nfailur_rate = 0.3\n",
        ConfigOptions::default(),
    )
    .await;
    let (field, reason) = breaker_refused(&store).await;
    assert_eq!(field, "services.storage.breaker.failur_rate");
    assert!(
        reason.starts_with("unknown field `failur_rate`"),
        "{reason}"
    );

    let store = store_from("[services]\nstorage = 3\n", ConfigOptions::default()).await;
    let (field, reason) = invalid(
        store
            .register_section::<BTreeMap<String, Service>>("services")
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "services.storage");
    assert!(reason.starts_with("invalid type: integer `3`"), "{reason}");
}

#[tokio::test]
async fn every_error_of_a_map_of_sections_is_reported_under_its_key() {
    let store = store_from(
        "[services.storage]\nreplicas = 2\n[services.cache]\nreplicas = 1\n",
        ConfigOptions::default(),
    )
    .await;
    let services = store
        .register_section::<BTreeMap<String, Service>>("services")
        .await
        .unwrap();
    assert_eq!(services.current()["cache"].replicas, 1);

    let error = store
        .apply(
            json!({"services": {
                "cache": {"replicas": 17, "breaker": {"minimum_calls": 0}},
                "storage": {"breaker": {"failure_rate": -0.1}},
            }}),
            "ops",
            "resize",
        )
        .await
        .unwrap_err();
    let ConfigError::Invalid { errors, .. } = &error else {
        panic!("expected Invalid, got {error:?}")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "services.cache.breaker.minimum_calls",
            "services.cache.replicas",
            "services.storage.breaker.failure_rate",
        ]
    );
    assert!(error.to_string().ends_with("(and 2 more)"), "{error}");
    assert_eq!(services.current()["cache"].replicas, 1);
}

#[tokio::test]
async fn handles_share_one_section_and_types_are_checked() {
    let store = store_from(&node_toml(0.5), ConfigOptions::default()).await;
    let first = store.register_section::<Breaker>(BREAKER).await.unwrap();
    let again = store.register_section::<Breaker>(BREAKER).await.unwrap();
    let looked_up = store.section::<Breaker>(BREAKER).unwrap();
    assert!(Arc::ptr_eq(&first.current(), &again.current()));
    assert!(Arc::ptr_eq(&first.current(), &looked_up.current()));
    assert_eq!(looked_up.path(), BREAKER);

    assert!(matches!(
        store.register_section::<Service>(BREAKER).await,
        Err(ConfigError::TypeMismatch { requested, .. }) if requested.ends_with("Service")
    ));
    assert!(matches!(
        store.section::<Service>(BREAKER),
        Err(ConfigError::TypeMismatch { registered, .. }) if registered.ends_with("Breaker")
    ));
    assert!(matches!(
        store.register_section::<Breaker>("a..b").await,
        Err(ConfigError::InvalidPath { .. })
    ));
}

#[tokio::test]
async fn a_section_outliving_its_store_keeps_its_last_value_and_stops_waiting() {
    let store = store_from(&node_toml(0.5), ConfigOptions::default()).await;
    let mut section = store.register_section::<Breaker>(BREAKER).await.unwrap();
    store.set(FAILURE_RATE, json!(0.25), "ops").await.unwrap();
    drop(store);
    // The change made before the store went is still delivered, then nothing.
    assert_eq!(
        crate::support::within(section.changed())
            .await
            .unwrap()
            .failure_rate,
        0.25
    );
    assert!(crate::support::within(section.changed()).await.is_none());
    assert_eq!(section.current().failure_rate, 0.25);
}
