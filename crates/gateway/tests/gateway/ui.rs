//! `/ui`: the page without a token, its data with `ops`, the live tail over its
//! WebSocket, configuration diff and rollback (admin only), absent families.

use futures::{SinkExt, StreamExt};
use plexus_core::CallContext;
use plexus_gateway::{GatewayConfig, TokenConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Harness, WAIT};

fn secret(name: &str) -> String {
    format!("{name}-ui-token-0123456789abcdef")
}

async fn harness() -> Harness {
    let config = GatewayConfig {
        tokens: vec![
            TokenConfig::new("root", secret("admin"), ["admin"]),
            TokenConfig::new("watcher", secret("ops"), ["ops"]),
            TokenConfig::new("caller", secret("call"), ["call:spec.*"]),
        ],
        ..GatewayConfig::default()
    };
    Harness::with(config).await
}

/// `GET path` with a token: the status and the JSON body (`Null` when not JSON).
async fn get(h: &Harness, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = h.http.get(h.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn rpc(h: &Harness, token: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let (status, value) = h.rpc_text(&body.to_string(), Some(token)).await;
    assert_eq!(status, 200, "{value}");
    value
}

#[tokio::test]
async fn the_page_needs_no_token_its_data_needs_ops() {
    let h = harness().await;
    let page = h.http.get(h.url("/ui")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("/ui/assets/app.js"));
    for asset in ["/ui/assets/app.js", "/ui/assets/app.css"] {
        let r = h.http.get(h.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let missing = h
        .http
        .get(h.url("/ui/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let ops = secret("ops");
    for path in [
        "/ui/api/health",
        "/ui/api/services",
        "/ui/api/bus",
        "/ui/api/config",
        "/ui/api/families",
        "/ui/api/audit",
    ] {
        assert_eq!(get(&h, path, None).await.0, 401, "{path} without a token");
        assert_eq!(
            get(&h, path, Some(&secret("call"))).await.0,
            403,
            "{path} without ops"
        );
        assert_eq!(get(&h, path, Some(&ops)).await.0, 200, "{path} with ops");
    }

    let (status, anonymous) = get(&h, "/ui/api/whoami", None).await;
    assert_eq!((status, &anonymous["authenticated"]), (200, &json!(false)));
    let (_, wrong) = get(&h, "/ui/api/whoami", Some("not-a-token-at-all")).await;
    assert_eq!(wrong["authenticated"], false);
    let (_, watcher) = get(&h, "/ui/api/whoami", Some(&ops)).await;
    assert_eq!(
        (&watcher["name"], &watcher["ops"], &watcher["admin"]),
        (&json!("watcher"), &json!(true), &json!(false))
    );
    let (_, root) = get(&h, "/ui/api/whoami", Some(&secret("admin"))).await;
    assert_eq!((&root["ops"], &root["admin"]), (&json!(true), &json!(true)));
    // Which action buttons the page may offer: every one to admin, none to ops.
    let actions = [
        "node.config_rollback",
        "jobs.requeue",
        "jobs.pause",
        "jobs.resume",
    ];
    for action in actions {
        assert_eq!(root["may"][action], true, "{root}");
        assert_eq!(watcher["may"][action], false, "{watcher}");
    }
}

#[tokio::test]
async fn services_show_status_breaker_calls_errors_and_p99() {
    let h = harness().await;
    let admin = secret("admin");
    for _ in 0..3 {
        let ok = rpc(&h, &admin, "spec.sum", json!([1, 2])).await;
        assert_eq!(ok["result"], 3);
    }
    let bad = rpc(&h, &admin, "spec.sum", json!(["not a number"])).await;
    assert_eq!(bad["error"]["code"], -32602);

    let (_, s) = get(&h, "/ui/api/services", Some(&secret("ops"))).await;
    let sum = s["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["service"] == "spec" && m["method"] == "sum")
        .unwrap_or_else(|| panic!("no spec.sum in {s}"));
    assert_eq!((&sum["calls"], &sum["errors"]), (&json!(4), &json!(1)));
    assert!(sum["p99_ms"].as_f64().unwrap() > 0.0, "{sum}");
    // The histogram's cumulative finite buckets, for the page's windowed p99: as
    // many calls in the last as were counted (each took under its bound).
    let buckets = sum["buckets"].as_array().unwrap();
    assert!(buckets.len() > 3, "{sum}");
    let counts: Vec<f64> = buckets.iter().map(|b| b[1].as_f64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "cumulative: {sum}");
    assert_eq!(counts.last(), Some(&4.0), "{sum}");
    let spec = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == "spec-1")
        .unwrap();
    assert_eq!(spec["status"], "healthy");
    assert_eq!(spec["breaker"]["state"], "closed", "{spec}");
    assert!(s["at_ms"].as_u64().unwrap() > 0);

    let (_, health) = get(&h, "/ui/api/health", Some(&secret("ops"))).await;
    let component = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "spec-1")
        .unwrap_or_else(|| panic!("{health}"));
    assert!(component["reason"].is_string());
}

/// The next frame of the live socket, as a JSON array.
async fn frame(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Result<Vec<Value>, Option<u16>> {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("no frame within the wait");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Ok(serde_json::from_str::<Vec<Value>>(&text).unwrap());
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Err(None),
        }
    }
}

async fn live(h: &Harness, token: &str) -> Result<Vec<Value>, Option<u16>> {
    let url = format!("ws://{}/ui/live", h.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
        .send(Message::Text(json!({"token": token}).to_string().into()))
        .await
        .unwrap();
    let hello = frame(&mut socket).await?;
    assert_eq!(hello[0]["kind"], "hello");
    // Keep reading in the caller: hand the socket over through a task.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(items) = frame(&mut socket).await {
            if tx.send(items).is_err() {
                break;
            }
        }
    });
    // The tail is subscribed once hello arrived: make a call and publish an event.
    let admin = secret("admin");
    let got = rpc(h, &admin, "spec.get_data", json!([])).await;
    assert_eq!(got["result"], json!(["hello", 5]));
    let published = rpc(
        h,
        &admin,
        "plexus.publish",
        json!({"topic": "orders.created", "payload": {"n": 1}}),
    )
    .await;
    assert!(published["result"]["id"].is_string(), "{published}");
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        let (mut call, mut event) = (false, false);
        while let Some(items) = rx.recv().await {
            for item in items {
                call |= item["kind"] == "call"
                    && item["method"] == "spec.get_data"
                    && item["caller"] == "root"
                    && item["outcome"] == "ok"
                    && item["correlation_id"]
                        .as_str()
                        .is_some_and(|c| c.len() == 36);
                event |= item["kind"] == "event"
                    && item["topic"] == "orders.created"
                    && item["correlation_id"].is_string();
                seen.push(item);
            }
            if call && event {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the tail did not carry both: {seen:?}");
    Ok(seen)
}

#[tokio::test]
async fn the_live_tail_carries_calls_and_events_with_correlation_ids() {
    let h = harness().await;
    live(&h, &secret("ops")).await.unwrap();
    // The tail's subscription shows on the bus page.
    let (_, bus) = get(&h, "/ui/api/bus", Some(&secret("ops"))).await;
    let names: Vec<&str> = bus["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("ui-live-")), "{bus}");
    assert!(bus["published"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn the_live_tail_refuses_unknown_tokens_and_tokens_without_ops() {
    let h = harness().await;
    assert_eq!(live(&h, "wrong-token").await.unwrap_err(), Some(1008));
    assert_eq!(live(&h, &secret("call")).await.unwrap_err(), Some(1008));
}

#[tokio::test]
async fn configuration_versions_diff_and_rollback_for_admin_only() {
    let h = harness().await;
    let before = h.node.config().current_version();
    h.node
        .call(
            "node.config_set",
            json!({"path": "calls.default.timeout_ms", "value": 1234}),
            CallContext::new(),
        )
        .await
        .unwrap();
    let changed = h.node.config().current_version();
    assert_eq!(changed, before + 1);

    let ops = secret("ops");
    let (_, config) = get(&h, "/ui/api/config", Some(&ops)).await;
    assert_eq!(config["current"], changed);
    assert_eq!(config["versions"][0]["version"], changed, "newest first");

    let path = format!("/ui/api/config/diff?from={before}&to={changed}");
    let (status, diff) = get(&h, &path, Some(&ops)).await;
    assert_eq!(status, 200, "{diff}");
    let changes = diff["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{diff}");
    assert_eq!(changes[0]["path"], "calls.default.timeout_ms");
    assert_eq!(changes[0]["after"], 1234);
    let (status, _) = get(&h, "/ui/api/config/diff?from=1&to=999", Some(&ops)).await;
    assert_eq!(status, 404);
    let (status, _) = get(&h, "/ui/api/config/diff?from=x&to=1", Some(&ops)).await;
    assert_eq!(status, 400);

    // The rollback the page sends: refused for ops, done for admin.
    let params = json!({"version": before});
    let refused = rpc(&h, &ops, "node.config_rollback", params.clone()).await;
    assert_eq!(refused["error"]["code"], -32002, "{refused}");
    assert_eq!(h.node.config().current_version(), changed);
    let done = rpc(&h, &secret("admin"), "node.config_rollback", params).await;
    assert_eq!(done["result"]["rollback_of"], before, "{done}");
    assert_eq!(done["result"]["author"], "root");
    let timeout = h.node.config().get("calls.default.timeout_ms").unwrap();
    assert_ne!(timeout, Some(json!(1234)));
}

#[tokio::test]
async fn families_not_in_the_node_are_absent() {
    let h = harness().await;
    let ops = secret("ops");
    let (_, families) = get(&h, "/ui/api/families", Some(&ops)).await;
    assert_eq!(
        families,
        json!({"datastore": false, "audit": false, "jobs": false, "inference": false})
    );
    for path in [
        "/ui/api/audit",
        "/ui/api/datastore",
        "/ui/api/jobs",
        "/ui/api/jobs/dead?limit=10",
        "/ui/api/inference",
    ] {
        let (status, body) = get(&h, path, Some(&ops)).await;
        assert_eq!((status, body), (200, json!({"absent": true})), "{path}");
    }
    let (status, metrics) = get(&h, "/ui/api/metrics?prefix=plexus_calls", Some(&ops)).await;
    assert_eq!(status, 200);
    assert!(metrics["series"].is_array());
    let (status, _) = get(&h, "/ui/api/metrics?prefix=process_", Some(&ops)).await;
    assert_eq!(status, 400);
}
