//! External services over `/ws`: register, answer calls, drop, fail over, come back.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use plexus_core::{InstanceId, ServiceStatus};
use plexus_gateway::GatewayConfig;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Harness, WAIT, code, descriptor};

/// How a test service answers the calls it receives.
#[derive(Clone)]
enum Mode {
    /// With its instance id.
    Answer,
    /// Never; `got` is notified when a call arrives.
    Hang(Arc<Notify>),
    /// With this error object.
    Fail(Value),
}

/// Registers `instance` of `calc` (method `whoami`), answers calls in a task, and
/// waits until the instance is Healthy; aborting the task drops the socket without
/// a close frame.
async fn service(h: &Harness, instance: &str, mode: Mode) -> JoinHandle<()> {
    let mut peer = h.peer().await;
    let registered = peer
        .ok(
            "plexus.register",
            json!({"descriptor": descriptor("calc", instance, &["whoami"])}),
        )
        .await;
    assert_eq!(registered["instance"], instance);
    assert!(registered["heartbeat_ttl_ms"].as_u64().unwrap() > 0);
    let name = instance;
    let instance = instance.to_owned();
    let mut socket = peer.socket;
    let task = tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let request: Value = serde_json::from_str(&text).unwrap();
            let (Some(id), Some(method)) = (request.get("id"), request.get("method")) else {
                continue;
            };
            assert_eq!(method, "calc.whoami");
            assert_eq!(request["plexus"]["instance"], instance.as_str());
            let answer = match &mode {
                Mode::Answer => json!({"jsonrpc": "2.0", "id": id, "result": instance}),
                Mode::Hang(got) => {
                    got.notify_one();
                    continue;
                }
                Mode::Fail(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
            };
            if socket
                .send(Message::Text(answer.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    h.wait_status(name, ServiceStatus::Healthy).await;
    task
}

async fn whoami(h: &Harness) -> String {
    let response = h.call("calc.whoami", json!({})).await;
    match response["result"].as_str() {
        Some(who) => who.to_owned(),
        None => panic!("calc.whoami failed: {response}"),
    }
}

#[tokio::test]
async fn calls_reach_every_instance_fail_over_when_one_drops_and_return_when_it_reconnects() {
    let h = Harness::start().await;
    let a = service(&h, "calc-a", Mode::Answer).await;
    let _b = service(&h, "calc-b", Mode::Answer).await;
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        seen.insert(whoami(&h).await);
    }
    assert_eq!(
        seen,
        BTreeSet::from(["calc-a".to_owned(), "calc-b".to_owned()])
    );

    a.abort();
    h.wait_status("calc-a", ServiceStatus::Unhealthy).await;
    let reg = h.node.registry().get(&InstanceId::new("calc-a")).unwrap();
    assert_eq!(reg.reason.as_deref(), Some("connection lost"));
    for _ in 0..4 {
        assert_eq!(whoami(&h).await, "calc-b");
    }

    // It comes back on a new socket with the same instance id.
    let _a = service(&h, "calc-a", Mode::Answer).await;
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        seen.insert(whoami(&h).await);
    }
    assert!(seen.contains("calc-a"), "{seen:?}");
}

#[tokio::test]
async fn a_call_in_flight_on_a_dropped_socket_fails_over_to_another_instance() {
    let h = Harness::start().await;
    let got = Arc::new(Notify::new());
    let a = service(&h, "calc-a", Mode::Hang(got.clone())).await;
    let _b = service(&h, "calc-b", Mode::Answer).await;
    let call = || {
        let http = h.http.clone();
        let url = h.url("/rpc");
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "calc.whoami", "params": {}}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    // Round robin: within two calls one is waiting on calc-a, which never answers.
    let mut waiting = None;
    for _ in 0..2 {
        let mut pending = call();
        tokio::select! {
            () = got.notified() => {
                waiting = Some(pending);
                break;
            }
            answer = &mut pending => assert_eq!(answer.unwrap()["result"], "calc-b"),
        }
    }
    let waiting = waiting.expect("no call reached calc-a");
    a.abort();
    let answer = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(answer["result"], "calc-b", "{answer}");
}

#[tokio::test]
async fn a_dropped_instance_is_deregistered_after_the_grace_period() {
    let h = Harness::with(GatewayConfig {
        detach_grace_ms: 100,
        ..GatewayConfig::default()
    })
    .await;
    let a = service(&h, "calc-a", Mode::Answer).await;
    a.abort();
    h.wait_gone("calc-a").await;
    let gone = h.call("calc.whoami", json!({})).await;
    assert_eq!(code(&gone), -32601);
}

#[tokio::test]
async fn service_errors_come_back_with_their_meaning() {
    let h = Harness::start().await;
    let error = json!({"code": -32602, "message": "bad text", "data": {"field": "/text"}});
    let _a = service(&h, "calc-a", Mode::Fail(error)).await;
    let bad = h.call("calc.whoami", json!({})).await;
    assert_eq!(code(&bad), -32602);
    assert_eq!(bad["error"]["data"]["field"], "/text");
    assert_eq!(bad["error"]["data"]["reason"], "bad text");
}

#[tokio::test]
async fn registration_is_checked_heartbeats_and_deregistration_work() {
    let h = Harness::start().await;
    let mut peer = h.peer().await;
    let taken = peer
        .request(
            "plexus.register",
            json!({"descriptor": descriptor("spec", "spec-1", &["sum"])}),
        )
        .await;
    assert_eq!(
        code(&taken),
        -32602,
        "an in-process instance was taken over"
    );
    let reserved = peer
        .request(
            "plexus.register",
            json!({"descriptor": descriptor("plexus", "p-1", &["x"])}),
        )
        .await;
    assert_eq!(code(&reserved), -32602);
    let invalid = peer
        .request(
            "plexus.register",
            json!({"descriptor": descriptor("ca.lc", "c-1", &["x"])}),
        )
        .await;
    assert_eq!(invalid["error"]["data"]["field"], "/descriptor/name");
    let missing = peer.request("plexus.register", json!({})).await;
    assert_eq!(code(&missing), -32602);

    peer.ok(
        "plexus.register",
        json!({"descriptor": descriptor("calc", "calc-z", &["whoami"])}),
    )
    .await;
    let beat = peer.ok("plexus.heartbeat", json!({})).await;
    assert_eq!(beat, json!({"instances": ["calc-z"]}));
    let other = peer
        .request("plexus.heartbeat", json!({"instance": "calc-y"}))
        .await;
    assert_eq!(code(&other), -32602);
    let gone = peer.ok("plexus.deregister", json!({})).await;
    assert_eq!(gone, json!({"deregistered": ["calc-z"]}));
    h.wait_gone("calc-z").await;
}

#[tokio::test]
async fn a_services_own_error_code_reaches_the_caller_unchanged() {
    let h = Harness::start().await;
    let error = json!({"code": 1001, "message": "out of stock", "data": {"sku": "x-1"}});
    let _a = service(&h, "calc-a", Mode::Fail(error)).await;
    let own = h.call("calc.whoami", json!({})).await;
    assert_eq!(code(&own), 1001, "{own}");
    assert_eq!(
        own["error"]["data"]["detail"],
        json!({"sku": "x-1"}),
        "{own}"
    );
    assert!(
        own["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of stock"),
        "{own}"
    );
    // The same for a caller on a WebSocket.
    let mut peer = h.peer().await;
    let over_ws = peer.request("calc.whoami", json!({})).await;
    assert_eq!(code(&over_ws), 1001, "{over_ws}");
    assert_eq!(over_ws["error"]["data"]["detail"], json!({"sku": "x-1"}));
}

#[tokio::test]
async fn a_reserved_code_without_a_meaning_is_a_service_failure() {
    let h = Harness::start().await;
    let error = json!({"code": -32099, "message": "odd", "data": {"k": 1}});
    let _a = service(&h, "calc-a", Mode::Fail(error)).await;
    let got = h.call("calc.whoami", json!({})).await;
    assert_eq!(code(&got), -32000, "{got}");
    assert_eq!(got["error"]["data"]["detail"], json!({"k": 1}), "{got}");
}

#[tokio::test]
async fn a_service_passes_the_conversation_on_and_its_calls_and_events_join_it() {
    let h = Harness::start().await;
    let mut service = h.peer().await;
    service
        .ok(
            "plexus.register",
            json!({"descriptor": descriptor("calc", "conv-1", &["whoami"])}),
        )
        .await;
    h.wait_status("conv-1", ServiceStatus::Healthy).await;
    let mut listener = h.peer().await;
    listener
        .ok("plexus.subscribe", json!({"pattern": "cases.*"}))
        .await;

    // A call on /rpc naming its conversation reaches the service with those ids.
    let correlation = "0190a3c2-7b1e-7000-8000-0000000000c1";
    let cause = "0190a3c2-7b1e-7000-8000-0000000000e1";
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "calc.whoami", "params": {},
                      "plexus": {"correlation_id": correlation, "causation_id": cause}});
    let url = h.url("/rpc");
    let caller = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("sent")
            .json::<Value>()
            .await
            .expect("an answer")
    });
    let call = service.notification("calc.whoami").await;
    assert_eq!(call["plexus"]["correlation_id"], correlation, "{call}");
    assert_eq!(call["plexus"]["causation_id"], cause, "{call}");

    // While serving it, the service publishes with the ids it received: the event
    // joins the conversation.
    service
        .send(
            &json!({"jsonrpc": "2.0", "id": "p-1", "method": "plexus.publish",
                      "params": {"topic": "cases.opened", "payload": {"n": 1}},
                      "plexus": call["plexus"].clone()}),
        )
        .await;
    service
        .send(&json!({"jsonrpc": "2.0", "id": call["id"], "result": "conv-1"}))
        .await;
    let answered = tokio::time::timeout(WAIT, caller)
        .await
        .expect("answered in time")
        .expect("the caller ran");
    assert_eq!(answered["result"], "conv-1", "{answered}");
    let event = listener.notification("plexus.event").await;
    assert_eq!(event["params"]["correlation_id"], correlation, "{event}");
    assert_eq!(event["params"]["causation_id"], cause, "{event}");

    // An id that is not a UUID is refused as an invalid request, naming the member.
    let refused = peer_request_with(&mut listener, json!({"correlation_id": "case-7"})).await;
    assert_eq!(code(&refused), -32600, "{refused}");
    assert!(
        refused["error"]
            .to_string()
            .contains("`plexus.correlation_id` must be a UUID"),
        "{refused}"
    );
    let refused = peer_request_with(&mut listener, json!({"causation_id": 7})).await;
    assert_eq!(code(&refused), -32600, "{refused}");
}

/// A `plexus.publish` over `listener`'s socket carrying `plexus`; its response.
async fn peer_request_with(peer: &mut crate::support::Peer, plexus: Value) -> Value {
    peer.send(
        &json!({"jsonrpc": "2.0", "id": "bad", "method": "plexus.publish",
                      "params": {"topic": "cases.x"}, "plexus": plexus}),
    )
    .await;
    loop {
        let message = peer.next().await;
        if message["id"] == "bad" {
            return message;
        }
    }
}
