//! 2025-11-25 sessions: `Mcp-Session-Id` required, unknown → 404, idle expiry,
//! DELETE, `Origin` and `Host` checks, the session cap.

use plexus_mcp::{McpConfig, McpEvent};
use plexus_node::metrics::Format;
use serde_json::json;

use crate::support::{Harness, initialize, session_headers};

#[tokio::test]
async fn initialize_negotiates_2025_11_25_and_opens_a_session() {
    let h = Harness::start().await;
    let mut events = h.server.events();
    let reply = h.post(&[], initialize(1, "2025-11-25")).await;
    assert_eq!(reply.status, 200);
    let result = &reply.response(1)["result"];
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert_eq!(result["serverInfo"]["name"], "plexus");
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
    let id = reply.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let opened = Harness::wait_for(&mut events, |e| match e {
        McpEvent::SessionOpened { id } => Some(id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(opened, id);
    // A client offering an older version is answered with the one served.
    let older = h.post(&[], initialize(2, "2025-06-18")).await;
    assert_eq!(older.response(2)["result"]["protocolVersion"], "2025-11-25");
}

#[tokio::test]
async fn a_request_without_a_session_is_refused_and_an_unknown_one_is_404() {
    let h = Harness::start().await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let missing = h
        .post(&[("mcp-protocol-version", "2025-11-25")], list.clone())
        .await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    assert_eq!(missing.error()["code"], -32600);
    assert!(
        missing.error()["message"]
            .as_str()
            .unwrap()
            .contains("Session ID is required")
    );

    let unknown = h.post(&session_headers("no-such-session"), list).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.error()["code"], -32600);
    assert_eq!(unknown.response(1)["error"]["code"], -32600);
    assert!(
        unknown.text.contains("session not found"),
        "{}",
        unknown.text
    );
}

#[tokio::test]
async fn an_idle_session_expires_and_then_answers_404() {
    let config = McpConfig {
        session_ttl_ms: 300,
        ..McpConfig::default()
    };
    let h = Harness::with_config(config).await;
    let mut events = h.server.events();
    let session = h.session().await;
    // In use: answers.
    let reply = h.call_in(&session, 2, "tools/list", json!({})).await;
    assert_eq!(reply.status, 200);
    // Idle past its TTL: the server closes it (the event, not a sleep, says when).
    let closed = Harness::wait_for(&mut events, |e| match e {
        McpEvent::SessionClosed { id } => Some(id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(closed, session);
    let reply = h.call_in(&session, 3, "tools/list", json!({})).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
}

#[tokio::test]
async fn delete_ends_a_session() {
    let h = Harness::start().await;
    let mut events = h.server.events();
    let session = h.session().await;
    let response = h.delete(&session, "2025-11-25").await;
    assert!(response.status().is_success(), "{}", response.status());
    Harness::wait_for(&mut events, |e| {
        matches!(e, McpEvent::SessionClosed { id } if *id == session).then_some(())
    })
    .await;
    let reply = h.call_in(&session, 2, "tools/list", json!({})).await;
    assert_eq!(reply.status, 404);
    // Other sessions are untouched.
    let other = h.session().await;
    assert_eq!(
        h.call_in(&other, 3, "tools/list", json!({})).await.status,
        200
    );
}

#[tokio::test]
async fn a_foreign_origin_is_forbidden_and_loopback_origins_pass() {
    let h = Harness::start().await;
    let bad = h
        .post(
            &[("origin", "https://evil.example")],
            initialize(1, "2025-11-25"),
        )
        .await;
    assert_eq!(bad.status, 403, "{}", bad.text);
    assert_eq!(bad.error()["code"], -32600);
    let port = h.addr.port().to_string();
    let origin = format!("http://localhost:{port}");
    let good = h
        .post(&[("origin", origin.as_str())], initialize(2, "2025-11-25"))
        .await;
    assert_eq!(good.status, 200, "{}", good.text);
    // Configured origins replace the loopback default.
    let config = McpConfig {
        allowed_origins: vec!["https://app.example:443".into()],
        ..McpConfig::default()
    };
    let h = Harness::with_config(config).await;
    let app = h
        .post(
            &[("origin", "https://app.example")],
            initialize(3, "2025-11-25"),
        )
        .await;
    assert_eq!(app.status, 200, "{}", app.text);
    let local = h
        .post(&[("origin", origin.as_str())], initialize(4, "2025-11-25"))
        .await;
    assert_eq!(local.status, 403);
}

#[tokio::test]
async fn a_foreign_host_header_is_forbidden() {
    let h = Harness::start().await;
    let bad = h
        .post(&[("host", "attacker.example")], initialize(1, "2025-11-25"))
        .await;
    assert_eq!(bad.status, 403, "{}", bad.text);
}

#[tokio::test]
async fn sessions_beyond_the_cap_are_refused_until_one_ends() {
    let config = McpConfig {
        max_sessions: 2,
        ..McpConfig::default()
    };
    let h = Harness::with_config(config).await;
    let first = h.session().await;
    let _second = h.session().await;
    let refused = h.post(&[], initialize(9, "2025-11-25")).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.response(9)["error"]["code"], -32603);
    assert!(refused.text.contains("max_sessions"));
    let mut events = h.server.events();
    h.delete(&first, "2025-11-25").await;
    Harness::wait_for(&mut events, |e| {
        matches!(e, McpEvent::SessionClosed { .. }).then_some(())
    })
    .await;
    h.session().await;
}

#[tokio::test]
async fn delete_answers_204_for_a_live_session_404_for_an_unknown_one_405_when_stateless() {
    let h = Harness::start().await;
    let session = h.session().await;
    let ended = h.delete(&session, "2025-11-25").await;
    assert_eq!(ended.status(), 204);
    // Gone now: a second DELETE, like one for a session that never was, is 404.
    for id in [session.as_str(), "no-such-session"] {
        let response = h.delete(id, "2025-11-25").await;
        assert_eq!(response.status(), 404, "{id}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32600, "{body}");
    }
    // A stateless request (2026-07-28) has no session to end.
    let other = h.session().await;
    let stateless = h.delete(&other, "2026-07-28").await;
    assert_eq!(stateless.status(), 405);
    assert_eq!(
        h.call_in(&other, 2, "tools/list", json!({})).await.status,
        200
    );
}

/// `h`'s server on a listener of its own that tells handlers the client's address,
/// as the gateway does, reached by a client whose address is `local`.
async fn with_addresses(h: &Harness, local: &str) -> Harness {
    let app = axum::Router::new().nest("/mcp", h.server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    let http = reqwest::Client::builder()
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    h.reached_at(addr, http)
}

#[tokio::test]
async fn one_address_cannot_fill_the_pool_and_sessions_never_initialized_expire() {
    let h = Harness::with_config(McpConfig {
        max_sessions_per_peer: 2,
        init_timeout_ms: 300,
        ..McpConfig::default()
    })
    .await;
    let mut events = h.server.events();
    let flood = with_addresses(&h, "127.0.0.1").await;
    // A raw client sends `initialize` and never `notifications/initialized`.
    for id in 1..=2 {
        let reply = flood.post(&[], initialize(id, "2025-11-25")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let refused = flood.post(&[], initialize(3, "2025-11-25")).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    let error = refused.error();
    assert_eq!(error["code"], -32007, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("max_sessions_per_peer"),
        "{error}"
    );
    Harness::wait_for(&mut events, |e| {
        matches!(e, McpEvent::PeerFull { .. }).then_some(())
    })
    .await;
    assert_eq!(refused_total(&h, "per_peer"), 1);

    // Another client address is not locked out, and completes initialization.
    let other = with_addresses(&h, "127.0.0.2").await;
    let kept = other.session().await;

    // The two sessions that never completed initialization are closed; the one
    // that did lives on, and the flooding address may open sessions again.
    let mut expired = 0;
    while expired < 2 {
        Harness::wait_for(&mut events, |e| {
            matches!(e, McpEvent::InitTimedOut { .. }).then_some(())
        })
        .await;
        expired += 1;
    }
    assert_eq!(refused_total(&h, "init_timeout"), 2);
    let again = flood.post(&[], initialize(4, "2025-11-25")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let alive = other
        .post(
            &session_headers(&kept),
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
        )
        .await;
    assert_eq!(alive.status, 200, "{}", alive.text);
}

/// `plexus_mcp_refused_total{reason}` as the node's `/metrics` renders it.
fn refused_total(h: &Harness, reason: &str) -> u64 {
    let text = h.node.metrics().render(Format::Prometheus);
    let series = format!("plexus_mcp_refused_total{{reason=\"{reason}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&series));
    line.and_then(|l| l[series.len()..].trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn an_initialize_with_an_oversized_client_info_is_refused_and_counted() {
    let h = Harness::start().await;
    let mut big = initialize(1, "2025-11-25");
    big["params"]["clientInfo"]["name"] = json!("n".repeat(5_000));
    let refused = h.post(&[], big).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let error = refused.error();
    assert_eq!(error["code"], -32602, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("clientInfo") && message.contains("4096"),
        "{error}"
    );

    let mut version = initialize(2, "2025-11-25");
    version["params"]["protocolVersion"] = json!("v".repeat(100));
    let refused = h.post(&[], version).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(refused.text.contains("protocolVersion"), "{}", refused.text);
    assert_eq!(refused_total(&h, "client_info"), 2);

    // An ordinary client is served.
    let reply = h.post(&[], initialize(3, "2025-11-25")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(refused_total(&h, "client_info"), 2);
}
