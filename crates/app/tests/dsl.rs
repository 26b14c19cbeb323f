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
async fn a_let_without_a_body_keeps_its_names_for_the_next_program() {
    let served = Served::start("dsl-bindings", "", "").await;
    let client = served.client();
    let first = r#"(datastore.create_collection :name "cases")
(let [c1 (datastore.put :collection "cases" :id "C-1" :doc {:state "open"})])
(datastore.put :collection "cases" :id "C-2" :doc {:after c1})"#;
    let ran = run(&client, first).await.expect("runs");
    // The name is bound for the rest of the program and given back.
    assert_eq!(ran["bound"]["c1"]["version"], 1, "{ran}");
    assert_eq!(get(&client, "C-2").await["doc"]["after"]["version"], 1);

    // The next program gets it through `bindings`: checked as bound, then run.
    let next = json!({"source": r#"(datastore.put :collection "cases" :id "C-3" :doc {:was c1})"#,
                      "bindings": ran["bound"].clone()});
    let checked = client
        .call("dsl.check", next.clone())
        .await
        .expect("checks");
    assert_eq!(checked["ok"], true, "{checked}");
    let again = client.call("dsl.run", next).await.expect("runs");
    assert!(again.get("bound").is_none(), "{again}");
    assert_eq!(get(&client, "C-3").await["doc"]["was"]["version"], 1);

    // Without them the name is unbound, and nothing ran.
    let alone = refused(
        &client,
        r#"(datastore.put :collection "cases" :id "C-4" :doc {:was c1})"#,
    )
    .await;
    assert_eq!(alone["detail"]["kind"], "rejected", "{alone}");
    assert_eq!(get(&client, "C-4").await, Value::Null);
    // A name that could never be written in a program is refused, naming it.
    let bad = client
        .call("dsl.run", json!({"source": "nil", "bindings": {"a.b": 1}}))
        .await;
    match bad {
        Err(ClientError::Rpc {
            code: -32602,
            message,
            ..
        }) => {
            assert!(message.contains("bindings"), "{message}")
        }
        other => panic!("a dotted name was accepted: {other:?}"),
    }
    served.stop().await;
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

/// `dsl.ask` against a fake model on loopback (OpenAI wire): what it proposes is
/// checked like any program, shown, and run only when asked; a refused program is
/// sent back once with its errors; a verb the caller may not call, or garbage, never
/// runs.
mod ask {
    use plexus_client::Client;
    use plexus_client::ClientError;
    use plexus_inference::testing::{Behaviour, FakeProvider, REPLY, Wire};
    use serde_json::{Value, json};

    use super::{Served, get, run};

    const ADMIN: &str = "dsl-ask-admin-token-0123456789";
    const CLERK: &str = "dsl-ask-clerk-token-0123456789";
    const PUT: &str = "(datastore.put :collection \"cases\" :id \"K-1\" :doc {:client \"ACME\" :case_type \"kyc\"})";

    /// A node whose default model is the fake; `admin` may call anything, `clerk`
    /// only asks, reads and counts.
    async fn node(name: &str, fake: &FakeProvider) -> (Served, Client, Client) {
        let extra = format!(
            "[inference.providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n\
             [[inference.models.default]]\nprovider = \"fake\"\nmodel = \"tiny\"\n\
             [[gateway.tokens]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nscopes = [\"admin\"]\n\
             [[gateway.tokens]]\nname = \"clerk\"\ntoken = \"{CLERK}\"\n\
             scopes = [\"call:dsl.*\", \"call:inference.chat\", \"call:datastore.get\", \"call:datastore.count\"]\n",
            fake.base_url()
        );
        let served = Served::start(name, "", &extra).await;
        let url = format!("http://{}", served.addr);
        let admin = Client::new(&url, Some(ADMIN.to_owned())).expect("a client");
        let clerk = Client::new(&url, Some(CLERK.to_owned())).expect("a client");
        run(&admin, "(datastore.create_collection :name \"cases\")")
            .await
            .expect("a collection");
        (served, admin, clerk)
    }

    async fn ask(client: &Client, params: Value) -> Value {
        client
            .call("dsl.ask", params)
            .await
            .expect("dsl.ask answers")
    }

    /// The messages of the fake's last request.
    fn sent(fake: &FakeProvider) -> Vec<Value> {
        fake.last_request()
            .and_then(|(_, body)| body["messages"].as_array().cloned())
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_valid_program_is_shown_and_runs_only_when_asked() {
        let fake = FakeProvider::start(Wire::OpenAi).await.expect("the fake");
        let (served, admin, _) = node("dsl-ask-valid", &fake).await;

        fake.then_reply(format!("Here is the program:\n```lisp\n{PUT}\n```"));
        let asked = ask(&admin, json!({"request": "open a KYC case for ACME"})).await;
        assert_eq!(
            (
                asked["ok"].as_bool(),
                asked["program"].as_str(),
                asked["attempts"].as_u64()
            ),
            (Some(true), Some(PUT), Some(1)),
            "{asked}"
        );
        assert!(asked["ran"].is_null(), "{asked}");
        assert_eq!(get(&admin, "K-1").await, Value::Null, "proposed, not run");
        let messages = sent(&fake);
        let system = messages[0]["content"].as_str().unwrap_or_default();
        assert!(system.contains("datastore.put: "), "{system}");
        assert!(!system.contains("dsl.run") && !system.contains("inference.chat"));
        assert_eq!(messages[1]["content"], "open a KYC case for ACME");

        fake.then_reply(PUT);
        // Another request: an identical one may be answered by the response cache.
        let asked = ask(
            &admin,
            json!({"request": "open a KYC case for ACME now", "run": true}),
        )
        .await;
        assert_eq!(asked["ok"], true, "{asked}");
        assert_eq!(asked["ran"]["calls"], 1, "{asked}");
        assert_eq!(get(&admin, "K-1").await["doc"]["client"], "ACME");
        served.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invalid_program_is_sent_back_once_and_never_runs_while_refused() {
        let fake = FakeProvider::start(Wire::OpenAi).await.expect("the fake");
        let (served, admin, _) = node("dsl-ask-invalid", &fake).await;
        let misspelt = PUT.replace("datastore.put", "datastore.putt");

        // Refused, repaired, then run.
        fake.then_reply(misspelt.clone()).then_reply(PUT);
        let asked = ask(&admin, json!({"request": "open a KYC case", "run": true})).await;
        assert_eq!(
            (asked["ok"].as_bool(), asked["attempts"].as_u64()),
            (Some(true), Some(2)),
            "{asked}"
        );
        assert_eq!(
            asked["repaired_errors"][0]["code"], "unknown_verb",
            "{asked}"
        );
        let messages = sent(&fake);
        assert_eq!(
            messages.len(),
            4,
            "system, request, the refused program, its errors"
        );
        assert_eq!(messages[2]["content"], misspelt);
        let errors = messages[3]["content"].as_str().unwrap_or_default();
        assert!(errors.contains("did you mean `datastore.put`?"), "{errors}");
        assert_eq!(get(&admin, "K-1").await["doc"]["case_type"], "kyc");

        // Refused twice: nothing runs, the last errors are shown.
        let other = misspelt.replace("K-1", "K-2");
        fake.then_reply(other.clone()).then_reply(other.clone());
        let asked = ask(&admin, json!({"request": "open another", "run": true})).await;
        assert_eq!(
            (asked["ok"].as_bool(), asked["attempts"].as_u64()),
            (Some(false), Some(2)),
            "{asked}"
        );
        assert_eq!(asked["errors"][0]["code"], "unknown_verb");
        assert_eq!(
            (
                asked["errors"][0]["line"].as_u64(),
                asked["errors"][0]["column"].as_u64()
            ),
            (Some(1), Some(2))
        );
        assert!(asked["ran"].is_null());
        assert_eq!(get(&admin, "K-2").await, Value::Null, "nothing ran");

        // Without a repair, one answer only.
        let before = fake.requests();
        fake.then_reply(other);
        let asked = ask(
            &admin,
            json!({"request": "open a third", "run": true, "repair": false}),
        )
        .await;
        assert_eq!(
            (asked["ok"].as_bool(), asked["attempts"].as_u64()),
            (Some(false), Some(1)),
            "{asked}"
        );
        assert_eq!(fake.requests(), before + 1);
        served.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verb_the_caller_may_not_call_is_neither_offered_nor_run() {
        let fake = FakeProvider::start(Wire::OpenAi).await.expect("the fake");
        let (served, admin, clerk) = node("dsl-ask-forbidden", &fake).await;
        fake.then_reply(PUT).then_reply(PUT);
        let asked = ask(
            &clerk,
            json!({"request": "open a KYC case for ACME", "run": true}),
        )
        .await;
        assert_eq!(asked["ok"], false, "{asked}");
        assert_eq!(asked["errors"][0]["code"], "forbidden", "{asked}");
        assert!(asked["ran"].is_null());
        let system = sent(&fake)[0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            system.contains("datastore.get: ") && system.contains("datastore.count: "),
            "{system}"
        );
        assert!(!system.contains("datastore.put"), "{system}");
        assert_eq!(asked["verbs_offered"], 2, "{asked}");
        assert_eq!(get(&admin, "K-1").await, Value::Null, "nothing ran");
        served.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_is_refused_with_its_errors_and_a_long_request_is_invalid() {
        let fake = FakeProvider::start(Wire::OpenAi).await.expect("the fake");
        let (served, admin, _) = node("dsl-ask-garbage", &fake).await;
        fake.then_reply("I'm sorry, I cannot do that (yet.");
        // The repair is answered with the fake's usual prose.
        let asked = ask(&admin, json!({"request": "open a fraud case", "run": true})).await;
        assert_eq!(
            (asked["ok"].as_bool(), asked["attempts"].as_u64()),
            (Some(false), Some(2)),
            "{asked}"
        );
        assert_eq!(asked["program"], REPLY);
        let codes: Vec<_> = asked["errors"]
            .as_array()
            .map(|e| e.iter().map(|e| e["code"].clone()).collect())
            .unwrap_or_default();
        assert!(!codes.is_empty(), "{asked}");
        assert!(
            asked["errors"][0]["rendered"]
                .as_str()
                .is_some_and(|r| r.contains("asked:1:")),
            "{asked}"
        );
        assert!(
            !asked["repaired_errors"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "{asked}"
        );
        assert!(asked["ran"].is_null());

        let long = "x".repeat(5_000);
        match admin.call("dsl.ask", json!({"request": long})).await {
            Err(plexus_client::ClientError::Rpc { code, message, .. }) => {
                assert_eq!(code, -32602, "{message}");
                assert!(message.contains("ask_max_request_bytes"), "{message}");
            }
            other => panic!("a long request was taken: {other:?}"),
        }
        served.stop().await;
    }

    /// The model failing, or a caller not allowed to ask it: a typed error, and
    /// nothing ran.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_forbidden_model_is_a_typed_error() {
        const BLIND: &str = "dsl-ask-blind-token-0123456789";
        let fake = FakeProvider::start(Wire::OpenAi).await.expect("the fake");
        let (served, admin, _) = node("dsl-ask-failing", &fake).await;
        let detail = |e: Result<Value, ClientError>| match e {
            Err(ClientError::Rpc {
                data: Some(data), ..
            }) => data["detail"].clone(),
            other => panic!("dsl.ask did not fail: {other:?}"),
        };
        fake.always(Behaviour::ServerError);
        let failed = detail(
            admin
                .call("dsl.ask", json!({"request": "open a case", "run": true}))
                .await,
        );
        assert_eq!(failed["kind"], "inference_failed", "{failed}");
        assert_eq!(failed["model"], "default", "{failed}");
        assert_eq!(get(&admin, "K-1").await, Value::Null);
        served.stop().await;

        // A token that may use the language but not the model.
        let fake = FakeProvider::start(Wire::OpenAi).await.expect("the fake");
        let extra = format!(
            "[inference.providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n\
             [[inference.models.default]]\nprovider = \"fake\"\nmodel = \"tiny\"\n\
             [[gateway.tokens]]\nname = \"blind\"\ntoken = \"{BLIND}\"\nscopes = [\"call:dsl.*\"]\n",
            fake.base_url()
        );
        let served = Served::start("dsl-ask-blind", "", &extra).await;
        let blind = Client::new(&format!("http://{}", served.addr), Some(BLIND.to_owned()))
            .expect("a client");
        let refused = detail(
            blind
                .call("dsl.ask", json!({"request": "open a case"}))
                .await,
        );
        assert_eq!(refused["kind"], "inference_failed", "{refused}");
        assert_eq!(refused["code"], -32002, "forbidden: {refused}");
        assert_eq!(fake.requests(), 0, "the model was never asked");
        served.stop().await;
    }
}
