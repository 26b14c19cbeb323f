//! The tool-call benchmark behind `mcp_call_c16`: MCP `tools/call` per second over
//! Streamable HTTP with a number of concurrent clients, each in its own 2025-11-25
//! session.
//!
//! `plexus bench gateway` starts a node, serves the gateway (with `plexus-mcp`'s
//! router at `/mcp`) and calls [`tool_calls`] with 16 clients; the result is
//! reported as `mcp_call_c16` (unit `calls/s`, higher is better) with `p99_us`
//! beside it.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct CallThroughput {
    /// Clients that called at the same time.
    pub clients: usize,
    /// Tool calls that came back with a result that is not an error.
    pub calls: u64,
    /// Tool calls that failed (HTTP error, JSON-RPC error or `isError`).
    pub errors: u64,
    /// How long the calls ran.
    pub elapsed: Duration,
    /// `calls / elapsed`.
    pub calls_per_sec: f64,
    /// Median latency of one call, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency of one call, in microseconds.
    pub p99_us: f64,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The server could not be reached or refused a session.
    #[error("MCP benchmark: {0}")]
    Setup(String),
}

/// Runs `clients` concurrent clients against the MCP endpoint at `url` for
/// `duration`, each opening a session and calling `tool` with `arguments` in a
/// loop.
pub async fn tool_calls(
    url: &str,
    tool: &str,
    arguments: Value,
    clients: usize,
    duration: Duration,
) -> Result<CallThroughput, BenchError> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(1))
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        sessions.push(open_session(&http, url).await?);
    }
    let start = Instant::now();
    let until = start + duration;
    let mut tasks = Vec::with_capacity(sessions.len());
    for session in sessions {
        let http = http.clone();
        let url = url.to_owned();
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        })
        .to_string();
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let (mut calls, mut errors) = (0u64, 0u64);
            while Instant::now() < until {
                let began = Instant::now();
                let ok = post(&http, &url, Some(&session), body.clone())
                    .await
                    .is_ok_and(|(_, text)| is_success(&text));
                let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = histogram.record(micros.max(1));
                if ok {
                    calls += 1;
                } else {
                    errors += 1;
                }
            }
            // End the session, as a client that is done should: the server caps the
            // sessions one address may hold.
            let _ = http
                .delete(&url)
                .header("mcp-session-id", &session)
                .header("mcp-protocol-version", "2025-11-25")
                .send()
                .await;
            (calls, errors, histogram)
        }));
    }
    let mut histogram = new_histogram();
    let (mut calls, mut errors) = (0u64, 0u64);
    for task in tasks {
        let (c, e, h) = task
            .await
            .map_err(|e| BenchError::Setup(format!("a client task failed: {e}")))?;
        calls += c;
        errors += e;
        let _ = histogram.add(&h);
    }
    let elapsed = start.elapsed();
    Ok(CallThroughput {
        clients: clients.max(1),
        calls,
        errors,
        elapsed,
        calls_per_sec: calls as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        p50_us: histogram.value_at_quantile(0.5) as f64,
        p99_us: histogram.value_at_quantile(0.99) as f64,
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant figures: these bounds are always valid.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

fn is_success(text: &str) -> bool {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .any(|m| m.get("result").is_some_and(|r| r["isError"] != json!(true)))
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: String,
) -> Result<(reqwest::header::HeaderMap, String), BenchError> {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let response = request
        .send()
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    if !response.status().is_success() {
        return Err(BenchError::Setup(format!("HTTP {}", response.status())));
    }
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok((headers, text))
}

async fn open_session(http: &reqwest::Client, url: &str) -> Result<String, BenchError> {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "plexus-bench", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    let (headers, _) = post(http, url, None, init.to_string()).await?;
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| BenchError::Setup("initialize returned no Mcp-Session-Id".into()))?
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(http, url, Some(&session), initialized.to_string()).await?;
    Ok(session)
}
