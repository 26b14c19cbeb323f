//! Graceful shutdown: stop accepting, finish in-flight requests, close sockets with a
//! close frame, detach external services.

use plexus_core::{InstanceId, ServiceStatus};
use plexus_gateway::GatewayConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Harness, WAIT, descriptor};

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_closes_sockets_with_a_frame() {
    let mut h = Harness::start().await;
    let slow = {
        let http = h.http.clone();
        let url = h.url("/rpc");
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "spec.slow"}))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        })
    };
    tokio::time::timeout(WAIT, h.spec.entered.notified())
        .await
        .unwrap();
    let mut client = h.peer().await;
    client
        .ok("plexus.subscribe", json!({"pattern": "a.>"}))
        .await;
    let mut service = h.peer().await;
    service
        .ok(
            "plexus.register",
            json!({"descriptor": descriptor("calc", "calc-s", &["x"])}),
        )
        .await;
    h.wait_status("calc-s", ServiceStatus::Healthy).await;

    h.signal_stop();
    let frame = client.closed().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Away);
    let frame = service.closed().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Away);
    // No new connections once shutdown began (bounded: the accept loop stops at once).
    tokio::time::timeout(WAIT, async {
        while tokio::net::TcpStream::connect(h.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the gateway still accepts connections");

    // The request in flight when shutdown began still gets its answer.
    h.spec.release.notify_one();
    let (status, body) = tokio::time::timeout(WAIT, slow).await.unwrap().unwrap();
    assert_eq!((status, body["result"].clone()), (200, json!("done")));
    let report = h.stop().await;
    assert!(report.drained);
    assert!(h.node.registry().get(&InstanceId::new("calc-s")).is_none());
}

#[tokio::test]
async fn shutdown_gives_up_on_requests_that_outlast_its_timeout() {
    let mut h = Harness::with(GatewayConfig {
        shutdown_timeout_ms: 200,
        ..GatewayConfig::default()
    })
    .await;
    let http = h.http.clone();
    let url = h.url("/rpc");
    let _stuck = tokio::spawn(async move {
        let _ = http
            .post(url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "spec.slow"}))
            .send()
            .await;
    });
    tokio::time::timeout(WAIT, h.spec.entered.notified())
        .await
        .unwrap();
    let report = h.stop().await;
    assert!(!report.drained);
}
