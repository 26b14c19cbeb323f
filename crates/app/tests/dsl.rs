//! The command language on a whole node, over JSON-RPC: `dsl.check` and `dsl.run`
//! with the DataStore on SQLite and on PostgreSQL (same results), transactions all
//! or nothing, and the error scenarios, each a typed error with nothing half-done:
//! malformed syntax, empty input, a program too large, an unknown verb, a failing
//! call, many failing programs beside succeeding ones.

mod support;

use plexus_client::{Client, ClientError};
use serde_json::{Value, json};
use support::Served;

/// The program every backend runs: a collection, a transaction of two cases, a
/// read bound with `let`, a patch, a query.
const PROGRAM: &str = r#"
; the case pipeline on the DataStore
(datastore.create_collection :name "cases")
(transaction
  (datastore.put :collection "cases" :id "C-1" :doc {:case_type "kyc" :client "ACME" :state "open"})
  (datastore.put :collection "cases" :id "C-2" :doc {:case_type "fraud" :amount 12.5 :state "open"}))
(let [c1 (datastore.get :collection "cases" :id "C-1")
      closed (datastore.patch :collection "cases" :id "C-2" :patch {:state "closed"})]
  {:first c1 :closed closed
   :open (datastore.count :collection "cases" :filter {:field "state" :eq "open"})
   :all (datastore.query :collection "cases" :sort [{:field "case_type"}])})
"#;

async fn run(client: &Client, source: &str) -> Result<Value, ClientError> {
    client.call("dsl.run", json!({"source": source})).await
}

/// The error's `data`, for a call that must fail.
async fn refused(client: &Client, source: &str) -> Value {
    match run(client, source).await {
        Err(ClientError::Rpc { data, .. }) => data.unwrap_or_default(),
        other => panic!("the program was not refused: {other:?}"),
    }
}

async fn get(client: &Client, id: &str) -> Value {
    client
        .call("datastore.get", json!({"collection": "cases", "id": id}))
        .await
        .expect("datastore.get")
}

async fn the_program(served: &Served) -> Value {
    let client = served.client();
    let ran = run(&client, PROGRAM).await.expect("the program runs");
    assert_eq!(ran["calls"], 6, "{ran}");
    assert!(
        ran["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    ran["value"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_gives_the_same_results_on_sqlite_and_postgres() {
    let sqlite = Served::start("dsl-sqlite", "", "").await;
    let on_sqlite = the_program(&sqlite).await;
    sqlite.stop().await;

    let url = std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("dsl_{}", std::process::id());
    let pg = Served::start(
        "dsl-postgres",
        "",
        &format!("[store]\nurl = \"{url}\"\nschema = \"{schema}\"\n"),
    )
    .await;
    let on_postgres = the_program(&pg).await;
    pg.stop().await;

    assert_eq!(on_sqlite, on_postgres);
    assert_eq!(on_sqlite["first"]["doc"]["client"], "ACME");
    assert_eq!(on_sqlite["closed"]["version"], 2);
    assert_eq!(on_sqlite["open"]["count"], 1);
    assert_eq!(on_sqlite["all"]["docs"][0]["doc"]["amount"], 12.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_runs_unless_the_whole_program_checks_and_errors_are_typed() {
    let node = Served::start("dsl-errors", "", "[dsl]\nmax_source_bytes = 4096\n").await;
    let client = node.client();
    run(&client, "(datastore.create_collection :name \"cases\")")
        .await
        .expect("a collection");

    // An unknown verb after a good form: the good form does not run.
    let source = "(datastore.put :collection \"cases\" :id \"X-1\" :doc {:a 1})\n(case.craete :case-id \"X\")";
    let data = refused(&client, source).await;
    assert_eq!(data["detail"]["kind"], "rejected", "{data}");
    let error = &data["detail"]["errors"][0];
    assert_eq!(
        (
            error["code"].as_str(),
            error["line"].as_u64(),
            error["column"].as_u64()
        ),
        (Some("unknown_verb"), Some(2), Some(2))
    );
    assert!(
        error["rendered"]
            .as_str()
            .unwrap_or_default()
            .contains("(case.craete")
    );
    assert_eq!(get(&client, "X-1").await, Value::Null, "nothing ran");

    // dsl.check says the same without running anything.
    let checked = client
        .call("dsl.check", json!({"source": source, "name": "cases.plx"}))
        .await
        .expect("dsl.check");
    assert_eq!(checked["ok"], false);
    assert!(
        checked["errors"][0]["rendered"]
            .as_str()
            .unwrap_or_default()
            .contains("cases.plx:2:2")
    );

    // Params its schema refuses, every one reported.
    let data = refused(
        &client,
        "(datastore.put :collection \"Bad Name\" :id \"\" :doc {:a 1} :colour 1)",
    )
    .await;
    let codes: Vec<_> = data["detail"]["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| e["code"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(codes.len(), 3, "{data}");
    assert!(codes.iter().all(|c| c == "invalid_params"));

    // Malformed syntax, empty input, a program too large.
    for (source, code) in [
        ("(datastore.get :collection \"cases\" :id \"a\"", "syntax"),
        ("", "empty"),
        ("   ; nothing but a comment\n", "empty"),
        (
            &"(datastore.count :collection \"cases\")\n".repeat(200),
            "too_large",
        ),
    ] {
        let data = refused(&client, source).await;
        assert_eq!(data["detail"]["errors"][0]["code"], code, "{data}");
    }

    // A failing transaction leaves nothing: the first put is not there.
    let data = refused(
        &client,
        "(transaction\n (datastore.put :collection \"cases\" :id \"T-1\" :doc {:a 1})\n (datastore.put :collection \"cases\" :id \"T-2\" :doc {:a 2} :expected_version 7))",
    )
    .await;
    assert_eq!(data["detail"]["kind"], "call_failed", "{data}");
    assert_eq!(data["detail"]["method"], "datastore.transaction");
    assert_eq!(
        (
            data["detail"]["line"].as_u64(),
            data["detail"]["completed_forms"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(get(&client, "T-1").await, Value::Null, "rolled back");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_failing_programs_beside_succeeding_ones() {
    let node = Served::start("dsl-concurrent", "", "").await;
    let client = node.client();
    run(&client, "(datastore.create_collection :name \"cases\")")
        .await
        .expect("a collection");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let source = match i % 4 {
                0 | 1 => format!("(datastore.put :collection \"cases\" :id \"ok-{i}\" :doc {{:n {i}}})"),
                // Refused before it runs.
                2 => format!("(datastore.put :collection \"cases\" :id \"bad-{i}\" :doc {{:n {i}}})\n(datastore.pot :id 1)"),
                // Fails when it runs: a transaction whose second write conflicts.
                _ => format!("(transaction (datastore.put :collection \"cases\" :id \"bad-{i}\" :doc {{:n {i}}}) (datastore.delete :collection \"cases\" :id \"none\" :expected_version 3))"),
            };
            (i, run(&client, &source).await)
        }));
    }
    for task in tasks {
        let (i, result) = task.await.expect("the task");
        assert_eq!(result.is_ok(), i % 4 < 2, "program {i}: {result:?}");
    }
    for i in 0..40 {
        let id = if i % 4 < 2 {
            format!("ok-{i}")
        } else {
            format!("bad-{i}")
        };
        assert_eq!(get(&client, &id).await.is_null(), i % 4 >= 2, "{id}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_does_only_what_its_callers_token_allows() {
    const READER: &str = "dsl-reader-token-0123456789";
    let tokens = format!(
        "[[gateway.tokens]]\nname = \"reader\"\ntoken = \"{READER}\"\nscopes = [\"call:dsl.*\", \"call:datastore.get\"]\n"
    );
    let node = Served::start("dsl-scopes", "", &tokens).await;
    let url = format!("http://{}", node.addr);
    let reader = Client::new(&url, Some(READER.to_owned())).expect("a client");
    // Reading is allowed; writing is refused by the check, before anything runs.
    let source = "(datastore.get :collection \"cases\" :id \"S-1\")\n(datastore.put :collection \"cases\" :id \"S-1\" :doc {:a 1})";
    let data = refused(&reader, source).await;
    let errors = &data["detail"]["errors"];
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{data}");
    assert_eq!(errors[0]["code"], "forbidden");
    assert_eq!(
        (errors[0]["line"].as_u64(), errors[0]["column"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(
        errors[0]["help"]
            .as_str()
            .unwrap_or_default()
            .contains("call:datastore.put")
    );
    let checked = reader
        .call(
            "dsl.check",
            json!({"source": "(datastore.get :collection \"cases\" :id \"S-1\")"}),
        )
        .await
        .expect("dsl.check");
    assert_eq!(checked["ok"], true, "{checked}");
    let verbs = reader
        .call("dsl.verbs", json!({}))
        .await
        .expect("dsl.verbs");
    let names: Vec<_> = verbs["verbs"]
        .as_array()
        .map(|v| v.iter().map(|v| v["method"].clone()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&json!("datastore.get")) && !names.contains(&json!("datastore.put")),
        "{names:?}"
    );
    node.stop().await;
}

/// The database lost (connections cut and refused) and then silent (a black
/// hole): a program fails with a typed error naming the form, and its transaction
/// leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_silent_database_fails_the_program_with_nothing_half_done() {
    use plexus_faultproxy::{FaultProxy, Mode};
    let (upstream, _) = plexus_store::testing::postgres_through(None).await;
    let proxy = FaultProxy::start(upstream).await.expect("the proxy");
    let (_, url) = plexus_store::testing::postgres_through(Some(proxy.addr())).await;
    let schema = format!("dsl_fault_{}", std::process::id());
    let node = Served::start(
        "dsl-fault",
        "",
        &format!("[store]\nurl = \"{url}\"\nschema = \"{schema}\"\nconnect_timeout_ms = 300\nacquire_timeout_ms = 500\n[dsl]\nmax_duration_ms = 3000\n"),
    )
    .await;
    let client = node.client();
    run(&client, "(datastore.create_collection :name \"cases\")")
        .await
        .expect("a collection");
    let program = "(datastore.count :collection \"cases\")\n(transaction\n (datastore.put :collection \"cases\" :id \"F-1\" :doc {:a 1})\n (datastore.put :collection \"cases\" :id \"F-2\" :doc {:a 2}))";
    for mode in [Mode::Down, Mode::Blackhole] {
        proxy.set_mode(mode);
        let data = refused(&client, program).await;
        let detail = &data["detail"];
        assert!(
            detail["kind"] == "timeout"
                || (detail["kind"] == "call_failed" && detail["error"] == "unavailable"),
            "{mode:?}: {data}"
        );
        assert_eq!(detail["line"], 1, "{mode:?}: {data}");
        proxy.set_mode(Mode::Forward);
    }
    // Back: the program runs whole, and the failed runs left nothing behind.
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ran) = run(&client, "(datastore.count :collection \"cases\")").await {
            again = Some(ran);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(again.expect("the database is back")["value"]["count"], 0);
    node.stop().await;
}
