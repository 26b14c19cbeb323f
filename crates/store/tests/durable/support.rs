//! The shared test helpers (plexus-store's `testing`, feature `test-util`).

pub(crate) use plexus_store::testing::{PATIENCE, Place, event, payload_of, postgres_through};

use plexus_core::Envelope;
use plexus_faultproxy::FaultProxy;
use plexus_store::{BackendKind, CollectionSpec, DataStore, Outbox, PutMode};
use serde_json::json;

/// Creates the `cases` collection and opens an outbox on `ds` that keeps the
/// `cases.>` events durably.
pub(crate) async fn cases_outbox(ds: &DataStore) -> Outbox {
    ds.create_collection("cases", CollectionSpec::default())
        .await
        .unwrap();
    plexus_store::testing::durable_outbox(ds, "cases.>").await
}

/// Inserts case `c{i}` (`{"i": i}`) with `events`, in one transaction.
pub(crate) async fn put_case(outbox: &Outbox, i: usize, events: Vec<Envelope>) {
    outbox
        .put(
            "cases",
            &format!("c{i}"),
            &json!({"i": i}),
            PutMode::Insert,
            None,
            events,
        )
        .await
        .unwrap();
}

/// A fault proxy in front of the test PostgreSQL, the URL that goes through it, and
/// a place on a fresh schema (to open with that URL).
pub(crate) async fn behind_a_fresh_proxy() -> (FaultProxy, String, Place) {
    let (upstream, _) = postgres_through(None).await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let (_, url) = postgres_through(Some(proxy.addr())).await;
    (proxy, url, Place::new(BackendKind::Postgres))
}
