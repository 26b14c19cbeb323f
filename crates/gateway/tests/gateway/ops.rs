//! Operations endpoints: `/metrics`, `/health`, `/ready`, `/livez`.

use plexus_node::metrics::sample;
use serde_json::{Value, json};

use crate::support::Harness;

#[tokio::test]
async fn metrics_negotiate_the_format_and_count_gateway_requests() {
    let h = Harness::start().await;
    h.call("spec.sum", json!([1])).await;
    h.call("spec.nothing", json!([1])).await;
    let _peer = h.peer().await;

    let text = h.http.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(
        text.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = text.text().await.unwrap();
    let rpc_ok = [("endpoint", "rpc"), ("outcome", "ok")];
    assert_eq!(
        sample(&text, "plexus_gateway_requests_total", &rpc_ok),
        Some(1.0)
    );
    let missing = [("endpoint", "rpc"), ("outcome", "method_not_found")];
    assert_eq!(
        sample(&text, "plexus_gateway_requests_total", &missing),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "plexus_gateway_ws_connections", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "plexus_gateway_request_duration_seconds_count",
            &[("endpoint", "rpc")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "plexus_calls_total",
            &[("service", "spec"), ("method", "sum"), ("outcome", "ok")]
        ),
        Some(1.0)
    );

    let open = h
        .http
        .get(h.url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        open.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(open.text().await.unwrap().ends_with("# EOF\n"));
}

#[tokio::test]
async fn health_ready_and_livez_answer() {
    let h = Harness::start().await;
    let health = h.http.get(h.url("/health")).send().await.unwrap();
    let status = health.status();
    let body: Value = health.json().await.unwrap();
    assert!(body["status"].is_string(), "{body}");
    assert!(body["components"].is_array(), "{body}");
    let critical = body["status"] == "critical";
    assert_eq!(status == 503, critical, "{body}");

    let ready = h.http.get(h.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["accepting"], true);

    let live = h.http.get(h.url("/livez")).send().await.unwrap();
    assert_eq!(
        (live.status().as_u16(), live.text().await.unwrap()),
        (200, "ok".to_owned())
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_get_the_ops_endpoints_then_wait_for_one_to_close() {
    let h = Harness::with(plexus_gateway::GatewayConfig {
        max_connections: 1,
        ops_reserved_connections: 1,
        ..Default::default()
    })
    .await;
    let peer = h.peer().await;
    // The socket holds the only data-plane connection: a connection of the ops
    // reserve answers /livez, and 503 for anything else.
    let live = unpooled().get(h.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let rpc = services_on_a_new_connection(&h).await;
    assert_eq!(rpc.status(), 503);
    assert!(rpc.text().await.unwrap().contains("max_connections"));
    // An idle connection holds the reserve too: the next one waits.
    let idle = h.tcp().await;
    let url = h.url("/livez");
    let mut waiting = tokio::spawn(async move { reqwest::get(url).await.unwrap().status() });
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting).await;
    assert!(early.is_err(), "a connection beyond every place was served");
    drop(peer);
    drop(idle);
    let status = tokio::time::timeout(crate::support::WAIT, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

/// A client that opens a new connection for every request.
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// `node.services` over `/rpc` on a connection of its own.
async fn services_on_a_new_connection(h: &Harness) -> reqwest::Response {
    unpooled()
        .post(h.url("/rpc"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"node.services"}"#)
        .send()
        .await
        .unwrap()
}

/// Reads from `stream` until the server closes it, within `within`; panics if it
/// stays open.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

#[tokio::test]
async fn idle_and_slow_header_connections_cannot_lock_the_node_out() {
    use tokio::io::AsyncWriteExt;
    let h = Harness::with(plexus_gateway::GatewayConfig {
        max_connections: 8,
        ops_reserved_connections: 4,
        header_read_timeout_ms: 400,
        ..Default::default()
    })
    .await;
    // Saturate the data plane: four idle connections and four that send their
    // headers a byte at a time.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(h.tcp().await);
    }
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = h.tcp().await;
        s.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
        slow.push(s);
    }
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            for s in &mut slow {
                let _ = s.write_all(b"X").await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        slow
    });
    // /livez still answers, within a second, on the ops reserve.
    let started = std::time::Instant::now();
    let live = reqwest::Client::new()
        .get(h.url("/livez"))
        .timeout(std::time::Duration::from_secs(1))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // The idle ones and the slow ones are closed at the header timeout.
    for s in &mut idle {
        closed_within(s, std::time::Duration::from_secs(5)).await;
    }
    let mut slow = trickle.await.unwrap();
    for s in &mut slow {
        closed_within(s, std::time::Duration::from_secs(5)).await;
    }
    // And the data plane is free again (once the server has dropped them).
    let served = tokio::time::timeout(crate::support::WAIT, async {
        loop {
            let rpc = services_on_a_new_connection(&h).await;
            if rpc.status() == 200 {
                return;
            }
            assert_eq!(rpc.status(), 503, "only the reserve's answer before that");
        }
    })
    .await;
    assert!(served.is_ok(), "the data plane never came back");
}

#[tokio::test]
async fn one_peer_cannot_hold_more_than_its_share() {
    let h = Harness::with(plexus_gateway::GatewayConfig {
        max_connections_per_peer: 2,
        ..Default::default()
    })
    .await;
    let _a = h.tcp().await;
    let _b = h.tcp().await;
    let mut third = h.tcp().await;
    closed_within(&mut third, std::time::Duration::from_secs(5)).await;
    let metrics = reqwest::Client::new();
    drop(_a);
    // The share comes back when a connection closes: /metrics counts the refusal.
    let text = tokio::time::timeout(crate::support::WAIT, async {
        loop {
            if let Ok(r) = metrics.get(h.url("/metrics")).send().await {
                return r.text().await.unwrap();
            }
        }
    })
    .await
    .unwrap();
    assert!(
        text.contains("plexus_gateway_connections_refused_total{reason=\"per_peer\"} 1"),
        "{text}"
    );
}
