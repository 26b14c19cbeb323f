//! Operations endpoints: `/metrics`, `/health`, `/ready`, `/livez`.

use plexus_node::metrics::sample;
use serde_json::{Value, json};

use crate::support::{Harness, connect};

#[tokio::test]
async fn metrics_negotiate_the_format_and_count_gateway_requests() {
    let h = Harness::start().await;
    h.call("spec.sum", json!([1])).await;
    h.call("spec.nothing", json!([1])).await;
    let _peer = connect(&h.ws_url(), None).await.unwrap();

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
async fn connections_beyond_the_limit_wait_for_one_to_close() {
    let h = Harness::with(plexus_gateway::GatewayConfig {
        max_connections: 1,
        ..Default::default()
    })
    .await;
    let peer = connect(&h.ws_url(), None).await.unwrap();
    let url = h.url("/livez");
    let mut waiting = tokio::spawn(async move { reqwest::get(url).await.unwrap().status() });
    // While the socket holds the only connection, the request is not served.
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting).await;
    assert!(
        early.is_err(),
        "a connection beyond max_connections was served"
    );
    drop(peer);
    let status = tokio::time::timeout(crate::support::WAIT, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}
