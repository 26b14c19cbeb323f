//! Malformed, truncated and oversized input on every endpoint gets an error, and the
//! node keeps serving.

use plexus_gateway::{GatewayConfig, TokenConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Harness, WAIT, code};

/// The node still answers a call and `/livez`.
async fn still_serving(h: &Harness) {
    let ok = h.call("spec.sum", json!([1, 2])).await;
    assert_eq!(ok["result"], 3, "{ok}");
    let live = h.http.get(h.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
}

/// Writes `raw` on a fresh connection and returns whatever comes back before the
/// server closes it (bounded).
async fn raw_exchange(h: &Harness, raw: &[u8], half_close: bool) -> String {
    let mut tcp = h.tcp().await;
    // The server may answer and close before it has read everything.
    let _ = tcp.write_all(raw).await;
    if half_close {
        let _ = tcp.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn small() -> GatewayConfig {
    GatewayConfig {
        max_body_bytes: 1024,
        max_batch: 3,
        max_ws_message_bytes: 1024,
        ..GatewayConfig::default()
    }
}

#[tokio::test]
async fn rpc_refuses_oversized_bodies_and_batches() {
    let h = Harness::with(small()).await;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"spec.sum","params":[{}]}}"#,
        vec!["1"; 1000].join(",")
    );
    let (status, got) = h.rpc_text(&big, None).await;
    assert_eq!(status, 413);
    assert_eq!(
        got,
        json!({"jsonrpc": "2.0", "error": {"code": -32008, "message": "the request body is larger than the limit of 1024 bytes", "data": {"limit_bytes": 1024}}, "id": null})
    );
    // Chunked, with no length declared: refused once it runs over.
    let chunk = "x".repeat(2000);
    let raw = format!(
        "POST /rpc HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let answer = raw_exchange(&h, raw.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("-32008"), "{answer}");

    let four = json!([
        {"jsonrpc": "2.0", "method": "spec.sum", "params": [1], "id": 1},
        {"jsonrpc": "2.0", "method": "spec.sum", "params": [1], "id": 2},
        {"jsonrpc": "2.0", "method": "spec.sum", "params": [1], "id": 3},
        {"jsonrpc": "2.0", "method": "spec.sum", "params": [1], "id": 4}
    ]);
    let (status, got) = h.rpc_text(&four.to_string(), None).await;
    assert_eq!(status, 200);
    assert_eq!(code(&got), -32600);
    assert_eq!(got["error"]["data"]["max_batch"], 3);
    still_serving(&h).await;
}

#[tokio::test]
async fn rpc_refuses_malformed_and_truncated_bodies() {
    let h = Harness::with(small()).await;
    for text in [
        r#"{"jsonrpc":"2.0","id":1,"method":"spec.sum","params":[1,2"#,
        "",
        "\u{0}",
        &"[".repeat(600),
    ] {
        let (status, got) = h.rpc_text(text, None).await;
        assert_eq!(status, 200, "{text:?}");
        assert_eq!(code(&got), -32700, "{text:?}");
    }
    // Not UTF-8.
    let response = h
        .http
        .post(h.url("/rpc"))
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, 0x7b])
        .send()
        .await
        .unwrap();
    let got: Value = response.json().await.unwrap();
    assert_eq!(code(&got), -32700);
    // Not JSON by its content type.
    let response = h
        .http
        .post(h.url("/rpc"))
        .header("content-type", "text/plain")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"spec.sum","params":[1]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    // A body that ends before its declared length, then the connection closes.
    let raw = "POST /rpc HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"jsonrpc\":";
    let _ = raw_exchange(&h, raw.as_bytes(), true).await;
    // A request line cut short.
    let _ = raw_exchange(&h, b"POST /rp", true).await;
    still_serving(&h).await;
}

#[tokio::test]
async fn get_endpoints_survive_oversized_and_truncated_requests() {
    let h = Harness::start().await;
    for path in ["/metrics", "/health", "/ready", "/livez", "/ws"] {
        let huge = format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\nx-junk: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(1024 * 1024)
        );
        let answer = raw_exchange(&h, huge.as_bytes(), false).await;
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 431")
                || answer.starts_with("HTTP/1.1 400"),
            "{path}: {answer:.200}"
        );
        let cut = format!("GET {path} HTTP/1.1\r\nhost: x\r\naccept: appl");
        let _ = raw_exchange(&h, cut.as_bytes(), true).await;
        let odd = format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\naccept: \u{1}\u{2}\r\nconnection: close\r\n\r\n"
        );
        let answer = raw_exchange(&h, odd.as_bytes(), false).await;
        assert!(answer.starts_with("HTTP/1.1 "), "{path}: {answer:.200}");
        assert!(!answer.starts_with("HTTP/1.1 5"), "{path}: {answer:.200}");
    }
    still_serving(&h).await;
}

#[tokio::test]
async fn websocket_answers_malformed_messages_and_closes_on_oversized_ones() {
    let h = Harness::with(small()).await;
    let mut peer = h.peer().await;
    for text in [
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"spec.su",
        "nope",
        "",
    ] {
        peer.send_raw(Message::Text(text.into())).await;
        let got = peer.next().await;
        assert_eq!(code(&got), -32700, "{text:?}");
        assert_eq!(got["id"], Value::Null);
    }
    peer.send_raw(Message::Binary(vec![0xff, 0x00, 0x13].into()))
        .await;
    assert_eq!(code(&peer.next().await), -32700);
    peer.send(&json!({"jsonrpc": "2.0", "id": 7, "method": 3}))
        .await;
    let got = peer.next().await;
    assert_eq!((code(&got), got["id"].clone()), (-32600, json!(7)));
    peer.send(&json!([])).await;
    assert_eq!(code(&peer.next().await), -32600);
    // The socket still works after all that.
    assert_eq!(peer.ok("spec.sum", json!([2, 2])).await, json!(4));

    peer.send_raw(Message::Text("x".repeat(4096).into())).await;
    let frame = peer.closed().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size);
    let mut again = h.peer().await;
    assert_eq!(again.ok("spec.sum", json!([3, 3])).await, json!(6));
    still_serving(&h).await;
}

/// Sends a whole `POST /rpc` of `size` bytes with `headers` before reading, as
/// Python's urllib does, and returns the answer, which must arrive without a reset.
async fn send_all_then_read(h: &Harness, headers: &str, size: usize) -> String {
    let body = "x".repeat(size);
    let head = format!("POST /rpc HTTP/1.1\r\nhost: x\r\n{headers}content-length: {size}\r\n\r\n");
    let mut tcp = h.tcp().await;
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body.as_bytes())
        .await
        .expect("the server took the whole body");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .expect("the answer was read without a reset");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_oversized_body_gets_a_413_a_client_that_sends_it_all_can_read() {
    let h = Harness::with(small()).await;
    for size in [4 * 1024, 6 * 1024 * 1024] {
        let answer = send_all_then_read(&h, "content-type: application/json\r\n", size).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(answer.contains("-32008"), "{answer}");
    }
    still_serving(&h).await;
}

#[tokio::test]
async fn a_415_or_401_given_before_the_body_is_read_reaches_a_client_that_sends_it_all() {
    let h = Harness::start().await;
    let answer = send_all_then_read(&h, "content-type: text/plain\r\n", 6 * 1024 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert!(answer.contains("-32600"), "{answer}");

    let h = Harness::with(GatewayConfig {
        tokens: vec![TokenConfig::new(
            "ci",
            "ci-token-0123456789abcdef",
            ["admin"],
        )],
        ..GatewayConfig::default()
    })
    .await;
    let answer =
        send_all_then_read(&h, "content-type: application/json\r\n", 6 * 1024 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("-32001"), "{answer}");
}

#[tokio::test]
async fn an_oversized_control_frame_closes_the_socket_with_a_protocol_error() {
    let h = Harness::start().await;
    let mut peer = h.peer().await;
    // RFC 6455 §5.5: a control frame carries at most 125 bytes.
    peer.send_raw(Message::Ping(vec![7u8; 200].into())).await;
    let frame = peer.closed().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Protocol, "{frame:?}");
    let mut again = h.peer().await;
    assert_eq!(again.ok("spec.sum", json!([1, 2])).await, json!(3));
}
