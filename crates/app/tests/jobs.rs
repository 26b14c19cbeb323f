//! The Jobs family in a whole node with its default configuration, reached over
//! JSON-RPC: a job enqueued through `jobs.enqueue` is a deferred `datastore.put`
//! that runs through the call path and writes the document; a bad enqueue is
//! refused naming the field; `jobs.stats` counts the completed job.

mod support;

use std::time::Duration;

use plexus_client::ClientError;
use serde_json::json;
use support::Served;

/// The node's `jobs.mail.completed` events, from now on.
fn mail_completions(node: &Served) -> plexus_bus::Subscription {
    node.node
        .bus()
        .subscribe(
            "jobs.mail.completed",
            plexus_bus::SubscribeOptions::default(),
        )
        .expect("subscribe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_a_deferred_call_on_a_served_node() {
    let node = Served::start("jobs", "", "").await;
    let client = node.client();
    client
        .call("datastore.create_collection", json!({"name": "notes"}))
        .await
        .expect("datastore.create_collection");
    let mut completed = mail_completions(&node);

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

/// `jobs.transaction` over JSON-RPC: a document and its job commit together; an
/// operation that fails rolls both back; a job whose params fail its target's
/// schema is refused before anything is written; a token that may enqueue but
/// not call `datastore.transaction` is forbidden, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_transaction_commits_the_data_change_and_its_jobs_together() {
    const ADMIN: &str = "admin-token-0123456789abcdef";
    const JOBS_ONLY: &str = "jobs-only-token-0123456789ab";
    let tokens = format!(
        r#"
[[gateway.tokens]]
name = "admin"
token = "{ADMIN}"
scopes = ["admin"]
[[gateway.tokens]]
name = "enqueuer"
token = "{JOBS_ONLY}"
scopes = ["call:jobs.*", "call:datastore.put"]
"#
    );
    let node = Served::start("jobs-tx", "", &tokens).await;
    let url = format!("http://{}", node.addr);
    let admin = plexus_client::Client::new(&url, Some(ADMIN.to_owned())).expect("client");
    let enqueuer = plexus_client::Client::new(&url, Some(JOBS_ONLY.to_owned())).expect("client");
    admin
        .call("datastore.create_collection", json!({"name": "orders"}))
        .await
        .expect("datastore.create_collection");
    let mut completed = mail_completions(&node);
    let receipt = |id: &str| {
        json!({"queue": "mail", "target": "datastore.put",
               "params": {"collection": "orders", "id": format!("receipt-{id}"), "doc": {"for": id}}})
    };

    // Committed: the order and its job.
    let answer = admin
        .call(
            "jobs.transaction",
            json!({"ops": [{"op": "put", "collection": "orders", "id": "o1", "doc": {"total": 5}}],
                   "jobs": [receipt("o1")]}),
        )
        .await
        .expect("jobs.transaction");
    assert_eq!(answer["results"][0]["op"], "put", "{answer}");
    assert_eq!(answer["jobs"][0]["created"], true, "{answer}");
    tokio::time::timeout(Duration::from_secs(20), completed.recv())
        .await
        .expect("the job runs")
        .expect("the bus is open");
    let receipt_doc = admin
        .call(
            "datastore.get",
            json!({"collection": "orders", "id": "receipt-o1"}),
        )
        .await
        .expect("the job wrote its receipt");
    assert!(receipt_doc.to_string().contains("o1"), "{receipt_doc}");

    // An operation fails (a put expecting a version the document does not have):
    // neither the change nor the job.
    let failed = admin
        .call(
            "jobs.transaction",
            json!({"ops": [
                      {"op": "put", "collection": "orders", "id": "o2", "doc": {"total": 7}},
                      {"op": "put", "collection": "orders", "id": "o1", "doc": {"total": 6}, "expected_version": 99}],
                   "jobs": [receipt("o2")]}),
        )
        .await;
    assert!(failed.is_err(), "a failing operation committed: {failed:?}");
    let o2 = admin
        .call("datastore.get", json!({"collection": "orders", "id": "o2"}))
        .await;
    assert!(
        o2.as_ref()
            .map_or(true, |v| v.is_null() || v["doc"].is_null()),
        "the rolled-back put is there: {o2:?}"
    );
    assert_eq!(
        count(&admin, "pending").await + count(&admin, "running").await,
        0
    );
    assert_eq!(
        count(&admin, "completed").await,
        1,
        "only the committed job"
    );

    // A job that can never run is refused, naming its field; nothing written.
    match admin
        .call(
            "jobs.transaction",
            json!({"ops": [{"op": "put", "collection": "orders", "id": "o3", "doc": {}}],
                   "jobs": [{"target": "datastore.put", "params": {"collection": "orders"}}]}),
        )
        .await
    {
        Err(ClientError::Rpc { data, .. }) => {
            let data = data.unwrap_or_default();
            let field = data["field"].as_str().unwrap_or_default();
            assert!(field.starts_with("/jobs/0/params"), "{data}");
        }
        other => panic!("a job failing its schema was accepted: {other:?}"),
    }

    // Allowed to enqueue and to put, not to call datastore.transaction: refused.
    match enqueuer
        .call(
            "jobs.transaction",
            json!({"ops": [{"op": "put", "collection": "orders", "id": "o4", "doc": {}}],
                   "jobs": [receipt("o4")]}),
        )
        .await
    {
        Err(ClientError::Rpc { code, .. }) => assert_eq!(code, -32002, "forbidden"),
        other => panic!("the transaction ran without its scope: {other:?}"),
    }
    for id in ["o3", "o4"] {
        let doc = admin
            .call("datastore.get", json!({"collection": "orders", "id": id}))
            .await;
        assert!(
            doc.as_ref()
                .map_or(true, |v| v.is_null() || v["doc"].is_null()),
            "{id} was written: {doc:?}"
        );
    }
    assert_eq!(
        count(&admin, "pending").await + count(&admin, "running").await,
        0
    );
    node.stop().await;
}

/// How many jobs of the `mail` queue are in `state`.
async fn count(client: &plexus_client::Client, state: &str) -> usize {
    let listed = client
        .call("jobs.list", json!({"queue": "mail", "state": state}))
        .await
        .expect("jobs.list");
    listed["jobs"].as_array().map_or(0, Vec::len)
}
