//! tools/list and tools/call in a 2025-11-25 session.

use serde_json::json;

use crate::support::Harness;

#[tokio::test]
async fn tools_are_the_registry_methods_with_their_schemas() {
    let h = Harness::start().await;
    let session = h.session().await;
    let reply = h.call_in(&session, 2, "tools/list", json!({})).await;
    // The node's own services are tools too; the echo service's are these two.
    let tools: Vec<_> = reply.response(2)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("echo."))
        .collect();
    let names: Vec<_> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo.fail", "echo.say"]);
    let say = &tools[1];
    assert_eq!(say["description"], "says the text back");
    assert_eq!(say["inputSchema"]["required"], json!(["text"]));
    assert_eq!(say["inputSchema"]["type"], "object");
    assert_eq!(say["outputSchema"]["type"], "object");
    // No description of its own: the service's. Params `true`: an object schema.
    let fail = &tools[0];
    assert_eq!(fail["description"], "the echo service");
    assert_eq!(fail["inputSchema"], json!({"type": "object"}));
    assert!(fail.get("outputSchema").is_none());
}

#[tokio::test]
async fn a_call_goes_through_the_call_path_and_returns_structured_content() {
    let h = Harness::start().await;
    let session = h.session().await;
    let reply = h.say(&session, 3, "echo.say", "hi").await;
    let result = &reply.response(3)["result"];
    assert_eq!(result["isError"], false);
    assert_eq!(result["structuredContent"]["text"], "hi");
    let text: serde_json::Value =
        serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["text"], "hi");
}

#[tokio::test]
async fn bad_params_and_service_failures_are_error_results() {
    let h = Harness::start().await;
    let session = h.session().await;
    let reply = h.say(&session, 4, "echo.say", 5).await;
    let result = &reply.response(4)["result"];
    assert_eq!(result["isError"], true);
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("error -32602 (invalid_params)"), "{text}");
    assert!(text.contains("/text"), "{text}");

    let reply = h
        .call_in(&session, 5, "tools/call", json!({"name": "echo.fail"}))
        .await;
    let result = &reply.response(5)["result"];
    assert_eq!(result["isError"], true);
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("-32000") && text.contains("it always fails"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unknown_tool_is_a_json_rpc_error() {
    let h = Harness::start().await;
    let session = h.session().await;
    let reply = h
        .call_in(&session, 6, "tools/call", json!({"name": "nope.nothing"}))
        .await;
    let error = &reply.response(6)["error"];
    assert_eq!(error["code"], -32602);
    assert!(error["message"].as_str().unwrap().contains("nope.nothing"));
}

/// `h`'s server behind the gateway's auth layer in miniature: every request is
/// `caller`.
async fn acting_as(h: &Harness, caller: plexus_mcp::Caller) -> Harness {
    use axum::extract::Request;
    use axum::middleware::Next;

    let app = axum::Router::new()
        .nest("/mcp", h.server.router())
        .layer(axum::middleware::from_fn(
            move |mut r: Request, next: Next| {
                r.extensions_mut().insert(caller.clone());
                next.run(r)
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    h.reached_at(addr, reqwest::Client::new())
}

/// The caller `echo.say`, called as a tool in `session`, says it was called by.
async fn echo_caller(h: &Harness, session: &str, id: u64) -> serde_json::Value {
    let reply = h.say(session, id, "echo.say", "x").await;
    reply.response(id)["result"]["structuredContent"]["caller"].clone()
}

#[tokio::test]
async fn the_callers_identity_reaches_the_call_context() {
    let h = Harness::start().await;
    let authed = acting_as(
        &h,
        plexus_mcp::Caller::new("alice", vec![plexus_core::scope::Scope::Admin]),
    )
    .await;
    let session = authed.session().await;
    assert_eq!(echo_caller(&authed, &session, 7).await, "alice");
    // Without the layer, no caller.
    let session = h.session().await;
    assert_eq!(echo_caller(&h, &session, 8).await, serde_json::Value::Null);
}

#[tokio::test]
async fn a_token_lists_and_calls_only_the_tools_its_scopes_allow() {
    let h = Harness::start().await;
    h.add_service("shout").await;
    let scope = "call:echo.*".parse().unwrap();
    let bob = acting_as(&h, plexus_mcp::Caller::new("bob", vec![scope])).await;
    let session = bob.session().await;

    let listed = bob.call_in(&session, 2, "tools/list", json!({})).await;
    let names = listed.tool_names(2);
    assert!(!names.is_empty(), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("echo.")), "{names:?}");

    // A tool outside the scopes is refused by the node, naming the scope; nothing
    // reaches the service.
    let refused = bob.say(&session, 3, "shout.say", "x").await;
    let result = &refused.response(3)["result"];
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("-32002") && text.contains("call:shout.say"),
        "{text}"
    );

    assert_eq!(echo_caller(&bob, &session, 4).await, "bob");
}
