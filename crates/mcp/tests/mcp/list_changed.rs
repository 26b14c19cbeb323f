//! `notifications/tools/list_changed` reaches every live client when the set of
//! listed tools changes, and only then.

use plexus_core::ServiceStatus;
use plexus_mcp::McpEvent;
use serde_json::json;

use crate::support::{Harness, WAIT};

#[tokio::test]
async fn every_session_and_listener_hears_a_service_come_and_go() {
    let h = Harness::start().await;
    let mut events = h.server.events();
    let a = h.session().await;
    let b = h.session().await;
    let mut stream_a = h.open_stream(&a).await;
    let mut stream_b = h.open_stream(&b).await;
    let mut listener = h.listen(1).await;
    let before = h.server.tool_names();
    for _ in 0..2 {
        Harness::wait_for(&mut events, |e| {
            matches!(e, McpEvent::StreamOpened { .. }).then_some(())
        })
        .await;
    }

    let instance = h.add_service("weather").await;
    for stream in [&mut stream_a, &mut stream_b] {
        stream.wait_method("notifications/tools/list_changed").await;
    }
    let note = listener
        .wait_method("notifications/tools/list_changed")
        .await;
    assert_eq!(
        note["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 1,
        "{note}"
    );
    let reply = h.call_in(&a, 2, "tools/list", json!({})).await;
    let mut names = reply.tool_names(2);
    names.retain(|n| !n.starts_with("node.") && !n.starts_with("plexus."));
    assert_eq!(
        names,
        ["echo.fail", "echo.say", "weather.fail", "weather.say"]
    );
    let call = h.say(&b, 3, "weather.say", "sun").await;
    assert_eq!(
        call.response(3)["result"]["structuredContent"]["text"],
        "sun"
    );

    // It goes away: told again, and the tools are gone.
    h.node.detach(&instance).await.unwrap();
    for stream in [&mut stream_a, &mut stream_b, &mut listener] {
        stream.wait_method("notifications/tools/list_changed").await;
    }
    assert_eq!(h.server.tool_names(), before);
    let call = h.say(&b, 4, "weather.say", "x").await;
    assert_eq!(call.response(4)["error"]["code"], -32602);
}

#[tokio::test]
async fn a_status_change_that_leaves_the_tools_alone_sends_nothing() {
    let h = Harness::start().await;
    let mut events = h.server.events();
    let before = h.server.tool_names().len();
    let instance = h.add_service("weather").await;
    let first = Harness::wait_for(&mut events, |e| match e {
        McpEvent::ToolsChanged { tools } => Some(*tools),
        _ => None,
    })
    .await;
    assert_eq!(first, before + 2);
    // Degraded still accepts calls: same tools, no change. Unhealthy: gone.
    h.node
        .registry()
        .set_status(&instance, ServiceStatus::Degraded, None)
        .await
        .unwrap();
    h.node
        .registry()
        .set_status(&instance, ServiceStatus::Unhealthy, None)
        .await
        .unwrap();
    let next = Harness::wait_for(&mut events, |e| match e {
        McpEvent::ToolsChanged { tools } => Some(*tools),
        _ => None,
    })
    .await;
    assert_eq!(
        next, before,
        "the Degraded step must not have counted as a change"
    );
}

#[tokio::test]
async fn a_closed_listener_frees_its_slot() {
    let h = Harness::start().await;
    let mut events = h.server.events();
    let listener = h.listen(1).await;
    assert_eq!(h.server.listeners(), 1);
    drop(listener);
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(McpEvent::ListenEnded) = events.recv().await {
                break;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(h.server.listeners(), 0);
}

#[tokio::test]
async fn listeners_beyond_the_cap_are_refused() {
    let config = plexus_mcp::McpConfig {
        max_listeners: 1,
        ..plexus_mcp::McpConfig::default()
    };
    let h = Harness::with_config(config).await;
    let _first = h.listen(1).await;
    let mut second = h.listen(2).await;
    let refused = tokio::time::timeout(WAIT, second.next_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused["id"], 2, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_listeners"),
        "{refused}"
    );
    assert_eq!(h.server.listeners(), 1);
}
