//! The suite every store backend must pass (feature `test-util`): every behaviour of
//! the [`DataStore`], run unchanged on SQLite, PostgreSQL and any other [`Backend`].
//!
//! Each check takes a [`DataStore`] on a fresh, empty database and panics on a
//! violation. Run them all as `#[tokio::test]`s with
//! [`store_conformance!`](crate::store_conformance), giving it an async closure that
//! opens a fresh store (a [`DataStore`], or any [`Fixture`] that also cleans up):
//!
//! ```no_run
//! // A backend crate's tests: each check on a store over a fresh database.
//! plexus_store::store_conformance!(|| async {
//!     let dir = std::env::temp_dir().join(uuid::Uuid::new_v4().to_string());
//!     let config = plexus_store::StoreConfig::sqlite_in(dir);
//!     // Another engine: `DataStore::new(Store::from_backend(Box::new(backend), config))`.
//!     plexus_store::DataStore::connect(&config).await.unwrap()
//! });
//! ```
//!
//! The checks panic (they are tests): `unwrap_used` is allowed here.
#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::future::Future;

use serde_json::{Value, json};

#[cfg(doc)]
use crate::Backend;
use crate::{
    CollectionSpec, DataStore, Filter, IndexSpec, Op, OpResult, PutMode, Query, Sort, StoreError,
};

/// What a conformance check runs on: a data store on a fresh database, and what is
/// done with it once the check passed (close it; remove a file or a schema).
pub trait Fixture {
    /// The store the check uses.
    fn data_store(&self) -> &DataStore;
    /// Closes the store and removes what the test created.
    fn finish(self) -> impl Future<Output = ()>;
}

/// A bare store is closed after the check; its database is left as it is.
impl Fixture for DataStore {
    fn data_store(&self) -> &DataStore {
        self
    }

    async fn finish(self) {
        self.store().close().await;
    }
}

/// Runs every check of [`conformance`](crate::conformance) as a `#[tokio::test]`
/// (multi-threaded, two workers: the calling crate's tokio needs `macros` and
/// `rt-multi-thread`), each on the [`Fixture`] that `$make`, an async closure, opens.
/// Invoke it once per backend, in a module of its own: the tests are named after the
/// checks.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@tests $make;
            put_get_and_versions,
            every_filter_operator,
            sort_and_pages_survive_inserts_between_pages,
            descending_and_two_key_sorts,
            projection_and_count,
            unique_indexes_are_typed,
            collections_are_idempotent,
            merge_patch_with_versions,
            transactions_are_all_or_nothing,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = ($make)().await;
                $crate::conformance::$name($crate::conformance::Fixture::data_store(&fixture))
                    .await;
                $crate::conformance::Fixture::finish(fixture).await;
            }
        )*
    };
}

/// Put in each mode, with and without an expected version; get; delete; versions
/// count from 1; unicode, nesting and large integers survive the round trip.
pub async fn put_get_and_versions(ds: &DataStore) {
    ds.create_collection("docs", CollectionSpec::default())
        .await
        .unwrap();
    let put = |id: &'static str, doc: Value, mode, expected| async move {
        ds.put("docs", id, &doc, mode, expected).await
    };
    assert_eq!(
        put("a", json!({"n": 1}), PutMode::Insert, None)
            .await
            .unwrap()
            .version,
        1
    );
    assert!(matches!(
        put("a", json!({"n": 2}), PutMode::Insert, None).await,
        Err(StoreError::AlreadyExists { ref id, .. }) if id == "a"
    ));
    assert_eq!(
        put("a", json!({"n": 2}), PutMode::Replace, None)
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        put("a", json!({"n": 3}), PutMode::Upsert, None)
            .await
            .unwrap()
            .version,
        3
    );
    assert_eq!(
        put("b", json!({"n": 1}), PutMode::Upsert, None)
            .await
            .unwrap()
            .version,
        1
    );
    assert!(matches!(
        put("zz", json!({"n": 1}), PutMode::Replace, None).await,
        Err(StoreError::NotFound { .. })
    ));
    // Conditional writes.
    assert!(matches!(
        put("a", json!({"n": 4}), PutMode::Replace, Some(2)).await,
        Err(StoreError::VersionConflict {
            expected: 2,
            actual: 3,
            ..
        })
    ));
    assert_eq!(
        put("a", json!({"n": 4}), PutMode::Upsert, Some(3))
            .await
            .unwrap()
            .version,
        4
    );
    assert!(matches!(
        put("a", json!({"n": 5}), PutMode::Upsert, Some(0)).await,
        Err(StoreError::VersionConflict {
            expected: 0,
            actual: 4,
            ..
        })
    ));
    assert!(matches!(
        put("c", json!({"n": 5}), PutMode::Upsert, Some(7)).await,
        Err(StoreError::VersionConflict {
            expected: 7,
            actual: 0,
            ..
        })
    ));
    assert_eq!(
        put("c", json!({"n": 5}), PutMode::Upsert, Some(0))
            .await
            .unwrap()
            .version,
        1
    );

    let a = ds.get("docs", "a").await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), a.version, a.doc), ("a", 4, json!({"n": 4})));
    assert_eq!(ds.get("docs", "nope").await.unwrap(), None);

    // Deletes.
    assert!(matches!(
        ds.delete("docs", "a", Some(1)).await,
        Err(StoreError::VersionConflict {
            expected: 1,
            actual: 4,
            ..
        })
    ));
    assert!(ds.delete("docs", "a", Some(4)).await.unwrap());
    assert!(!ds.delete("docs", "a", None).await.unwrap());
    assert!(ds.delete("docs", "b", None).await.unwrap());
    assert_eq!(ds.get("docs", "a").await.unwrap(), None);
    // Unicode and nesting survive the round trip.
    let rich = json!({"t": "ünï ✓ \"q\" \\", "deep": {"a": [1, 2.5, {"b": null}]}, "big": 9007199254740993_i64});
    put("r", rich.clone(), PutMode::Insert, None).await.unwrap();
    assert_eq!(ds.get("docs", "r").await.unwrap().unwrap().doc, rich);
}

async fn seed_filter_docs(ds: &DataStore) {
    ds.create_collection(
        "items",
        CollectionSpec::default().with_index(IndexSpec::new("by_status", &["status"])),
    )
    .await
    .unwrap();
    let docs = [
        (
            "d01",
            json!({"status": "open", "n": 1, "title": "fraud in acct", "meta": {"score": 3, "tags": ["a"]}, "type": "a"}),
        ),
        (
            "d02",
            json!({"status": "open", "n": 1.0, "title": "Fraud alert", "meta": {"score": 7}, "type": "b"}),
        ),
        (
            "d03",
            json!({"status": "closed", "n": "1", "title": "nothing", "meta": {"score": 10}, "type": "c"}),
        ),
        (
            "d04",
            json!({"status": "closed", "n": true, "meta": {"score": "3"}, "type": "a"}),
        ),
        (
            "d05",
            json!({"status": null, "n": 2.5, "title": "defrauded", "meta": {}}),
        ),
        (
            "d06",
            json!({"n": -4, "title": 42, "meta": {"score": 2.5}, "type": "b"}),
        ),
        (
            "d07",
            json!({"status": "open", "n": null, "title": "zebra", "meta": "flat"}),
        ),
        (
            "d08",
            json!({"status": "pending", "n": {"x": 1}, "title": "ábc", "meta": {"score": null}}),
        ),
    ];
    for (id, doc) in docs {
        ds.put("items", id, &doc, PutMode::Insert, None)
            .await
            .unwrap();
    }
}

async fn ids(ds: &DataStore, filter: Value) -> Vec<String> {
    let f = Filter::from_json(&filter).unwrap();
    let page = ds
        .query("items", &Query::filter(f.clone()).limit(100))
        .await
        .unwrap();
    let found: Vec<String> = page.docs.into_iter().map(|d| d.id).collect();
    assert_eq!(
        ds.count("items", &f).await.unwrap(),
        found.len() as u64,
        "count disagrees with query for {filter}"
    );
    found
}

/// Every filter operator, typed (1 matches 1.0, never `"1"` or `true`), on nested
/// and missing fields; `count` agrees with `query` for each.
pub async fn every_filter_operator(ds: &DataStore) {
    seed_filter_docs(ds).await;
    let cases = [
        (
            json!({}),
            vec!["d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08"],
        ),
        (
            json!({"field": "status", "eq": "open"}),
            vec!["d01", "d02", "d07"],
        ),
        // Typed equality: 1 matches 1 and 1.0, never "1" or true.
        (json!({"field": "n", "eq": 1}), vec!["d01", "d02"]),
        (json!({"field": "n", "eq": "1"}), vec!["d03"]),
        (json!({"field": "n", "eq": true}), vec!["d04"]),
        (json!({"field": "n", "eq": null}), vec!["d07"]),
        (json!({"field": "status", "eq": null}), vec!["d05"]),
        // ne is the exact complement of eq, missing fields included.
        (
            json!({"field": "status", "ne": "open"}),
            vec!["d03", "d04", "d05", "d06", "d08"],
        ),
        // Ranges compare numbers with numbers and strings with strings.
        (json!({"field": "n", "gt": 1}), vec!["d05"]),
        (json!({"field": "n", "gte": 1}), vec!["d01", "d02", "d05"]),
        (json!({"field": "n", "lt": 1}), vec!["d06"]),
        (json!({"field": "n", "lte": 1.0}), vec!["d01", "d02", "d06"]),
        (
            json!({"field": "title", "gte": "f", "lt": "z"}),
            vec!["d01", "d03"],
        ),
        (json!({"field": "title", "gt": "zebra"}), vec!["d08"]),
        (json!({"field": "title", "lt": "F"}), Vec::<&str>::new()),
        // Nested fields.
        (
            json!({"field": "meta.score", "gte": 3}),
            vec!["d01", "d02", "d03"],
        ),
        (json!({"field": "meta.score", "eq": "3"}), vec!["d04"]),
        (json!({"field": "meta.tags", "exists": true}), vec!["d01"]),
        (
            json!({"field": "meta.score", "exists": true}),
            vec!["d01", "d02", "d03", "d04", "d06", "d08"],
        ),
        (
            json!({"field": "meta.score", "exists": false}),
            vec!["d05", "d07"],
        ),
        (
            json!({"field": "meta.score.deeper", "exists": true}),
            Vec::<&str>::new(),
        ),
        (
            json!({"field": "type", "in": ["a", "b"]}),
            vec!["d01", "d02", "d04", "d06"],
        ),
        (
            json!({"field": "n", "in": [2.5, "1", null]}),
            vec!["d03", "d05", "d07"],
        ),
        (json!({"field": "type", "in": []}), Vec::<&str>::new()),
        // contains: case-sensitive substring of strings only.
        (
            json!({"field": "title", "contains": "fraud"}),
            vec!["d01", "d05"],
        ),
        (json!({"field": "title", "contains": "Fraud"}), vec!["d02"]),
        (
            json!({"field": "title", "contains": "4"}),
            Vec::<&str>::new(),
        ),
        (json!({"field": "title", "contains": "á"}), vec!["d08"]),
        // Combinators.
        (
            json!({"and": [{"field": "status", "eq": "open"}, {"field": "meta.score", "gte": 3}]}),
            vec!["d01", "d02"],
        ),
        (
            json!({"or": [{"field": "type", "eq": "c"}, {"field": "n", "lt": 0}]}),
            vec!["d03", "d06"],
        ),
        (
            json!({"not": {"field": "type", "exists": true}}),
            vec!["d05", "d07", "d08"],
        ),
        (
            json!({"not": {"field": "meta.score", "gte": 3}}),
            vec!["d04", "d05", "d06", "d07", "d08"],
        ),
        (
            json!({"not": {"not": {"field": "status", "eq": "open"}}}),
            vec!["d01", "d02", "d07"],
        ),
        (
            json!({"and": []}),
            vec!["d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08"],
        ),
        (json!({"or": []}), Vec::<&str>::new()),
        (
            json!({"and": [{"field": "status", "in": ["open", "closed"]}, {"not": {"or": [{"field": "type", "eq": "a"}, {"field": "title", "contains": "zeb"}]}}]}),
            vec!["d02", "d03"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(ids(ds, filter.clone()).await, expected, "filter {filter}");
    }
}

/// The documented total order: absent/null, numbers, strings (code point),
/// booleans, arrays/objects; then id.
fn rank(v: Option<&Value>) -> (u8, f64, String) {
    match v {
        None | Some(Value::Null) => (0, 0.0, String::new()),
        Some(Value::Number(n)) => (1, n.as_f64().unwrap(), String::new()),
        Some(Value::String(s)) => (2, 0.0, s.clone()),
        Some(Value::Bool(b)) => (3, if *b { 1.0 } else { 0.0 }, String::new()),
        Some(_) => (4, 0.0, String::new()),
    }
}

fn cmp_key(a: &(String, Value), b: &(String, Value), field: &str) -> Ordering {
    let (ra, rb) = (rank(a.1.get(field)), rank(b.1.get(field)));
    ra.0.cmp(&rb.0)
        .then(ra.1.partial_cmp(&rb.1).unwrap())
        .then(ra.2.cmp(&rb.2))
}

async fn all_pages(ds: &DataStore, query: Query) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = ds
            .query("ranked", &query.clone().after(cursor))
            .await
            .unwrap();
        assert!(page.docs.len() <= query.limit.unwrap() as usize);
        out.extend(page.docs.into_iter().map(|d| d.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn score_for(i: usize) -> Value {
    match i % 9 {
        0 => json!(i as i64 - 10),
        1 => json!(format!("s{}", 30 - i)),
        2 => Value::Null,
        3 => json!(true),
        4 => json!((i as f64) / 4.0),
        5 => json!(["x"]),
        6 => json!(false),
        7 => json!(3),
        _ => json!("S"),
    }
}

/// Sorting follows the documented total order of JSON values, and keyset pages
/// neither repeat nor skip a document when others are inserted between pages.
pub async fn sort_and_pages_survive_inserts_between_pages(ds: &DataStore) {
    ds.create_collection("ranked", CollectionSpec::default())
        .await
        .unwrap();
    let mut docs = Vec::new();
    for i in 0..30 {
        let mut doc = json!({"i": i});
        if i % 10 != 8 {
            doc["score"] = score_for(i);
        }
        let id = format!("r{i:02}");
        ds.put("ranked", &id, &doc, PutMode::Insert, None)
            .await
            .unwrap();
        docs.push((id, doc));
    }
    let mut expected = docs.clone();
    expected.sort_by(|a, b| cmp_key(a, b, "score").then(a.0.cmp(&b.0)));
    let expected_ids: Vec<String> = expected.iter().map(|d| d.0.clone()).collect();
    let query = Query::default().sort(Sort::asc("score").unwrap()).limit(4);
    assert_eq!(all_pages(ds, query.clone()).await, expected_ids);

    // Page through again, inserting documents between pages: some sort before the
    // cursor, some after. Nothing repeats, nothing that stayed put is skipped, and
    // every insert after the cursor shows up.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut inserted_after = BTreeSet::new();
    let mut round = 0;
    loop {
        let page = ds
            .query("ranked", &query.clone().after(cursor))
            .await
            .unwrap();
        seen.extend(page.docs.iter().map(|d| d.id.clone()));
        let Some(next) = page.next_cursor else { break };
        cursor = Some(next);
        if round < 5 {
            // Far before everything (a null score) and far after (an object).
            let before = format!("a_new{round}");
            ds.put(
                "ranked",
                &before,
                &json!({"score": null}),
                PutMode::Insert,
                None,
            )
            .await
            .unwrap();
            let after = format!("z_new{round}");
            ds.put(
                "ranked",
                &after,
                &json!({"score": {"o": 1}}),
                PutMode::Insert,
                None,
            )
            .await
            .unwrap();
            inserted_after.insert(after);
        }
        round += 1;
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a document came twice: {seen:?}");
    for id in &expected_ids {
        assert!(unique.contains(id), "{id} was skipped");
    }
    for id in &inserted_after {
        assert!(
            unique.contains(id),
            "{id}, inserted after the cursor, was not seen"
        );
    }
    assert!(!unique.iter().any(|id| id.starts_with("a_new")));
}

/// Descending and two-key sorts page in the same order as sorting everything; a
/// cursor made for one sort is refused by another.
pub async fn descending_and_two_key_sorts(ds: &DataStore) {
    ds.create_collection("ranked", CollectionSpec::default())
        .await
        .unwrap();
    let mut docs = Vec::new();
    for i in 0..23 {
        let g = ["x", "y", "z"][i % 3];
        let doc = json!({"g": g, "score": score_for(i)});
        let id = format!("k{i:02}");
        ds.put("ranked", &id, &doc, PutMode::Insert, None)
            .await
            .unwrap();
        docs.push((id, doc));
    }
    let mut expected = docs.clone();
    expected.sort_by(|a, b| cmp_key(b, a, "score").then(a.0.cmp(&b.0)));
    let query = Query::default().sort(Sort::desc("score").unwrap()).limit(5);
    let want: Vec<String> = expected.iter().map(|d| d.0.clone()).collect();
    assert_eq!(all_pages(ds, query).await, want);

    expected.sort_by(|a, b| {
        cmp_key(a, b, "g")
            .then(cmp_key(b, a, "score"))
            .then(a.0.cmp(&b.0))
    });
    let query = Query::default()
        .sort(Sort::asc("g").unwrap())
        .sort(Sort::desc("score").unwrap())
        .limit(3);
    let want: Vec<String> = expected.iter().map(|d| d.0.clone()).collect();
    assert_eq!(all_pages(ds, query.clone()).await, want);
    // A cursor made for one sort is refused by another.
    let page = ds.query("ranked", &query).await.unwrap();
    let other = Query::default()
        .sort(Sort::asc("g").unwrap())
        .after(page.next_cursor);
    assert!(matches!(
        ds.query("ranked", &other).await,
        Err(StoreError::InvalidArgument { ref field, .. }) if field == "cursor"
    ));
}

/// Projections keep only the named fields (the cursor is still cut from the whole
/// document); `count` counts every document.
pub async fn projection_and_count(ds: &DataStore) {
    seed_filter_docs(ds).await;
    let q = Query::filter(Filter::from_json(&json!({"field": "status", "eq": "open"})).unwrap())
        .project(&["title", "meta.score", "nope"])
        .unwrap()
        .sort(Sort::desc("meta.score").unwrap())
        .limit(2);
    let page = ds.query("items", &q).await.unwrap();
    let docs: Vec<Value> = page.docs.iter().map(|d| d.doc.clone()).collect();
    assert_eq!(
        docs,
        vec![
            json!({"title": "Fraud alert", "meta": {"score": 7}}),
            json!({"title": "fraud in acct", "meta": {"score": 3}}),
        ]
    );
    // The cursor was cut from the whole document, so the next page still works.
    let next = ds
        .query("items", &q.clone().after(page.next_cursor))
        .await
        .unwrap();
    assert_eq!(next.docs.len(), 1);
    assert_eq!(next.docs[0].doc, json!({"title": "zebra"}));
    assert_eq!(next.next_cursor, None);
    assert_eq!(ds.count("items", &Filter::All).await.unwrap(), 8);
}

/// A unique index refuses a taken key (typed: `5` and `"5"` differ) on insert and
/// update, and lets missing and null keys repeat.
pub async fn unique_indexes_are_typed(ds: &DataStore) {
    let spec = CollectionSpec::default()
        .with_index(IndexSpec::new("by_email", &["contact.email"]).unique())
        .with_index(IndexSpec::new("by_team", &["team", "role"]));
    ds.create_collection("users", spec).await.unwrap();
    let put = |id: &'static str, doc: Value| async move {
        ds.put("users", id, &doc, PutMode::Upsert, None).await
    };
    put(
        "u1",
        json!({"contact": {"email": "a@x"}, "team": "t", "role": "r"}),
    )
    .await
    .unwrap();
    put(
        "u2",
        json!({"contact": {"email": "b@x"}, "team": "t", "role": "r"}),
    )
    .await
    .unwrap();
    let dup = put("u3", json!({"contact": {"email": "a@x"}})).await;
    assert!(
        matches!(dup, Err(StoreError::UniqueViolation { ref collection, ref index })
            if collection == "users" && index == "by_email"),
        "{dup:?}"
    );
    // Updating into a taken key is refused too; the old value stays.
    let taken = put("u2", json!({"contact": {"email": "a@x"}})).await;
    assert!(matches!(taken, Err(StoreError::UniqueViolation { .. })));
    assert_eq!(
        ds.get("users", "u2").await.unwrap().unwrap().doc["contact"]["email"],
        json!("b@x")
    );
    // Missing and null keys never conflict.
    put("n1", json!({"contact": {}})).await.unwrap();
    put("n2", json!({"contact": {}})).await.unwrap();
    put("n3", json!({"contact": {"email": null}}))
        .await
        .unwrap();
    put("n4", json!({"contact": {"email": null}}))
        .await
        .unwrap();
    // A number and a string with the same text are different keys.
    put("s1", json!({"contact": {"email": 5}})).await.unwrap();
    put("s2", json!({"contact": {"email": "5"}})).await.unwrap();
    // The index serves equality lookups.
    let f = Filter::from_json(&json!({"field": "contact.email", "eq": "b@x"})).unwrap();
    assert_eq!(ds.count("users", &f).await.unwrap(), 1);
}

/// Creating a collection again with the same spec is a no-op, with another spec an
/// error; a second DataStore on the same database finds it.
pub async fn collections_are_idempotent(ds: &DataStore) {
    let spec = CollectionSpec::default().with_index(IndexSpec::new("by_a", &["a"]));
    assert!(ds.create_collection("c", spec.clone()).await.unwrap());
    assert!(!ds.create_collection("c", spec.clone()).await.unwrap());
    assert!(matches!(
        ds.create_collection("c", CollectionSpec::default()).await,
        Err(StoreError::CollectionExists { ref name }) if name == "c"
    ));
    assert_eq!(ds.collection_spec("c").await.unwrap(), spec);
    // A second DataStore on the same database finds the collection.
    let other = DataStore::new(ds.store().clone());
    other
        .put("c", "x", &json!({"a": 1}), PutMode::Insert, None)
        .await
        .unwrap();
    assert_eq!(ds.get("c", "x").await.unwrap().unwrap().version, 1);
}

/// Merge patches (RFC 7396) bump the version, honour an expected version, and are
/// refused when they would leave an empty document.
pub async fn merge_patch_with_versions(ds: &DataStore) {
    ds.create_collection("p", CollectionSpec::default())
        .await
        .unwrap();
    ds.put(
        "p",
        "a",
        &json!({"name": "x", "meta": {"k": 1, "drop": true}, "tags": [1]}),
        PutMode::Insert,
        None,
    )
    .await
    .unwrap();
    let stored = ds
        .patch(
            "p",
            "a",
            &json!({"meta": {"drop": null, "new": "v"}, "tags": [2, 3]}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(
        ds.get("p", "a").await.unwrap().unwrap().doc,
        json!({"name": "x", "meta": {"k": 1, "new": "v"}, "tags": [2, 3]})
    );
    assert!(matches!(
        ds.patch("p", "a", &json!({"name": "y"}), Some(1)).await,
        Err(StoreError::VersionConflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    assert_eq!(
        ds.patch("p", "a", &json!({"name": "y"}), Some(2))
            .await
            .unwrap()
            .version,
        3
    );
    assert!(matches!(
        ds.patch("p", "missing", &json!({"a": 1}), None).await,
        Err(StoreError::NotFound { .. })
    ));
    // A patch that would leave an empty document is refused, and nothing changes.
    assert!(matches!(
        ds.patch(
            "p",
            "a",
            &json!({"name": null, "meta": null, "tags": null}),
            None
        )
        .await,
        Err(StoreError::InvalidDocument { .. })
    ));
    assert_eq!(ds.get("p", "a").await.unwrap().unwrap().version, 3);
}

/// A transaction of several operations commits all or nothing (a version conflict or
/// a unique violation rolls back what came before), sees its own writes, and is
/// counted in the metrics.
pub async fn transactions_are_all_or_nothing(ds: &DataStore) {
    ds.create_collection(
        "acct",
        CollectionSpec::default().with_index(IndexSpec::new("by_no", &["no"]).unique()),
    )
    .await
    .unwrap();
    ds.create_collection("log", CollectionSpec::default())
        .await
        .unwrap();
    ds.put(
        "acct",
        "a",
        &json!({"no": 1, "bal": 100}),
        PutMode::Insert,
        None,
    )
    .await
    .unwrap();
    ds.put(
        "acct",
        "b",
        &json!({"no": 2, "bal": 0}),
        PutMode::Insert,
        None,
    )
    .await
    .unwrap();

    let put = |collection: &str, id: &str, doc: Value, expected: Option<u64>| Op::Put {
        collection: collection.to_owned(),
        id: id.to_owned(),
        doc,
        mode: PutMode::Upsert,
        expected_version: expected,
    };
    let results = ds
        .transaction(vec![
            put("acct", "a", json!({"no": 1, "bal": 60}), Some(1)),
            Op::Patch {
                collection: "acct".into(),
                id: "b".into(),
                patch: json!({"bal": 40}),
                expected_version: Some(1),
            },
            put(
                "log",
                "t1",
                json!({"from": "a", "to": "b", "amount": 40}),
                None,
            ),
            Op::Get {
                collection: "acct".into(),
                id: "b".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], OpResult::Put(s) if s.version == 2));
    assert!(matches!(&results[1], OpResult::Patch(s) if s.version == 2));
    // A get inside the transaction sees the transaction's own writes.
    assert!(matches!(&results[3], OpResult::Get { doc: Some(d) } if d.doc["bal"] == json!(40)));

    // A failing operation rolls back the ones before it.
    let failed = ds
        .transaction(vec![
            put("acct", "a", json!({"no": 1, "bal": 0}), Some(2)),
            put("log", "t2", json!({"amount": 60}), None),
            Op::Delete {
                collection: "acct".into(),
                id: "b".into(),
                expected_version: Some(1),
            },
        ])
        .await;
    match failed {
        Err(StoreError::Transaction { index: 2, source }) => {
            assert!(matches!(
                *source,
                StoreError::VersionConflict {
                    expected: 1,
                    actual: 2,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ds.get("acct", "a").await.unwrap().unwrap().doc["bal"],
        json!(60)
    );
    assert_eq!(ds.get("log", "t2").await.unwrap(), None);

    // So does a unique violation in the middle.
    let failed = ds
        .transaction(vec![
            put("log", "t3", json!({"x": 1}), None),
            put("acct", "c", json!({"no": 1}), None),
        ])
        .await;
    assert!(matches!(
        failed,
        Err(StoreError::Transaction { index: 1, ref source })
            if matches!(**source, StoreError::UniqueViolation { ref index, .. } if index == "by_no")
    ));
    assert_eq!(ds.get("log", "t3").await.unwrap(), None);
    // An unknown collection is found before anything runs.
    assert!(matches!(
        ds.transaction(vec![put("nope", "x", json!({"a": 1}), None)]).await,
        Err(StoreError::Transaction { index: 0, ref source })
            if matches!(**source, StoreError::UnknownCollection { .. })
    ));
    // Two collections were created in a transaction each, then one transfer.
    assert_eq!(ds.store().metrics().transaction_count(true), 3);
    assert_eq!(ds.store().metrics().transaction_count(false), 2);
}
