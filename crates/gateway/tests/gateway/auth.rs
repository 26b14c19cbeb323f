//! Every scope against every endpoint: what each token may do, what it may not, and
//! that refusals are counted.

use plexus_gateway::{GatewayConfig, TokenConfig};
use plexus_node::metrics::sample;
use serde_json::{Value, json};

use crate::support::{Harness, connect, descriptor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Forbidden,
    Unauthorized,
}
use Outcome::*;

const ACTIONS: [&str; 13] = [
    "rpc call spec.get_data",
    "rpc call other.x",
    "rpc plexus.publish news.a",
    "GET /metrics",
    "GET /health",
    "GET /ready",
    "GET /livez",
    "ws upgrade",
    "ws call spec.get_data",
    "ws subscribe news.*",
    "ws subscribe >",
    "ws publish news.a",
    "ws register calc",
];

const TOKENS: [(&str, &str); 6] = [
    ("admin", "admin"),
    ("ops", "ops"),
    ("call", "call:spec.*"),
    ("publish", "publish:news.>"),
    ("subscribe", "subscribe:news.>"),
    ("register", "register:calc"),
];

fn secret(name: &str) -> String {
    format!("{name}-token-0123456789abcdef")
}

/// The actions (by index in [`ACTIONS`]) each token may do.
fn allowed(token: &str) -> Vec<usize> {
    let always = [5, 6];
    let mut ok: Vec<usize> = match token {
        "admin" => (0..ACTIONS.len()).collect(),
        "ops" => vec![3, 4, 7],
        "call" => vec![0, 7, 8],
        "publish" => vec![2, 7, 11],
        "subscribe" => vec![7, 9],
        "register" => vec![7, 12],
        _ => vec![],
    };
    ok.extend(always);
    ok
}

fn rpc_outcome(status: u16, body: &Value) -> Outcome {
    match (status, body["error"]["code"].as_i64()) {
        (401, Some(-32001)) => Unauthorized,
        (200, Some(-32002)) => Forbidden,
        (200, _) => Allowed,
        other => panic!("unexpected answer {other:?}: {body}"),
    }
}

async fn http_get(h: &Harness, path: &str, token: Option<&str>) -> Outcome {
    let mut request = h.http.get(h.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    match response.status().as_u16() {
        200 | 503 => Allowed,
        401 => {
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], -32001);
            Unauthorized
        }
        403 => {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], -32002);
            Forbidden
        }
        other => panic!("{path}: {other}"),
    }
}

async fn act(h: &Harness, action: usize, token: Option<&str>, who: &str) -> Outcome {
    let rpc = |method: &str, params: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
    };
    match action {
        0..=2 => {
            let body = match action {
                0 => rpc("spec.get_data", json!([])),
                1 => rpc("other.x", json!([])),
                _ => rpc("plexus.publish", json!({"topic": "news.a"})),
            };
            let (status, got) = h.rpc_text(&body, token).await;
            rpc_outcome(status, &got)
        }
        3 => http_get(h, "/metrics", token).await,
        4 => http_get(h, "/health", token).await,
        5 => http_get(h, "/ready", token).await,
        6 => http_get(h, "/livez", token).await,
        _ => {
            let mut peer = match connect(&h.ws_url(), token).await {
                Ok(peer) => peer,
                Err(401) => return Unauthorized,
                Err(other) => panic!("ws upgrade: {other}"),
            };
            let response = match action {
                7 => return Allowed,
                8 => peer.request("spec.get_data", json!([])).await,
                9 => {
                    peer.request("plexus.subscribe", json!({"pattern": "news.*"}))
                        .await
                }
                10 => {
                    peer.request("plexus.subscribe", json!({"pattern": ">"}))
                        .await
                }
                11 => {
                    peer.request("plexus.publish", json!({"topic": "news.a"}))
                        .await
                }
                _ => {
                    let d = descriptor("calc", &format!("calc-{who}"), &["x"]);
                    peer.request("plexus.register", json!({"descriptor": d}))
                        .await
                }
            };
            match response["error"]["code"].as_i64() {
                Some(-32002) => Forbidden,
                Some(-32001) => Unauthorized,
                Some(other) if action != 8 => panic!("{}: {other}: {response}", ACTIONS[action]),
                _ => Allowed,
            }
        }
    }
}

#[tokio::test]
async fn every_scope_against_every_endpoint() {
    let tokens = TOKENS
        .iter()
        .map(|(name, scope)| TokenConfig::new(*name, secret(name), [*scope]))
        .collect();
    let h = Harness::with(GatewayConfig {
        tokens,
        ..GatewayConfig::default()
    })
    .await;
    let mut forbidden = 0;
    let mut failures = Vec::new();
    for (name, _) in TOKENS {
        let secret = secret(name);
        let ok = allowed(name);
        for (i, action) in ACTIONS.iter().enumerate() {
            let got = act(&h, i, Some(&secret), name).await;
            let want = if ok.contains(&i) { Allowed } else { Forbidden };
            if got == Forbidden {
                forbidden += 1;
            }
            if got != want {
                failures.push(format!("{name} × {action}: got {got:?}, want {want:?}"));
            }
        }
    }
    let mut unauthorized = [0; 2];
    for (k, token) in [None, Some("wrong-token-0123456789abcdef")]
        .into_iter()
        .enumerate()
    {
        for (i, action) in ACTIONS.iter().enumerate() {
            let got = act(&h, i, token, "anonymous").await;
            let want = if allowed("").contains(&i) {
                Allowed
            } else {
                Unauthorized
            };
            if got == Unauthorized {
                unauthorized[k] += 1;
            }
            if got != want {
                failures.push(format!("{token:?} × {action}: got {got:?}, want {want:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let text = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth(secret("ops"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |reason| {
        sample(
            &text,
            "plexus_gateway_auth_failures_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(count("missing"), Some(f64::from(unauthorized[0])));
    assert_eq!(count("unknown"), Some(f64::from(unauthorized[1])));
    assert_eq!(count("forbidden"), Some(f64::from(forbidden)));
    for (name, _) in TOKENS {
        assert!(!text.contains(&secret(name)), "a token appears in /metrics");
    }
}

#[tokio::test]
async fn the_caller_is_the_tokens_name_and_malformed_headers_are_refused() {
    let h = Harness::with(GatewayConfig {
        tokens: vec![TokenConfig::new("ci", secret("ci"), ["admin"])],
        ..GatewayConfig::default()
    })
    .await;
    let response = h
        .http
        .post(h.url("/rpc"))
        .header("authorization", format!("Basic {}", secret("ci")))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "spec.get_data"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "malformed");
    let (status, got) = h
        .rpc_text(
            r#"{"jsonrpc": "2.0", "id": 1, "method": "spec.caller"}"#,
            Some(&secret("ci")),
        )
        .await;
    assert_eq!((status, got["result"].clone()), (200, json!("ci")));
}

#[tokio::test]
async fn a_nested_router_sits_behind_the_same_auth_and_sees_the_caller() {
    use axum::routing::get;
    use plexus_gateway::{Caller, Gateway, Need};

    let node = plexus_node::Node::builder("nested").start().await.unwrap();
    let extra = axum::Router::new().route(
        "/whoami",
        get(
            |axum::Extension(caller): axum::Extension<Caller>| async move {
                let may = caller.allows(Need::Call("spec.sum"));
                format!("{} {may}", caller.name().unwrap_or("-"))
            },
        ),
    );
    let gateway = Gateway::builder(node)
        .config(GatewayConfig {
            tokens: vec![TokenConfig::new("ci", secret("ci"), ["call:spec.*"])],
            ..GatewayConfig::default()
        })
        .route("/mcp", extra)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp/whoami", listener.local_addr().unwrap());
    tokio::spawn(gateway.serve(listener, std::future::pending()));
    let http = reqwest::Client::new();
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let known = http
        .get(&url)
        .bearer_auth(secret("ci"))
        .send()
        .await
        .unwrap();
    assert_eq!(known.text().await.unwrap(), "ci true");
}
