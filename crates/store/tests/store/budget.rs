//! A query page holds at most `max_result_bytes` of documents: a page that would hold
//! more ends early with a cursor, and paging on returns every document once. The
//! budget is never under `max_document_bytes`, so a page holds at least one.

use plexus_store::{BackendKind, CollectionSpec, Filter, PutMode, Query, StoreConfig, json_len};
use serde_json::json;

use crate::support::TestStore;

plexus_store::on_both!(pages_end_at_the_byte_budget);

const BUDGET: usize = 10_000;

async fn pages_end_at_the_byte_budget(kind: BackendKind) {
    let t = TestStore::open(kind, |c| {
        c.max_document_bytes = BUDGET;
        c.max_result_bytes = BUDGET;
    })
    .await;
    let ds = &t.ds;
    ds.create_collection("big", CollectionSpec::default())
        .await
        .unwrap();
    // 30 documents of about 3 KB: three fit in the budget, four do not.
    for n in 0..30 {
        let doc = json!({"n": n, "text": "x".repeat(3_000)});
        ds.put("big", &format!("d{n:02}"), &doc, PutMode::Insert, None)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = ds
            .query("big", &Query::filter(Filter::All).limit(100).after(cursor))
            .await
            .unwrap();
        let bytes: usize = page.docs.iter().map(|d| json_len(&d.doc)).sum();
        assert!(bytes <= BUDGET, "page {pages} holds {bytes} bytes");
        seen.extend(page.docs.iter().map(|d| d.doc["n"].as_u64().unwrap()));
        pages += 1;
        if page.next_cursor.is_none() {
            break;
        }
        assert_eq!(page.docs.len(), 3, "a page ends at the budget, not before");
        cursor = page.next_cursor;
    }
    assert_eq!(seen, (0..30).collect::<Vec<u64>>());
    assert_eq!(pages, 10);

    // The limit still ends a page first when it is smaller.
    let page = ds
        .query("big", &Query::filter(Filter::All).limit(2))
        .await
        .unwrap();
    assert_eq!(page.docs.len(), 2);
    assert!(page.next_cursor.is_some());

    t.finish().await;
}

#[test]
fn the_budget_holds_at_least_one_document() {
    let config = StoreConfig {
        max_document_bytes: 2_000,
        max_result_bytes: 1_000,
        ..StoreConfig::default()
    };
    let errors = config.validate().unwrap_err();
    assert!(errors.to_string().contains("max_result_bytes"), "{errors}");
}
