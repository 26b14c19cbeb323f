//! `plexus bench gateway`: JSON-RPC over HTTP and WebSocket round trips through the
//! gateway, beside a bare axum server returning the same bytes.
//!
//! Results (stable names): `jsonrpc_http_c1`, `jsonrpc_http_c16`, `jsonrpc_http_c64`
//! (requests/s of `echo.say` over `POST /rpc` with 1, 16 and 64 keep-alive
//! connections, each with the bare axum handler's requests/s as ceiling and the
//! ratio), `jsonrpc_http_c64_p99` (µs, beside the bare handler's p99), and
//! `ws_roundtrip_c16` (round trips/s of the same call over 16 WebSockets, beside a
//! bare axum WebSocket handler answering each message with the same bytes).
//!
//! The gateway runs in front of a node with one in-process echo service; every call
//! goes through the whole call path. The ceiling is an axum server on another
//! ephemeral port whose handler reads the request body and returns the exact bytes the
//! gateway answered. Both listen on loopback with Nagle's algorithm off, and are
//! driven by the same client (one `reqwest` client per connection, keep-alive) in the
//! same runtime for the same fixed time; the gateway and its ceiling alternate for a
//! few rounds and the best round of each counts. Client and servers share the
//! machine's cores, as they would on one host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, async_trait,
};
use plexus_gateway::{Gateway, GatewayConfig};
use plexus_node::Node;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "gateway";
const CEILING: &str = "bare axum handler, same bytes";
const WS_CEILING: &str = "bare axum WebSocket, same bytes";
const REQUEST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"echo.say","params":{"text":"hello"}}"#;

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

/// The in-process service the gateway calls: `echo.say` returns its params.
struct Echo;

#[async_trait]
impl Service for Echo {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("echo", "bench")
            .with_instance("echo-1")
            .with_method(MethodDescriptor::new("say").idempotent())
    }

    async fn call(&self, _: &str, params: Value, _: CallContext) -> Result<Value, ServiceError> {
        Ok(params)
    }
}

struct Plan {
    /// How long one measurement runs.
    window: Duration,
    /// How many times the gateway and its ceiling alternate.
    rounds: usize,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                window: Duration::from_millis(400),
                rounds: 1,
            }
        } else {
            Self {
                window: Duration::from_secs(2),
                rounds: 3,
            }
        }
    }
}

/// What one measurement saw.
struct Load {
    per_second: f64,
    latency_us: Histogram<u64>,
}

impl Load {
    fn better(self, other: Load) -> Load {
        if other.per_second > self.per_second {
            other
        } else {
            self
        }
    }
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(failed)
}

/// `connections` clients post `REQUEST` to `url` in a loop for `window`.
async fn http_load(url: &str, connections: usize, window: Duration) -> Result<Load, BenchError> {
    let started = Instant::now();
    let until = started + window;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .map_err(failed)?;
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram()?;
            let mut done = 0u64;
            while Instant::now() < until {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(REQUEST)
                    .send()
                    .await
                    .map_err(failed)?;
                if !response.status().is_success() {
                    return Err(failed(format!("{url} answered {}", response.status())));
                }
                response.bytes().await.map_err(failed)?;
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                hist.record(us.max(1)).map_err(failed)?;
                done += 1;
            }
            Ok::<_, BenchError>((done, hist))
        }));
    }
    let mut total = 0u64;
    let mut latency_us = histogram()?;
    for task in tasks {
        let (done, hist) = task.await.map_err(failed)??;
        total += done;
        latency_us.add(hist).map_err(failed)?;
    }
    Ok(Load {
        per_second: total as f64 / started.elapsed().as_secs_f64(),
        latency_us,
    })
}

/// `connections` WebSockets each send `REQUEST` and wait for the answer, in a loop.
async fn ws_load(url: &str, connections: usize, window: Duration) -> Result<f64, BenchError> {
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(failed)?;
        sockets.push(socket);
    }
    let started = Instant::now();
    let until = started + window;
    let mut tasks = Vec::with_capacity(connections);
    for mut socket in sockets {
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < until {
                socket
                    .send(Message::Text(REQUEST.into()))
                    .await
                    .map_err(failed)?;
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Text(_))) => break,
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(failed(e)),
                        None => return Err(failed("the WebSocket closed")),
                    }
                }
                done += 1;
            }
            let _ = socket.close(None).await;
            Ok::<_, BenchError>(done)
        }));
    }
    let mut total = 0u64;
    for task in tasks {
        total += task.await.map_err(failed)??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// A node with the echo service and a gateway in front of it; the gateway's address.
async fn gateway() -> Result<(Node, SocketAddr), BenchError> {
    let node = Node::builder("bench-gateway")
        .service(Arc::new(Echo))
        .start()
        .await
        .map_err(failed)?;
    let mcp = plexus_mcp::router(node.clone(), plexus_mcp::McpConfig::default()).map_err(failed)?;
    let gateway = Gateway::builder(node.clone())
        .config(GatewayConfig::default())
        .route("/mcp", mcp)
        .build()
        .map_err(failed)?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    tokio::spawn(gateway.serve(listener, std::future::pending()));
    Ok((node, addr))
}

/// A bare axum server answering `POST /rpc` and every `/ws` message with `answer`.
async fn ceiling(answer: bytes::Bytes) -> Result<SocketAddr, BenchError> {
    let http_answer = answer.clone();
    let router = Router::new()
        .route(
            "/rpc",
            post(move |_body: bytes::Bytes| {
                let answer = http_answer.clone();
                async move { ([("content-type", "application/json")], answer) }
            }),
        )
        .route(
            "/ws",
            get(move |upgrade: WebSocketUpgrade| {
                let answer = answer.clone();
                async move {
                    upgrade.on_upgrade(move |mut socket| async move {
                        let text = String::from_utf8_lossy(&answer).into_owned();
                        while let Some(Ok(message)) = socket.recv().await {
                            let AxumMessage::Text(_) = message else {
                                continue;
                            };
                            let reply = AxumMessage::Text(text.clone().into());
                            if socket.send(reply).await.is_err() {
                                break;
                            }
                        }
                    })
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

/// Runs the gateway benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let progress = Progress::new(options, 5);
    let mut report = Report::new(BENCH, options);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(failed)?;
    runtime.block_on(async {
        let (node, gateway_addr) = gateway().await?;
        let gateway_url = format!("http://{gateway_addr}/rpc");
        // The exact bytes the gateway answers, for the ceiling to return.
        let answer = reqwest::Client::new()
            .post(&gateway_url)
            .header("content-type", "application/json")
            .body(REQUEST)
            .send()
            .await
            .map_err(failed)?
            .bytes()
            .await
            .map_err(failed)?;
        if !answer.starts_with(br#"{"jsonrpc":"2.0","result""#) {
            return Err(failed(format!(
                "the gateway answered {}",
                String::from_utf8_lossy(&answer)
            )));
        }
        let ceiling_addr = ceiling(answer).await?;
        let ceiling_url = format!("http://{ceiling_addr}/rpc");
        let warm = plan.window / 4;
        http_load(&gateway_url, 4, warm).await?;
        http_load(&ceiling_url, 4, warm).await?;

        for connections in [1usize, 16, 64] {
            progress.step(&format!("JSON-RPC over HTTP, {connections} connections"));
            let (mut ours, mut bare) = (None::<Load>, None::<Load>);
            for _ in 0..plan.rounds {
                let o = http_load(&gateway_url, connections, plan.window).await?;
                let b = http_load(&ceiling_url, connections, plan.window).await?;
                ours = Some(match ours {
                    Some(prev) => prev.better(o),
                    None => o,
                });
                bare = Some(match bare {
                    Some(prev) => prev.better(b),
                    None => b,
                });
            }
            let (Some(ours), Some(bare)) = (ours, bare) else {
                return Err(failed("no round ran"));
            };
            let name = format!("jsonrpc_http_c{connections}");
            let mut result =
                BenchResult::new(&name, Unit::RequestsPerSecond, ours.per_second, true)
                    .with_ceiling(CEILING, bare.per_second);
            if connections >= 16 {
                result = result.with_target("ratio >= 0.5");
            }
            report.results.push(result);
            if connections == 64 {
                let p99 = ours.latency_us.value_at_quantile(0.99) as f64;
                let bare_p99 = bare.latency_us.value_at_quantile(0.99) as f64;
                report.results.push(
                    BenchResult::new("jsonrpc_http_c64_p99", Unit::Micros, p99, false)
                        .with_ceiling(CEILING, bare_p99),
                );
            }
            progress.done_step();
        }

        progress.step("JSON-RPC over WebSocket, 16 connections");
        let gateway_ws = format!("ws://{gateway_addr}/ws");
        let ceiling_ws = format!("ws://{ceiling_addr}/ws");
        let (mut ours, mut bare) = (0f64, 0f64);
        for _ in 0..plan.rounds {
            ours = ours.max(ws_load(&gateway_ws, 16, plan.window).await?);
            bare = bare.max(ws_load(&ceiling_ws, 16, plan.window).await?);
        }
        report.results.push(
            BenchResult::new("ws_roundtrip_c16", Unit::RoundTripsPerSecond, ours, true)
                .with_ceiling(WS_CEILING, bare),
        );
        progress.done_step();

        progress.step("MCP tool calls over Streamable HTTP, 16 clients");
        let mcp_url = format!("http://{gateway_addr}/mcp");
        let mut best = 0f64;
        for _ in 0..plan.rounds {
            let run = crate::mcp::tool_calls(
                &mcp_url,
                "echo.say",
                serde_json::json!({"text": "hello"}),
                16,
                plan.window,
            )
            .await
            .map_err(failed)?;
            if run.errors > 0 {
                return Err(failed(format!("{} MCP tool calls failed", run.errors)));
            }
            best = best.max(run.calls_per_sec);
        }
        report.results.push(BenchResult::new(
            "mcp_call_c16",
            Unit::CallsPerSecond,
            best,
            true,
        ));
        progress.done_step();
        node.shutdown(Duration::from_secs(1)).await;
        Ok::<_, BenchError>(())
    })?;
    progress.finish();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_quick_run_reports_every_figure_beside_its_ceiling() {
        let report = crate::support::quick_run_with_ceilings(
            run,
            &[
                "jsonrpc_http_c1",
                "jsonrpc_http_c16",
                "jsonrpc_http_c64",
                "jsonrpc_http_c64_p99",
                "ws_roundtrip_c16",
            ],
        );
        let mcp = report.get("mcp_call_c16").unwrap();
        assert!(mcp.value > 0.0);
    }
}
