//! 2026-07-28: stateless requests, `server/discover`, no sessions.

use serde_json::json;

use crate::support::Harness;

#[tokio::test]
async fn discover_names_both_protocol_versions_and_the_tools_capability() {
    let h = Harness::start().await;
    let reply = h.stateless(1, "server/discover", None, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let result = &reply.response(1)["result"];
    let versions: Vec<_> = result["supportedVersions"]
        .as_array()
        .unwrap_or_else(|| panic!("{result}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(versions, plexus_mcp::PROTOCOL_VERSIONS);
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
    assert!(reply.headers.get("mcp-session-id").is_none());
}

#[tokio::test]
async fn list_and_call_need_no_session() {
    let h = Harness::start().await;
    let list = h.stateless(2, "tools/list", None, json!({})).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let names = list.tool_names(2);
    assert!(
        names.contains(&"echo.say") && names.contains(&"echo.fail"),
        "{names:?}"
    );
    assert!(list.headers.get("mcp-session-id").is_none());

    let call = h
        .stateless(
            3,
            "tools/call",
            Some("echo.say"),
            json!({"name": "echo.say", "arguments": {"text": "stateless"}}),
        )
        .await;
    let result = &call.response(3)["result"];
    assert_eq!(
        result["structuredContent"]["text"], "stateless",
        "{}",
        call.text
    );
    assert_eq!(result["isError"], false);

    let bad = h
        .stateless(
            4,
            "tools/call",
            Some("echo.say"),
            json!({"name": "echo.say", "arguments": {}}),
        )
        .await;
    assert_eq!(bad.response(4)["result"]["isError"], true);
}

#[tokio::test]
async fn a_request_without_its_metadata_is_refused() {
    let h = Harness::start().await;
    let reply = h
        .post(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
            ],
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {}}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.response(5)["error"]["code"], -32602);
}
