//! Fenced writes: the store keeps the highest token accepted per lock and refuses a
//! lower one in the write's own transaction, with nothing of it kept, counted.

use plexus_store::{CollectionSpec, DataStore, Fence, Op, OpResult, PutMode, StoreError};
use serde_json::json;

crate::on_both_backends!(a_lower_token_is_refused_and_nothing_is_written);

fn put(id: &str, n: i64) -> Op {
    Op::Put {
        collection: "guarded".to_owned(),
        id: id.to_owned(),
        doc: json!({"n": n}),
        mode: PutMode::Upsert,
        expected_version: None,
    }
}

async fn a_lower_token_is_refused_and_nothing_is_written(ds: &DataStore) {
    ds.create_collection("guarded", CollectionSpec::default())
        .await
        .unwrap();
    // The first holder writes twice with its token: equal tokens pass.
    ds.fenced(&Fence::new("job", 7), vec![put("a", 1)])
        .await
        .unwrap();
    ds.fenced(&Fence::new("job", 7), vec![put("a", 2)])
        .await
        .unwrap();
    // The next holder writes with a greater token.
    let done = ds
        .fenced(&Fence::new("job", 9), vec![put("a", 3), put("b", 3)])
        .await
        .unwrap();
    assert!(matches!(done[0], OpResult::Put(_)));
    // The first holder, back from a pause, is refused; nothing of its write is kept.
    let err = ds
        .fenced(&Fence::new("job", 7), vec![put("a", 4), put("c", 4)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Fenced { lock, token: 7, highest: 9 } if lock == "job"),
        "{err:?}"
    );
    assert_eq!(err.kind(), "fenced");
    assert_eq!(
        ds.get("guarded", "a").await.unwrap().unwrap().doc,
        json!({"n": 3})
    );
    assert!(ds.get("guarded", "c").await.unwrap().is_none());
    // Another lock's marks are its own.
    ds.fenced(&Fence::new("other", 1), vec![put("d", 1)])
        .await
        .unwrap();
    let metrics = ds.store().metrics();
    assert_eq!(metrics.fenced_writes(true), 4);
    assert_eq!(metrics.fenced_writes(false), 1);
    // Bad fences are named.
    let err = ds
        .fenced(&Fence::new("", 1), vec![put("e", 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidArgument { field, .. } if field == "fence.lock"),
        "{err:?}"
    );
    let err = ds
        .fenced(&Fence::new("job", u64::MAX), vec![put("e", 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidArgument { field, .. } if field == "fence.token"),
        "{err:?}"
    );
}
