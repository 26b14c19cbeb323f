//! Protocol edges of JSON-RPC on `/rpc` and `/ws`: a request object that repeats a
//! key is refused, and ids come back exactly as they were sent.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Harness, Peer, code};

/// `POST /rpc` with `body`; the status and the response text as it came.
async fn rpc_raw(h: &Harness, body: &str) -> (u16, String) {
    let response = h
        .http
        .post(h.url("/rpc"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Sends `text` on the socket and returns the next text message as it came.
async fn ws_raw(peer: &mut Peer, text: &str) -> String {
    peer.send_raw(Message::Text(text.to_owned().into())).await;
    loop {
        if let Message::Text(text) = peer.next_message().await {
            return text.as_str().to_owned();
        }
    }
}

fn reason(response: &Value) -> &str {
    response["error"]["data"]["reason"]
        .as_str()
        .unwrap_or_default()
}

const TWO_METHODS: &str =
    r#"{"jsonrpc":"2.0","method":"spec.sum","method":"spec.subtract","params":[5,2],"id":1}"#;
const TWO_IDS: &str = r#"{"jsonrpc":"2.0","method":"spec.sum","params":[5,2],"id":1,"id":2}"#;
const TWO_PARAMS: &str =
    r#"{"jsonrpc":"2.0","method":"spec.sum","params":[5,2],"params":[1],"id":"p"}"#;

#[tokio::test]
async fn a_repeated_key_is_an_invalid_request_never_last_one_wins() {
    let h = Harness::start().await;
    let (status, text) = rpc_raw(&h, TWO_METHODS).await;
    assert_eq!(status, 200);
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((code(&got), &got["id"]), (-32600, &json!(1)), "{got}");
    assert!(
        reason(&got).contains("`method` appears more than once"),
        "{got}"
    );
    // A repeated id cannot be answered with either.
    let (_, text) = rpc_raw(&h, TWO_IDS).await;
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((code(&got), &got["id"]), (-32600, &Value::Null), "{got}");
    let (_, text) = rpc_raw(&h, TWO_PARAMS).await;
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((code(&got), &got["id"]), (-32600, &json!("p")), "{got}");
    // In a batch, only the element that repeats a key is refused.
    let batch =
        format!(r#"[{TWO_METHODS},{{"jsonrpc":"2.0","method":"spec.sum","params":[1,1],"id":2}}]"#);
    let (_, text) = rpc_raw(&h, &batch).await;
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(code(&got[0]), -32600, "{got}");
    assert_eq!(got[1]["result"], 2, "{got}");
    // Nothing ran for the refused ones.
    assert_eq!(h.call("spec.sum", json!([1, 2])).await["result"], 3);

    let mut peer = h.peer().await;
    for (text, id) in [
        (TWO_METHODS, json!(1)),
        (TWO_IDS, Value::Null),
        (TWO_PARAMS, json!("p")),
    ] {
        let got: Value = serde_json::from_str(&ws_raw(&mut peer, text).await).unwrap();
        assert_eq!((code(&got), &got["id"]), (-32600, &id), "{text}: {got}");
    }
    assert_eq!(peer.ok("spec.sum", json!([2, 2])).await, json!(4));
}

#[tokio::test]
async fn ids_come_back_byte_for_byte() {
    let h = Harness::start().await;
    let ids = [
        "123456789012345678901234567890",
        "1.0",
        "-0",
        "1e2",
        r#""\u0041b""#,
    ];
    let mut peer = h.peer().await;
    for id in ids {
        let ok = format!(r#"{{"jsonrpc":"2.0","method":"spec.sum","params":[1,2],"id":{id}}}"#);
        let expected = format!(r#"{{"jsonrpc":"2.0","result":3,"id":{id}}}"#);
        let (status, text) = rpc_raw(&h, &ok).await;
        assert_eq!((status, text.as_str()), (200, expected.as_str()));
        assert_eq!(ws_raw(&mut peer, &ok).await, expected);
        // Errors too: a method that does not exist, and an invalid request.
        let missing = format!(r#"{{"jsonrpc":"2.0","method":"spec.nope","id":{id}}}"#);
        let (_, text) = rpc_raw(&h, &missing).await;
        assert!(text.ends_with(&format!(r#","id":{id}}}"#)), "{text}");
        let invalid = format!(r#"{{"jsonrpc":"1.0","method":"spec.sum","id":{id}}}"#);
        let text = ws_raw(&mut peer, &invalid).await;
        assert!(text.ends_with(&format!(r#","id":{id}}}"#)), "{text}");
    }
    let batch = format!(
        r#"[{{"jsonrpc":"2.0","method":"spec.sum","params":[1],"id":{}}},{{"jsonrpc":"2.0","method":"spec.sum","params":[2],"id":{}}}]"#,
        ids[0], ids[1]
    );
    let expected = format!(
        r#"[{{"jsonrpc":"2.0","result":1,"id":{}}},{{"jsonrpc":"2.0","result":2,"id":{}}}]"#,
        ids[0], ids[1]
    );
    let (_, text) = rpc_raw(&h, &batch).await;
    assert_eq!(text, expected);
    assert_eq!(ws_raw(&mut peer, &batch).await, expected);
}

/// Numbers are 64-bit integers or 64-bit floats: an integer that fits neither is
/// refused with -32602 on `/rpc` and `/ws`, never rounded to a float and stored.
#[tokio::test]
async fn an_integer_beyond_64_bits_is_refused_not_rounded() {
    let h = Harness::start().await;
    let big = r#"{"jsonrpc":"2.0","method":"spec.sum","params":[123456789012345678901234567890,1],"id":5}"#;
    let (status, text) = rpc_raw(&h, big).await;
    assert_eq!(status, 200);
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((code(&got), &got["id"]), (-32602, &json!(5)), "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .contains("123456789012345678901234567890"),
        "{got}"
    );
    let mut peer = h.peer().await;
    let got: Value = serde_json::from_str(&ws_raw(&mut peer, big).await).unwrap();
    assert_eq!((code(&got), &got["id"]), (-32602, &json!(5)), "{got}");
    // The largest 64-bit integers pass.
    let fits = r#"{"jsonrpc":"2.0","method":"spec.sum","params":[9223372036854775807,0],"id":6}"#;
    let (_, text) = rpc_raw(&h, fits).await;
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["result"], json!(i64::MAX), "{got}");
}
