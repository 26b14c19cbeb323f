//! Bad input on both backends: each gets its typed error, and nothing reaches SQL.

use plexus_store::{
    CollectionSpec, DataStore, Filter, IndexSpec, PutMode, Query, Sort, StoreError,
};
use serde_json::{Value, json};

crate::on_both_backends!(bad_documents, bad_names_and_filters, bad_queries);

async fn bad_documents(ds: &DataStore) {
    ds.create_collection("docs", CollectionSpec::default())
        .await
        .unwrap();
    let put = |doc: Value| async move { ds.put("docs", "x", &doc, PutMode::Upsert, None).await };
    for doc in [
        json!({}),
        json!([1, 2]),
        json!("text"),
        json!(null),
        json!(3),
    ] {
        assert!(
            matches!(
                put(doc.clone()).await,
                Err(StoreError::InvalidDocument { .. })
            ),
            "{doc}"
        );
    }
    assert!(matches!(
        put(json!({"a": "nul \u{0} inside"})).await,
        Err(StoreError::InvalidDocument { .. })
    ));
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({"d": deep});
    }
    assert!(matches!(
        put(deep).await,
        Err(StoreError::InvalidDocument { .. })
    ));
    // A 10 MB document is over the 1 MiB default limit.
    let huge = json!({"blob": "x".repeat(10 * 1024 * 1024)});
    match put(huge).await {
        Err(StoreError::DocumentTooLarge { size, limit }) => {
            assert!(size > 10 * 1024 * 1024);
            assert_eq!(limit, 1024 * 1024);
        }
        other => panic!("{other:?}"),
    }
    // Bad ids.
    for id in ["", "a\u{7}b"] {
        assert!(matches!(
            ds.put("docs", id, &json!({"a": 1}), PutMode::Upsert, None).await,
            Err(StoreError::InvalidArgument { ref field, .. }) if field == "id"
        ));
    }
    let long = "i".repeat(300);
    assert!(ds.get("docs", &long).await.is_err());
    // Ids are values, never SQL: a hostile one is stored and read back verbatim.
    let hostile = "x'); DROP TABLE doc_docs; --";
    ds.put("docs", hostile, &json!({"a": 1}), PutMode::Insert, None)
        .await
        .unwrap();
    assert_eq!(ds.get("docs", hostile).await.unwrap().unwrap().id, hostile);
    // Nothing was written by the refused puts.
    assert_eq!(ds.count("docs", &Filter::All).await.unwrap(), 1);
    assert!(ds.store().metrics().error_count("invalid_document") >= 7);
    assert_eq!(ds.store().metrics().error_count("document_too_large"), 1);
}

async fn bad_names_and_filters(ds: &DataStore) {
    assert!(matches!(
        ds.get("never_made", "x").await,
        Err(StoreError::UnknownCollection { ref name }) if name == "never_made"
    ));
    assert!(matches!(
        ds.put("never_made", "x", &json!({"a": 1}), PutMode::Upsert, None)
            .await,
        Err(StoreError::UnknownCollection { .. })
    ));
    for name in [
        "Bad",
        "x; DROP TABLE plexus_collections",
        "a\"b",
        "",
        &"c".repeat(40),
    ] {
        assert!(
            matches!(
                ds.create_collection(name, CollectionSpec::default()).await,
                Err(StoreError::InvalidArgument { ref field, .. }) if field == "collection"
            ),
            "{name}"
        );
        assert!(
            matches!(
                ds.get(name, "x").await,
                Err(StoreError::InvalidArgument { .. })
            ),
            "{name}"
        );
    }
    let bad_index = CollectionSpec::default().with_index(IndexSpec::new("ix", &["a') --"]));
    assert!(matches!(
        ds.create_collection("c", bad_index).await,
        Err(StoreError::InvalidArgument { ref field, .. }) if field == "indexes[0].fields[0]"
    ));
    let twice = CollectionSpec::default()
        .with_index(IndexSpec::new("ix", &["a"]))
        .with_index(IndexSpec::new("ix", &["b"]));
    assert!(ds.create_collection("c", twice).await.is_err());

    ds.create_collection("c", CollectionSpec::default())
        .await
        .unwrap();
    ds.put("c", "1", &json!({"a": 1}), PutMode::Insert, None)
        .await
        .unwrap();
    // Malformed filters and injection attempts in field paths are refused with the
    // place they went wrong.
    let cases = [
        (json!({"field": "a') OR 1=1 --", "eq": 1}), "/field"),
        (json!({"field": "a.b'", "eq": 1}), "/field"),
        (json!({"field": "$.a", "eq": 1}), "/field"),
        (json!({"field": "a", "eq": [1]}), "/eq"),
        (json!({"field": "a", "gt": null}), "/gt"),
        (json!({"field": "a", "regex": ".*"}), "/regex"),
        (json!({"field": "a"}), ""),
        (json!({"or": [{"field": "a", "eq": 1}, "x"]}), "/or/1"),
        (json!({"not": []}), "/not"),
        (json!("status = 'open'"), ""),
    ];
    for (filter, path) in cases {
        match Filter::from_json(&filter) {
            Err(StoreError::InvalidFilter { path: p, .. }) => assert_eq!(p, path, "{filter}"),
            other => panic!("{filter}: {other:?}"),
        }
    }
    // Too many terms.
    let many: Vec<Value> = (0..200).map(|i| json!({"field": "a", "eq": i})).collect();
    let f = Filter::from_json(&json!({"or": many})).unwrap();
    assert!(matches!(
        ds.count("c", &f).await,
        Err(StoreError::InvalidFilter { .. })
    ));
    // Hostile values are only ever bound: they match nothing and break nothing.
    let f = Filter::from_json(&json!({"field": "a", "eq": "1' OR '1'='1"})).unwrap();
    assert_eq!(ds.count("c", &f).await.unwrap(), 0);
    assert_eq!(ds.count("c", &Filter::All).await.unwrap(), 1);
}

async fn bad_queries(ds: &DataStore) {
    ds.create_collection("c", CollectionSpec::default())
        .await
        .unwrap();
    for i in 0..3 {
        ds.put(
            "c",
            &format!("{i}"),
            &json!({"a": i}),
            PutMode::Insert,
            None,
        )
        .await
        .unwrap();
    }
    let max = ds.store().config().max_query_limit;
    for q in [Query::default().limit(0), Query::default().limit(max + 1)] {
        assert!(matches!(
            ds.query("c", &q).await,
            Err(StoreError::InvalidArgument { ref field, .. }) if field == "limit"
        ));
    }
    for cursor in ["garbage", "eyJvIjoiIiwiayI6W10sImkiOjF9", ""] {
        let q = Query::default().after(Some(cursor.to_owned()));
        assert!(
            matches!(
                ds.query("c", &q).await,
                Err(StoreError::InvalidArgument { ref field, .. }) if field == "cursor"
            ),
            "{cursor}"
        );
    }
    let too_many_sorts = (0..5).fold(Query::default(), |q, _| q.sort(Sort::asc("a").unwrap()));
    assert!(ds.query("c", &too_many_sorts).await.is_err());
    assert!(Sort::asc("a b").is_err());
    assert!(Query::default().project(&["ok", "not ok"]).is_err());
    // A good query still works afterwards.
    assert_eq!(
        ds.query("c", &Query::default().limit(2))
            .await
            .unwrap()
            .docs
            .len(),
        2
    );
}
