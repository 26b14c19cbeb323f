//! The family door: `[jobs]` opens the `jobs` service on its SQLite file, and a
//! job enqueued through the call path runs a method of the node.

use plexus_jobs::JobsFamily;
use plexus_node::family::{Family, NodeSection};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_section_opens_the_service() {
    let dir = std::env::temp_dir().join(format!("plexus-jobs-family-{}", std::process::id()));
    let node = NodeSection {
        data_dir: dir.clone(),
        ..NodeSection::default()
    };
    let parts = JobsFamily.open(None, &node).await.unwrap();
    let names: Vec<String> = parts
        .services
        .iter()
        .map(|s| s.descriptor().name.to_string())
        .collect();
    assert_eq!(names, ["jobs"]);
    assert!(
        dir.join("plexus.db").exists(),
        "jobs live in the node's SQLite file"
    );

    let off = json!({"enabled": false});
    assert!(
        JobsFamily
            .open(Some(&off), &node)
            .await
            .unwrap()
            .services
            .is_empty()
    );
    let bad = json!({"lease_ms": 1});
    let Err(err) = JobsFamily.open(Some(&bad), &node).await else {
        panic!("lease_ms = 1 was accepted");
    };
    assert!(err.to_string().contains("jobs.lease_ms"), "{err}");
}
