//! A token's scopes bind what it does through `/mcp` on an assembled node, as they
//! do through `/rpc`: the gateway's caller reaches the MCP server, `tools/list`
//! shows only the tools the token may call, and a tool outside its `call:` scopes
//! is refused by the node (-32002) without running.

mod support;

use plexus_mcp::testing::messages;
use serde_json::{Value, json};
use support::Served;

const NODE_ONLY: &str = "node-only-token-0123456789";
const OPS_ONLY: &str = "ops-only-token-0123456789";

struct Mcp {
    http: reqwest::Client,
    url: String,
    token: &'static str,
    session: Option<String>,
}

impl Mcp {
    async fn post(&mut self, body: Value) -> (u16, Vec<Value>) {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.json(&body).send().await.expect("the node answers");
        if let Some(id) = response.headers().get("mcp-session-id") {
            self.session = Some(id.to_str().expect("ASCII").to_owned());
        }
        let status = response.status().as_u16();
        (status, messages(&response.text().await.expect("a body")))
    }

    async fn open(url: &str, token: &'static str) -> Self {
        let mut mcp = Self {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            token,
            session: None,
        };
        let (status, _) = mcp
            .post(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "scopes-test", "version": "0"}}}),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = mcp
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(status, 202);
        mcp
    }

    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        let (status, messages) = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        assert_eq!(status, 200, "{messages:?}");
        messages
            .into_iter()
            .find(|m| m["id"] == id)
            .expect("the response")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_are_bound_by_the_tokens_call_scopes() {
    let node_keys = "name = \"scoped\"\n";
    let tokens = format!(
        r#"
[[gateway.tokens]]
name = "node-reader"
token = "{NODE_ONLY}"
scopes = ["call:node.*"]
[[gateway.tokens]]
name = "watcher"
token = "{OPS_ONLY}"
scopes = ["ops"]
"#
    );
    let node = Served::start("mcp-scopes", node_keys, &tokens).await;
    let url = format!("http://{}/mcp", node.addr);

    let mut reader = Mcp::open(&url, NODE_ONLY).await;
    let listed = reader.request(2, "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"node.services"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("node.")), "{names:?}");

    let refused = reader
        .request(
            3,
            "tools/call",
            json!({"name": "datastore.create_collection", "arguments": {"name": "x"}}),
        )
        .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let text = refused["result"]["content"][0]["text"].to_string();
    assert!(
        text.contains("-32002") && text.contains("call:datastore.create_collection"),
        "{text}"
    );
    let allowed = reader
        .request(
            4,
            "tools/call",
            json!({"name": "node.services", "arguments": {}}),
        )
        .await;
    assert_eq!(allowed["result"]["isError"], false, "{allowed}");

    let mut watcher = Mcp::open(&url, OPS_ONLY).await;
    let listed = watcher.request(2, "tools/list", json!({})).await;
    assert_eq!(listed["result"]["tools"], json!([]), "{listed}");

    node.stop().await;
}
