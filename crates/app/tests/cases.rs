//! The case pipeline of the command language (issue 19's seed scenario) on a whole
//! node: `examples/python-cases/cases.py` serves `case.*` over the node's WebSocket
//! and keeps its cases in the DataStore; one program creates, updates and closes
//! cases through `dsl.run`, on SQLite and on PostgreSQL, with the same results and
//! the same audit trail. Then the error scenarios `dsl.rs` does not hold, each a
//! typed error with nothing half-done: a case refused mid-program, an unreachable
//! database URL, and pool exhaustion.
//!
//! They need `python3` with `websockets` (`pip install -r
//! examples/python-cases/requirements.txt`) and PostgreSQL at
//! `PLEXUS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use plexus_client::{Client, ClientError};
use plexus_store::BackendKind;
use plexus_store::testing::{Place, postgres_url};
use serde_json::{Value, json};
use support::Served;
use tokio::process::{Child, Command};

/// How long a test waits for something it expects.
const PATIENCE: Duration = Duration::from_secs(20);

/// Three cases opened, one updated, one closed, then what they look like.
const PIPELINE: &str = r#"
; the case pipeline
(case.create :case-id "C-1" :case-type "kyc" :client "ACME")
(case.create :case-id "C-2" :case-type "fraud" :client "Globex" :details {:amount 12.5})
(case.create :case-id "C-3" :case-type "aml" :client "Initech")
(case.update :case-id "C-1" :details {:risk "low"} :note "documents received")
(case.close :case-id "C-2" :resolution "no fraud found")
{:open (case.list :state "open")
 :closed (case.list :state "closed")
 :c1 (case.get :case-id "C-1")}
"#;

/// A case refused at line 2 (C-2 is closed): line 1 ran, line 3 did not.
const REFUSED_MIDWAY: &str = r#"(case.update :case-id "C-3" :note "called the client")
(case.update :case-id "C-2" :note "too late")
(case.create :case-id "C-4" :case-type "kyc")"#;

/// The case service, started against `served` and registered.
async fn case_service(served: &Served, instance: &str) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-cases/cases.py");
    let child = Command::new("python3")
        .arg(&script)
        .env("PLEXUS_URL", format!("ws://{}/ws", served.addr))
        .env("CASES_INSTANCE", instance)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs examples/python-cases/cases.py (pip install -r examples/python-cases/requirements.txt)");
    tokio::time::timeout(
        PATIENCE,
        served.node.registry().until_routable(&"case".into(), 1),
    )
    .await
    .expect("the case service registers (python3 with websockets: pip install -r examples/python-cases/requirements.txt)");
    child
}

async fn run(client: &Client, source: &str) -> Result<Value, ClientError> {
    client.call("dsl.run", json!({"source": source})).await
}

/// What the pipeline gives on a node with `store` (a `[store]` section or none),
/// what the audit trail holds of it, and what the program refused midway left.
async fn pipeline(name: &str, store: &str) -> (Value, Value, Value) {
    let served = Served::start(name, "", store).await;
    let mut cases = case_service(&served, &format!("{name}-py")).await;
    let client = served.client();
    let ran = run(&client, PIPELINE).await.expect("the pipeline runs");
    assert_eq!(ran["calls"], 8, "{ran}");

    let audit = client
        .call(
            "audit.query",
            json!({"correlation_id": ran["correlation_id"]}),
        )
        .await
        .expect("audit.query");
    let mut methods: Vec<String> = audit["entries"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["method"].as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    methods.sort();
    // Every DataStore write on the node so far: the service's, made for the program.
    let puts = client
        .call("audit.query", json!({"method": "datastore.put"}))
        .await
        .expect("audit.query");
    let puts = puts["entries"].as_array().map_or(0, Vec::len);

    let refused = match run(&client, REFUSED_MIDWAY).await {
        Err(ClientError::Rpc {
            data: Some(mut data),
            ..
        }) => {
            // Which instance answered differs from node to node.
            data["detail"]["data"]["instance"] = Value::Null;
            data["detail"].clone()
        }
        other => panic!("the closed case was not refused: {other:?}"),
    };
    let c4 = client.call("case.get", json!({"case-id": "C-4"})).await;
    assert!(
        matches!(&c4, Err(ClientError::Rpc { code: 4040, .. })),
        "C-4 was created after the refusal: {c4:?}"
    );
    let c3 = client
        .call("case.get", json!({"case-id": "C-3"}))
        .await
        .expect("C-3");
    let after = json!({"detail": refused, "c3_notes": c3["notes"], "puts": puts});

    cases.kill().await.expect("the case service stops");
    served.stop().await;
    (ran["value"].clone(), json!(methods), after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_pipeline_gives_the_same_results_on_sqlite_and_postgres() {
    let on_sqlite = pipeline("cases-sqlite", "").await;

    let place = Place::new(BackendKind::Postgres);
    let store = format!(
        "[store]\nurl = \"{}\"\nschema = \"{}\"\n",
        postgres_url(),
        place.schema
    );
    let on_postgres = pipeline("cases-postgres", &store).await;
    place.remove().await;

    assert_eq!(on_sqlite, on_postgres);
    let (value, audited, refused) = on_sqlite;
    let open: Vec<_> = value["open"]["cases"]
        .as_array()
        .map(|c| c.iter().map(|c| c["case-id"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(open, [json!("C-1"), json!("C-3")], "{value}");
    assert_eq!(value["closed"]["cases"][0]["resolution"], "no fraud found");
    assert_eq!(value["c1"]["details"], json!({"risk": "low"}));
    assert_eq!(value["c1"]["notes"], json!(["documents received"]));
    assert_eq!(value["c1"]["version"], 2);
    // Every call of the program under its one correlation id, down to the
    // DataStore writes the Python service made for it on its own socket (it passes
    // on the `plexus.correlation_id` it was called with): all 5 of the node's puts.
    for (method, times) in [
        ("dsl.run", 1),
        ("case.create", 3),
        ("case.update", 1),
        ("case.close", 1),
        ("datastore.put", 5),
    ] {
        let n = audited
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| *m == method).count());
        assert_eq!(n, times, "{method}: {audited}");
    }
    // Refused at line 2 with the service's own code; line 1 ran, line 3 did not.
    assert_eq!(refused["detail"]["kind"], "call_failed", "{refused}");
    assert_eq!(refused["detail"]["code"], 4091, "{refused}");
    assert_eq!(
        (
            refused["detail"]["line"].as_u64(),
            refused["detail"]["completed_forms"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(refused["c3_notes"], json!(["called the client"]));
    assert_eq!(refused["puts"], 5, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_url_stops_the_node_from_starting_with_a_typed_error() {
    let dir = support::data_dir("cases-unreachable");
    // Port 1 on loopback: nothing listens there.
    let store = "[store]\nurl = \"postgres://postgres@127.0.0.1:1/test\"\nconnect_timeout_ms = 300\nacquire_timeout_ms = 500\n";
    let started = tokio::time::timeout(
        PATIENCE,
        plexus_app::App::builder()
            .toml(support::config(&dir, "", store))
            .start(),
    )
    .await
    .expect("the node gives up within its bounded wait");
    let Err(error) = started else {
        panic!("a node started on an unreachable database");
    };
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    assert!(!error.is_config(), "{text}");
    assert!(
        text.contains("unavailable") || text.contains("unreachable"),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1:1") || text.contains("store"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One pooled connection, made slow by a fault proxy: programs that wait longer
/// than `acquire_timeout_ms` for it fail with `pool_timeout` at their
/// transaction, which leaves nothing; the one holding it completes whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_fails_the_waiting_programs_whole_beside_the_one_that_runs() {
    use plexus_faultproxy::{FaultProxy, Mode};
    let (upstream, _) = plexus_store::testing::postgres_through(None).await;
    let proxy = FaultProxy::start(upstream).await.expect("the proxy");
    let (_, url) = plexus_store::testing::postgres_through(Some(proxy.addr())).await;
    let place = Place::new(BackendKind::Postgres);
    let served = Served::start(
        "cases-pool",
        "",
        &format!(
            "[store]\nurl = \"{url}\"\nschema = \"{}\"\nmax_connections = 1\nmin_connections = 1\nacquire_timeout_ms = 200\nconnect_timeout_ms = 5000\n",
            place.schema
        ),
    )
    .await;
    let client = served.client();
    run(&client, "(datastore.create_collection :name \"cases\")")
        .await
        .expect("a collection");
    proxy.set_mode(Mode::Delay(Duration::from_millis(150)));
    let programs = (0..6).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            let source = format!(
                "(transaction\n (datastore.put :collection \"cases\" :id \"P-{i}-a\" :doc {{:n {i}}})\n (datastore.put :collection \"cases\" :id \"P-{i}-b\" :doc {{:n {i}}}))"
            );
            (i, run(&client, &source).await)
        })
    });
    let mut outcomes = Vec::new();
    for program in programs.collect::<Vec<_>>() {
        outcomes.push(program.await.expect("the task"));
    }
    proxy.set_mode(Mode::Forward);
    let mut timed_out = 0;
    for (i, outcome) in &outcomes {
        let written = |part: &str| {
            let client = client.clone();
            let id = format!("P-{i}-{part}");
            async move {
                !client
                    .call("datastore.get", json!({"collection": "cases", "id": id}))
                    .await
                    .expect("datastore.get")
                    .is_null()
            }
        };
        let (a, b) = (written("a").await, written("b").await);
        match outcome {
            Ok(_) => assert!(a && b, "program {i} ran but left {a} {b}"),
            Err(ClientError::Rpc {
                data: Some(data), ..
            }) => {
                let detail = &data["detail"];
                assert_eq!(detail["kind"], "call_failed", "{data}");
                assert_eq!(detail["method"], "datastore.transaction", "{data}");
                assert_eq!(detail["data"]["detail"]["kind"], "pool_timeout", "{data}");
                assert!(!a && !b, "program {i} failed but left {a} {b}");
                timed_out += 1;
            }
            Err(other) => panic!("program {i}: {other:?}"),
        }
    }
    assert!(timed_out >= 1, "{outcomes:?}");
    assert!(timed_out < outcomes.len(), "{outcomes:?}");
    served.stop().await;
    place.remove().await;
}
