//! Readers running while changes are applied see whole values of one version,
//! never a mix of two.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use plexus_config::{ConfigOptions, ConfigStore, FieldErrors, Validate};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Pair {
    a: u64,
    b: u64,
    label: String,
}

impl Validate for Pair {
    fn validate(&self) -> Result<(), FieldErrors> {
        Ok(())
    }
}

const CHANGES: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_never_see_a_torn_section() {
    let pair = |i: u64| json!({"pair": {"a": i, "b": i, "label": format!("v{i}")}});
    let store = ConfigStore::new(pair(0), ConfigOptions::default()).unwrap();
    let section = store.register_section::<Pair>("pair").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));

    // Every reader is running before the first change (a loaded machine may not
    // schedule them otherwise), and each reads at least once after the last.
    let started = Arc::new(std::sync::Barrier::new(4));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (section, store, stop, reads, started) = (
                section.clone(),
                store.clone(),
                stop.clone(),
                reads.clone(),
                started.clone(),
            );
            std::thread::spawn(move || {
                let mut last = 0;
                started.wait();
                loop {
                    let stopping = stop.load(Ordering::Relaxed);
                    let value = section.current();
                    assert_eq!(value.a, value.b, "torn section");
                    assert_eq!(value.label, format!("v{}", value.a), "torn section");
                    assert!(value.a >= last, "went back from {last} to {}", value.a);
                    last = value.a;
                    section.read(|p| assert_eq!(p.a, p.b));
                    // The document and its version number are one snapshot too.
                    let current = store.current();
                    assert_eq!(current.document["pair"]["a"], json!(current.version - 1));
                    reads.fetch_add(1, Ordering::Relaxed);
                    if stopping {
                        break;
                    }
                }
                last
            })
        })
        .collect();

    started.wait();
    for i in 1..=CHANGES {
        store.apply(pair(i), "writer", "step").await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() <= CHANGES);
    }
    assert!(reads.load(Ordering::Relaxed) >= 3);
    assert_eq!(section.current().a, CHANGES);
    assert_eq!(store.current_version(), CHANGES + 1);
}
