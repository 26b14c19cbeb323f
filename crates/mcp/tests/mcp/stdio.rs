//! stdio: `serve_stdio`'s core over in-memory pipes: newline-delimited JSON-RPC.

use plexus_mcp::{McpConfig, McpServer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

use crate::support::{Harness, WAIT, initialize, stateless_request};

struct Pipe {
    write: tokio::io::WriteHalf<DuplexStream>,
    lines: Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
}

impl Pipe {
    async fn send(&mut self, message: Value) {
        self.write
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next message that satisfies `pick`, skipping others.
    async fn until(&mut self, pick: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the server hung up");
                let message: Value = serde_json::from_str(&line).unwrap();
                if pick(&message) {
                    return message;
                }
            }
        })
        .await
        .expect("the message came in time")
    }

    async fn response(&mut self, id: u64) -> Value {
        self.until(|m| m["id"] == json!(id)).await
    }
}

fn connect(
    server: &McpServer,
) -> (
    Pipe,
    tokio::task::JoinHandle<Result<(), plexus_mcp::McpError>>,
) {
    let (client, served) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(served);
    let server = server.clone();
    let task = tokio::spawn(async move { server.serve_io(read, write).await });
    let (client_read, client_write) = tokio::io::split(client);
    let pipe = Pipe {
        write: client_write,
        lines: BufReader::new(client_read).lines(),
    };
    (pipe, task)
}

#[tokio::test]
async fn initialize_list_call_and_list_changed_over_pipes() {
    let h = Harness::start().await;
    let (mut pipe, task) = connect(&h.server);
    pipe.send(initialize(1, "2025-11-25")).await;
    let init = pipe.response(1).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    pipe.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    pipe.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    let list = pipe.response(2).await;
    assert!(
        list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo.say")
    );
    pipe.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo.say", "arguments": {"text": "piped"}}}))
        .await;
    let call = pipe.response(3).await;
    assert_eq!(call["result"]["structuredContent"]["text"], "piped");

    // A line longer than max_body_bytes is dropped; the connection goes on.
    let long = format!("{}\n", "x".repeat(McpConfig::default().max_body_bytes + 10));
    pipe.write.write_all(long.as_bytes()).await.unwrap();
    pipe.send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
        .await;
    pipe.response(4).await;

    h.add_service("weather").await;
    pipe.until(|m| m["method"] == "notifications/tools/list_changed")
        .await;

    // The client closes stdin: the server returns.
    drop(pipe);
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_2026_07_28_lifecycle_over_pipes() {
    let h = Harness::start().await;
    let (mut pipe, _task) = connect(&h.server);
    pipe.send(stateless_request(1, "server/discover", json!({})))
        .await;
    let discover = pipe.response(1).await;
    assert_eq!(
        discover["result"]["supportedVersions"],
        json!(plexus_mcp::PROTOCOL_VERSIONS)
    );
    pipe.send(stateless_request(
        2,
        "tools/call",
        json!({"name": "echo.say", "arguments": {"text": "modern"}}),
    ))
    .await;
    assert_eq!(
        pipe.response(2).await["result"]["structuredContent"]["text"],
        "modern"
    );
    pipe.send(stateless_request(
        3,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    ))
    .await;
    pipe.until(|m| m["method"] == "notifications/subscriptions/acknowledged")
        .await;
    h.add_service("weather").await;
    let note = pipe
        .until(|m| m["method"] == "notifications/tools/list_changed")
        .await;
    assert_eq!(
        note["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        3
    );
}
