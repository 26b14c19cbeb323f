//! The seed scenario: 20 concurrent clients run 1,000 mixed operations (50 each)
//! on both backends, lose nothing, and end in a consistent state, checked by
//! re-reading everything.

use std::collections::BTreeMap;
use std::time::Duration;

use plexus_store::{
    CollectionSpec, DataStore, Filter, Op, PutMode, Query, StoreError, merge_patch,
};
use serde_json::{Value, json};

crate::on_both_backends!(twenty_clients_lose_nothing);

const CLIENTS: usize = 20;
const OPS_PER_CLIENT: usize = 50;
const COUNTERS: usize = 4;
const ACCOUNTS: usize = 5;
const OPENING_BALANCE: i64 = 100;

/// A small deterministic generator, so a failure replays the same operations.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

#[derive(Default)]
struct ClientOutcome {
    /// What this client's own documents should hold: id → (doc, version).
    own: BTreeMap<String, (Value, u64)>,
    /// Successful increments per shared counter.
    increments: [u64; COUNTERS],
    transfers: u64,
}

async fn increment(ds: &DataStore, counter: &str) {
    for _ in 0..1_000 {
        let current = ds.get("shared", counter).await.unwrap().unwrap();
        let n = current.doc["n"].as_i64().unwrap();
        match ds
            .put(
                "shared",
                counter,
                &json!({"n": n + 1}),
                PutMode::Replace,
                Some(current.version),
            )
            .await
        {
            Ok(_) => return,
            Err(StoreError::VersionConflict { .. } | StoreError::Busy { .. }) => continue,
            Err(e) => panic!("increment failed: {e}"),
        }
    }
    panic!("increment of {counter} never won a race");
}

async fn transfer(ds: &DataStore, from: &str, to: &str, amount: i64) {
    for _ in 0..1_000 {
        let a = ds.get("shared", from).await.unwrap().unwrap();
        let b = ds.get("shared", to).await.unwrap().unwrap();
        let bal = |d: &plexus_store::Document| d.doc["bal"].as_i64().unwrap();
        let ops = vec![
            Op::Put {
                collection: "shared".into(),
                id: from.into(),
                doc: json!({"bal": bal(&a) - amount}),
                mode: PutMode::Replace,
                expected_version: Some(a.version),
            },
            Op::Put {
                collection: "shared".into(),
                id: to.into(),
                doc: json!({"bal": bal(&b) + amount}),
                mode: PutMode::Replace,
                expected_version: Some(b.version),
            },
        ];
        match ds.transaction(ops).await {
            Ok(_) => return,
            Err(e)
                if e.is_retryable() || matches!(e.root(), StoreError::VersionConflict { .. }) =>
            {
                continue;
            }
            Err(e) => panic!("transfer failed: {e}"),
        }
    }
    panic!("transfer {from}->{to} never won a race");
}

async fn client(ds: DataStore, c: usize) -> ClientOutcome {
    let mut rng = Lcg(c as u64 + 1);
    let mut out = ClientOutcome::default();
    for step in 0..OPS_PER_CLIENT {
        let key = format!("c{c}_k{}", rng.next(5));
        match rng.next(7) {
            0 => {
                let doc = json!({"c": c, "step": step, "nested": {"s": format!("v{step}")}});
                let stored = ds
                    .put("own", &key, &doc, PutMode::Upsert, None)
                    .await
                    .unwrap();
                let before = out.own.get(&key).map_or(0, |(_, v)| *v);
                assert_eq!(stored.version, before + 1, "{key}");
                out.own.insert(key, (doc, stored.version));
            }
            1 => {
                let got = ds.get("own", &key).await.unwrap();
                let want = out.own.get(&key);
                assert_eq!(got.map(|d| (d.doc, d.version)).as_ref(), want, "{key}");
            }
            2 => {
                let patch = json!({"patched": step, "nested": {"s": null}});
                match ds.patch("own", &key, &patch, None).await {
                    Ok(stored) => {
                        let (doc, version) = out.own.get_mut(&key).unwrap();
                        merge_patch(doc, &patch);
                        *version += 1;
                        assert_eq!(stored.version, *version);
                    }
                    Err(StoreError::NotFound { .. }) => assert!(!out.own.contains_key(&key)),
                    Err(e) => panic!("patch {key}: {e}"),
                }
            }
            3 => {
                let deleted = ds.delete("own", &key, None).await.unwrap();
                assert_eq!(deleted, out.own.remove(&key).is_some(), "{key}");
            }
            4 => {
                let j = rng.next(COUNTERS);
                increment(&ds, &format!("counter{j}")).await;
                out.increments[j] += 1;
            }
            5 => {
                let from = rng.next(ACCOUNTS);
                let to = (from + 1 + rng.next(ACCOUNTS - 1)) % ACCOUNTS;
                transfer(
                    &ds,
                    &format!("acct{from}"),
                    &format!("acct{to}"),
                    1 + rng.next(20) as i64,
                )
                .await;
                out.transfers += 1;
            }
            _ => {
                let mine = Filter::from_json(&json!({"field": "c", "eq": c})).unwrap();
                let page = ds
                    .query("own", &Query::filter(mine).limit(10))
                    .await
                    .unwrap();
                let ids: Vec<String> = page.docs.into_iter().map(|d| d.id).collect();
                let want: Vec<String> = out.own.keys().cloned().collect();
                assert_eq!(ids, want, "client {c}");
            }
        }
    }
    out
}

async fn twenty_clients_lose_nothing(ds: &DataStore) {
    ds.create_collection("own", CollectionSpec::default())
        .await
        .unwrap();
    ds.create_collection("shared", CollectionSpec::default())
        .await
        .unwrap();
    for j in 0..COUNTERS {
        ds.put(
            "shared",
            &format!("counter{j}"),
            &json!({"n": 0}),
            PutMode::Insert,
            None,
        )
        .await
        .unwrap();
    }
    for a in 0..ACCOUNTS {
        ds.put(
            "shared",
            &format!("acct{a}"),
            &json!({"bal": OPENING_BALANCE}),
            PutMode::Insert,
            None,
        )
        .await
        .unwrap();
    }
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client(ds.clone(), c)))
        .collect();
    let outcomes = tokio::time::timeout(Duration::from_secs(240), async {
        let mut outcomes = Vec::new();
        for h in handles {
            outcomes.push(h.await.unwrap());
        }
        outcomes
    })
    .await
    .expect("the clients finished in time");

    // Re-read everything.
    let mut expected_own = 0;
    for (c, out) in outcomes.iter().enumerate() {
        for k in 0..5 {
            let key = format!("c{c}_k{k}");
            let got = ds
                .get("own", &key)
                .await
                .unwrap()
                .map(|d| (d.doc, d.version));
            assert_eq!(got.as_ref(), out.own.get(&key), "{key}");
        }
        expected_own += out.own.len() as u64;
    }
    assert_eq!(ds.count("own", &Filter::All).await.unwrap(), expected_own);
    for j in 0..COUNTERS {
        let want: u64 = outcomes.iter().map(|o| o.increments[j]).sum();
        let got = ds
            .get("shared", &format!("counter{j}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.doc["n"], json!(want), "counter{j}");
    }
    let total: i64 = {
        let mut sum = 0;
        for a in 0..ACCOUNTS {
            let d = ds
                .get("shared", &format!("acct{a}"))
                .await
                .unwrap()
                .unwrap();
            sum += d.doc["bal"].as_i64().unwrap();
        }
        sum
    };
    assert_eq!(
        total,
        OPENING_BALANCE * ACCOUNTS as i64,
        "money was created or lost"
    );
    let transfers: u64 = outcomes.iter().map(|o| o.transfers).sum();
    assert!(
        transfers > 0
            && outcomes
                .iter()
                .map(|o| o.increments.iter().sum::<u64>())
                .sum::<u64>()
                > 0
    );
    // Each transfer committed once; the two collections were created in one each.
    assert_eq!(ds.store().metrics().transaction_count(true), transfers + 2);
}
