//! Configuration history in the store: a configuration rebuilt on the same database
//! resumes its versions and rolls back to one made before the restart.

use std::sync::Arc;

use plexus_config::{ConfigStore, HistoryStore};
use plexus_store::{BackendKind, DataStore, StoreHistory};
use serde_json::json;

use crate::support::Place;

plexus_store::on_both!(configuration_versions_survive_a_restart);

const START: &str = "[node]\nname = \"alpha\"\n\n[limits]\nmax = 10\n";

/// A configuration started from [`START`], its history kept in `ds`.
async fn started_from_the_file(ds: &DataStore) -> ConfigStore {
    ConfigStore::builder()
        .toml(START)
        .history(Arc::new(StoreHistory::new(ds.store().clone())))
        .build()
        .await
        .unwrap()
}

async fn configuration_versions_survive_a_restart(kind: BackendKind) {
    let place = Place::new(kind);
    {
        let ds = place.open().await;
        let config = started_from_the_file(&ds).await;
        assert_eq!(config.current_version(), 1);
        config.set("limits.max", json!(20), "ana").await.unwrap();
        config.set("limits.max", json!(30), "bo").await.unwrap();
        assert_eq!(config.current_version(), 3);
        // Another scope in the same database stays apart.
        let other = StoreHistory::new(ds.store().clone()).with_scope("gateway");
        assert!(other.load().await.unwrap().is_empty());
        ds.store().close().await;
    }

    // A new process on the same database, started from the same file.
    let ds = place.open().await;
    let config = started_from_the_file(&ds).await;
    let versions: Vec<u64> = config.history().iter().map(|v| v.version).collect();
    let authors: Vec<String> = config.history().iter().map(|v| v.author.clone()).collect();
    // The start-up document differs from version 3 and wins, recorded as version 4.
    assert_eq!(versions, vec![1, 2, 3, 4]);
    assert_eq!(authors[1..3], ["ana".to_owned(), "bo".to_owned()]);
    assert_eq!(config.get("limits.max").unwrap(), Some(json!(10)));

    // Roll back to a version from before the restart.
    let rolled = config.rollback(3, "cy").await.unwrap();
    assert_eq!(rolled.version, 5);
    assert_eq!(rolled.rollback_of, Some(3));
    assert_eq!(config.get("limits.max").unwrap(), Some(json!(30)));

    // Trimming keeps the newest versions only.
    let trimmed = StoreHistory::new(ds.store().clone()).with_max_versions(2);
    let mut next = config.current();
    next.version = 6;
    trimmed.append(&next).await.unwrap();
    let left: Vec<u64> = trimmed
        .load()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(left, vec![5, 6]);
    ds.store().close().await;
    place.remove().await;
}
