//! JSON-RPC 2.0 conformance over `POST /rpc`, with the specification's own examples
//! (<https://www.jsonrpc.org/specification>, section 7). Plexus methods are always
//! `service.method`, so the examples' methods are served by the service `spec`
//! (`subtract` is called as `spec.subtract`); the examples' unknown methods
//! (`foobar`, `foo.get`) are kept as written. Whole responses are compared: the
//! specification's, plus the `data` member Plexus adds to every error.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::support::Harness;

/// The parse error for `text`, with the reason serde gives.
fn parse_error(text: &str) -> Value {
    let reason = serde_json::from_str::<Value>(text).unwrap_err().to_string();
    json!({"code": -32700, "message": "Parse error", "data": {"reason": reason}})
}

fn invalid(reason: &str) -> Value {
    json!({"code": -32600, "message": "Invalid Request", "data": {"reason": reason}})
}

/// The answer to a request whose id could not be read: `error`, with id null.
fn without_id(error: Value) -> Value {
    json!({"jsonrpc": "2.0", "error": error, "id": null})
}

fn foobar_not_found() -> Value {
    json!({
        "code": -32601,
        "message": "method `foobar` not found; methods are called as `service.method`",
        "data": {"method": "foobar", "hint": "methods are called as `service.method`"}
    })
}

/// Sends each request text in turn and compares the whole answer.
async fn answers(h: &Harness, exchanges: impl IntoIterator<Item = (&str, Value)>) {
    for (text, answer) in exchanges {
        let (status, got) = h.rpc_text(text, None).await;
        assert_eq!((status, got), (200, answer), "{text}");
    }
}

#[tokio::test]
async fn rpc_call_with_positional_parameters() {
    let h = Harness::start().await;
    answers(
        &h,
        [
            (
                r#"{"jsonrpc": "2.0", "method": "spec.subtract", "params": [42, 23], "id": 1}"#,
                json!({"jsonrpc": "2.0", "result": 19, "id": 1}),
            ),
            (
                r#"{"jsonrpc": "2.0", "method": "spec.subtract", "params": [23, 42], "id": 2}"#,
                json!({"jsonrpc": "2.0", "result": -19, "id": 2}),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn rpc_call_with_named_parameters() {
    let h = Harness::start().await;
    answers(
        &h,
        [
            (
                r#"{"jsonrpc": "2.0", "method": "spec.subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
                json!({"jsonrpc": "2.0", "result": 19, "id": 3}),
            ),
            (
                r#"{"jsonrpc": "2.0", "method": "spec.subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}"#,
                json!({"jsonrpc": "2.0", "result": 19, "id": 4}),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_notification_runs_and_gets_no_answer() {
    let h = Harness::start().await;
    let (status, got) = h
        .rpc_text(
            r#"{"jsonrpc": "2.0", "method": "spec.update", "params": [1,2,3,4,5]}"#,
            None,
        )
        .await;
    assert_eq!((status, got), (204, Value::Null));
    assert_eq!(h.spec.notified.load(Ordering::SeqCst), 1);
    let (status, got) = h
        .rpc_text(r#"{"jsonrpc": "2.0", "method": "foobar"}"#, None)
        .await;
    assert_eq!((status, got), (204, Value::Null));
}

#[tokio::test]
async fn a_call_of_a_method_that_does_not_exist() {
    let h = Harness::start().await;
    let (status, got) = h
        .rpc_text(r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        got,
        json!({"jsonrpc": "2.0", "error": foobar_not_found(), "id": "1"})
    );
}

#[tokio::test]
async fn a_call_with_invalid_json() {
    let h = Harness::start().await;
    let text = r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#;
    let (status, got) = h.rpc_text(text, None).await;
    assert_eq!(status, 200);
    assert_eq!(got, without_id(parse_error(text)));
}

#[tokio::test]
async fn a_call_with_an_invalid_request_object() {
    let h = Harness::start().await;
    let (_, got) = h
        .rpc_text(r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#, None)
        .await;
    assert_eq!(got, without_id(invalid("`method` must be a string")));
}

#[tokio::test]
async fn a_batch_with_invalid_json() {
    let h = Harness::start().await;
    let text = r#"[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]"#;
    let (_, got) = h.rpc_text(text, None).await;
    assert_eq!(got, without_id(parse_error(text)));
}

#[tokio::test]
async fn an_empty_batch() {
    let h = Harness::start().await;
    let (_, got) = h.rpc_text("[]", None).await;
    assert_eq!(got, without_id(invalid("a batch must not be empty")));
}

#[tokio::test]
async fn an_invalid_batch_but_not_empty() {
    let h = Harness::start().await;
    let (_, got) = h.rpc_text("[1]", None).await;
    let one = without_id(invalid("a request must be a JSON object"));
    assert_eq!(got, json!([one]));
}

#[tokio::test]
async fn an_invalid_batch() {
    let h = Harness::start().await;
    let (_, got) = h.rpc_text("[1,2,3]", None).await;
    let one = without_id(invalid("a request must be a JSON object"));
    assert_eq!(got, json!([one, one, one]));
}

#[tokio::test]
async fn a_mixed_batch() {
    let h = Harness::start().await;
    let text = r#"[
        {"jsonrpc": "2.0", "method": "spec.sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "spec.notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "spec.subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "spec.get_data", "id": "9"}
    ]"#;
    let (status, got) = h.rpc_text(text, None).await;
    assert_eq!(status, 200);
    let foo_get = json!({
        "code": -32601,
        "message": "method `foo.get` not found; no service `foo` is registered; `plexus services` lists them",
        "data": {"method": "foo.get", "hint": "no service `foo` is registered; `plexus services` lists them"}
    });
    assert_eq!(
        got,
        json!([
            {"jsonrpc": "2.0", "result": 7, "id": "1"},
            {"jsonrpc": "2.0", "result": 19, "id": "2"},
            without_id(invalid("`jsonrpc` must be exactly \"2.0\"")),
            {"jsonrpc": "2.0", "error": foo_get, "id": "5"},
            {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
        ])
    );
    assert_eq!(h.spec.notified.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_batch_of_notifications_only() {
    let h = Harness::start().await;
    let text = r#"[
        {"jsonrpc": "2.0", "method": "spec.notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "spec.notify_hello", "params": [7]}
    ]"#;
    let (status, got) = h.rpc_text(text, None).await;
    assert_eq!((status, got), (204, Value::Null));
    assert_eq!(h.spec.notified.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn call_errors_keep_their_plexus_code_and_data() {
    let h = Harness::start().await;
    let got = h.call("spec.subtract", json!([1])).await;
    assert_eq!(got["error"]["code"], -32602);
    assert_eq!(got["error"]["data"]["method"], "spec.subtract");
    assert_eq!(got["error"]["data"]["reason"], "two numbers");
    let got = h.call("spec.nothing", json!({})).await;
    assert_eq!(got["error"]["code"], -32601);
    assert!(
        got["error"]["data"]["hint"]
            .as_str()
            .unwrap()
            .contains("subtract")
    );
    let got = h.call("plexus.subscribe", json!({"pattern": "a"})).await;
    assert_eq!(got["error"]["code"], -32601);
    assert!(got["error"]["message"].as_str().unwrap().contains("/ws"));
}
