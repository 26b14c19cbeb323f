//! The Jobs family in a whole node with its default configuration, reached over
//! JSON-RPC: a job enqueued through `jobs.enqueue` is a deferred `datastore.put`
//! that runs through the call path and writes the document; a bad enqueue is
//! refused naming the field; `jobs.stats` counts the completed job.

mod support;

use std::time::Duration;

use plexus_client::ClientError;
use serde_json::json;
use support::Served;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_a_deferred_call_on_a_served_node() {
    let node = Served::start("jobs", "", "").await;
    let client = node.client();
    client
        .call("datastore.create_collection", json!({"name": "notes"}))
        .await
        .expect("datastore.create_collection");
    let mut completed = node
        .node
        .bus()
        .subscribe(
            "jobs.mail.completed",
            plexus_bus::SubscribeOptions::default(),
        )
        .expect("subscribe");

    let put = json!({"collection": "notes", "id": "n1", "doc": {"text": "later"}});
    let answer = client
        .call(
            "jobs.enqueue",
            json!({"queue": "mail", "target": "datastore.put", "params": put}),
        )
        .await
        .expect("jobs.enqueue");
    let id = answer["id"].as_i64().expect("an id");
    let event = tokio::time::timeout(Duration::from_secs(20), completed.recv())
        .await
        .expect("the job completes")
        .expect("the bus is open");
    let event = event.payload().decode::<serde_json::Value>().expect("JSON");
    assert_eq!(event["id"], id);

    let doc = client
        .call("datastore.get", json!({"collection": "notes", "id": "n1"}))
        .await
        .expect("datastore.get");
    assert!(doc.to_string().contains("later"), "{doc}");
    let job = client
        .call("jobs.get", json!({"id": id}))
        .await
        .expect("jobs.get");
    assert_eq!(job["state"], "completed");
    assert_eq!(job["attempt"], 1);

    match client
        .call(
            "jobs.enqueue",
            json!({"target": "datastore.put", "params": {"collection": "notes", "id": "n2"}}),
        )
        .await
    {
        Err(ClientError::Rpc { data, .. }) => {
            let data = data.unwrap_or_default();
            assert_eq!(data["field"], "/params/doc", "{data}");
        }
        other => panic!("params missing a field were accepted: {other:?}"),
    }
    let stats = client
        .call("jobs.stats", json!({"queue": "mail"}))
        .await
        .expect("jobs.stats");
    assert_eq!(stats["queues"][0]["completed"], 1, "{stats}");
    node.stop().await;
}
