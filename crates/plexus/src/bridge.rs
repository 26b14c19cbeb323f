//! `plexus mcp` against a running node: MCP over stdin and stdout, relayed to the
//! node's `/mcp` (Streamable HTTP), so an MCP client that launches its servers sees
//! the node's services and its store, not a second node of its own.
//!
//! Each line read from stdin is one JSON-RPC message, POSTed to `/mcp` with the
//! session id and protocol version the `initialize` answer gave; the answer (a JSON
//! body, or the `data:` lines of an event stream) is written to stdout one message
//! per line. When stdin closes, the session is ended with `DELETE /mcp`.

use anyhow::Context;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Whether a node answers `/livez` at `url` within half a second.
pub(crate) async fn node_answers(url: &str) -> bool {
    let probe = reqwest::Client::new()
        .get(format!("{url}/livez"))
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    probe.is_ok_and(|r| r.status().is_success())
}

/// Relays stdin to `url`'s `/mcp` and the answers to stdout until stdin closes.
pub(crate) async fn relay(url: &str, token: Option<&str>) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let endpoint = format!("{url}/mcp");
    let mut session: Option<String> = None;
    let mut version: Option<String> = None;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        if line.trim().is_empty() {
            continue;
        }
        let mut request = http
            .post(&endpoint)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(line);
        if let Some(id) = &session {
            request = request.header("mcp-session-id", id);
        }
        if let Some(v) = &version {
            request = request.header("mcp-protocol-version", v);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("sending to {endpoint}"))?;
        if let Some(id) = answer.headers().get("mcp-session-id") {
            session = id.to_str().ok().map(str::to_owned);
        }
        let stream = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = answer.text().await.context("reading the node's answer")?;
        let messages: Vec<&str> = if stream {
            body.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        } else {
            vec![body.trim()]
        };
        for message in messages.into_iter().filter(|m| !m.is_empty()) {
            if let Ok(value) = serde_json::from_str::<Value>(message)
                && let Some(v) = value["result"]["protocolVersion"].as_str()
            {
                version = Some(v.to_owned());
            }
            stdout.write_all(message.as_bytes()).await?;
            stdout.write_all(b"\n").await?;
            stdout.flush().await?;
        }
    }
    if let Some(id) = session {
        let _ = http
            .delete(&endpoint)
            .header("mcp-session-id", id)
            .send()
            .await;
    }
    Ok(())
}
