//! Helpers for tests that talk to the MCP server over HTTP (feature `test-util`).

use serde_json::Value;

/// The JSON-RPC messages of an answer's body: the body itself when it is JSON, or
/// the `data:` lines of an SSE stream.
pub fn messages(body: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        return vec![value];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}
