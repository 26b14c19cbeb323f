//! Fencing in the DataStore: a holder paused past its lease is refused by the data
//! its lock guards, once the next holder has written (SQLite and PostgreSQL).

use std::time::Duration;

use plexus_locks::{Locks, LocksConfig};
use plexus_store::testing::TestStore;
use plexus_store::{BackendKind, CollectionSpec, Fence, Op, PutMode, StoreError};
use serde_json::{Value, json};

use crate::support::eventually;

plexus_store::on_both!(a_paused_holder_past_its_lease_is_refused_by_a_fenced_write);

fn put(doc: Value) -> Op {
    Op::Put {
        collection: "reports".to_owned(),
        id: "nightly".to_owned(),
        doc,
        mode: PutMode::Upsert,
        expected_version: None,
    }
}

async fn a_paused_holder_past_its_lease_is_refused_by_a_fenced_write(kind: BackendKind) {
    let t = TestStore::open(kind, |_| {}).await;
    let ds = &t.ds;
    ds.create_collection("reports", CollectionSpec::default())
        .await
        .unwrap();
    let locks = Locks::in_memory(LocksConfig::default());
    let ms = Duration::from_millis;

    // Holder A takes the lock and writes under its token.
    let a = locks.grant("report", ms(200), ms(0), "a").await.unwrap();
    let fence_a = Fence::new("report", a.token);
    ds.fenced(&fence_a, vec![put(json!({"by": "a", "step": 1}))])
        .await
        .unwrap();

    // A pauses past its lease (it neither extends nor releases); B takes the lock
    // and writes under its greater token.
    eventually("A's lease runs out", || async {
        !locks.status("report").await.unwrap().held
    })
    .await;
    let b = locks.grant("report", ms(30_000), ms(0), "b").await.unwrap();
    assert!(b.token > a.token);
    ds.fenced(
        &Fence::new("report", b.token),
        vec![put(json!({"by": "b"}))],
    )
    .await
    .unwrap();

    // A wakes and writes as if it still held the lock: refused, nothing kept.
    let err = ds
        .fenced(&fence_a, vec![put(json!({"by": "a", "step": 2}))])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Fenced { token, highest, .. } if token == a.token && highest == b.token),
        "{err:?}"
    );
    let doc = ds.get("reports", "nightly").await.unwrap().unwrap().doc;
    assert_eq!(doc, json!({"by": "b"}));
    assert_eq!(ds.store().metrics().fenced_writes(false), 1);
    // And its lock operations are refused too.
    assert!(locks.extend("report", a.token, ms(1_000)).await.is_err());
    t.finish().await;
}
