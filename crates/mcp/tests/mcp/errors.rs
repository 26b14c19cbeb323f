//! Malformed, truncated and oversized bodies get JSON-RPC errors, and the server
//! keeps serving.

use plexus_mcp::McpConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Harness, WAIT, initialize};

async fn still_serves(h: &Harness) {
    let session = h.session().await;
    let reply = h.say(&session, 99, "echo.say", "ok").await;
    assert_eq!(
        reply.response(99)["result"]["structuredContent"]["text"],
        "ok"
    );
}

/// A harness whose server takes bodies of at most 4096 bytes.
async fn with_a_4096_byte_limit() -> Harness {
    Harness::with_config(McpConfig {
        max_body_bytes: 4096,
        ..McpConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_parse_error() {
    let h = Harness::start().await;
    for body in [
        &b"{not json"[..],
        b"",
        b"\xff\xfe",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/li",
    ] {
        let reply = h.post_raw(&[], body.to_vec()).await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.error()["code"], -32700, "{}", reply.text);
        assert_eq!(reply.headers["content-type"], "application/json");
    }
    still_serves(&h).await;
}

#[tokio::test]
async fn a_batch_or_a_scalar_is_an_invalid_request() {
    let h = Harness::start().await;
    for body in [
        json!([initialize(1, "2025-11-25")]),
        json!(3),
        json!("tools/list"),
    ] {
        let reply = h.post(&[], body).await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.error()["code"], -32600);
    }
    // An object that is not a JSON-RPC message: rmcp's own answer, as JSON-RPC.
    let reply = h.post(&[], json!({"hello": "world"})).await;
    assert!(reply.status >= 400, "{}", reply.text);
    assert!(reply.error()["code"].is_i64(), "{}", reply.text);
    still_serves(&h).await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let h = with_a_4096_byte_limit().await;
    let session = h.session().await;
    let big = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo.say", "arguments": {"text": "x".repeat(5000)}}
    });
    let reply = h
        .post(&crate::support::session_headers(&session), big.clone())
        .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.error()["code"], -32008);
    assert!(reply.error()["message"].as_str().unwrap().contains("4096"));

    // The same without Content-Length (chunked): counted while read.
    let chunks = futures::stream::iter(
        big.to_string()
            .into_bytes()
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = h
        .json_post()
        .header("mcp-session-id", &session)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    still_serves(&h).await;
}

#[tokio::test]
async fn a_connection_that_dies_mid_body_does_not_hurt_the_server() {
    let h = Harness::start().await;
    let mut socket = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: 500\r\n\r\n",
        h.addr.port()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
        .write_all(br#"{"jsonrpc":"2.0","id":1,"me"#)
        .await
        .unwrap();
    socket.shutdown().await.unwrap();
    // Whatever the server answers (or not), it closes this connection …
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut rest))
        .await
        .unwrap();
    // … and keeps serving everyone else.
    still_serves(&h).await;
}

#[tokio::test]
async fn wrong_media_types_and_methods_get_json_rpc_errors() {
    let h = Harness::start().await;
    let response = h
        .http
        .post(&h.url)
        .header("content-type", "text/plain")
        .header("accept", "application/json, text/event-stream")
        .body(initialize(1, "2025-11-25").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600);
    assert_eq!(body["id"], 1);

    let response = h.http.put(&h.url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert!(response.headers().contains_key("allow"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600);
    still_serves(&h).await;
}

#[tokio::test]
async fn a_repeated_key_is_an_invalid_request() {
    let h = Harness::start().await;
    let session = h.session().await;
    let body =
        br#"{"jsonrpc":"2.0","id":5,"method":"tools/list","method":"tools/call","params":{}}"#;
    let reply = h
        .post_raw(&crate::support::session_headers(&session), body.to_vec())
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error()["code"], -32600, "{}", reply.text);
    assert_eq!(reply.messages[0]["id"], 5, "{}", reply.text);
    still_serves(&h).await;
}

#[tokio::test]
async fn an_oversized_body_sent_whole_gets_a_413_the_client_reads() {
    let h = with_a_4096_byte_limit().await;
    let size = 6 * 1024 * 1024;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: {size}\r\n\r\n",
        h.addr.port()
    );
    let mut socket = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
        .write_all("x".repeat(size).as_bytes())
        .await
        .expect("the server took the whole body");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut out))
        .await
        .unwrap()
        .expect("the answer was read without a reset");
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("-32008"), "{answer}");
    still_serves(&h).await;
}
