//! `McpConfig`: defaults, validation naming the field, serde.

use plexus_mcp::{McpConfig, McpError, McpServer};

fn field_of(config: McpConfig) -> &'static str {
    match config.validate() {
        Err(McpError::InvalidConfig { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn defaults_validate_and_are_loopback_only() {
    let config = McpConfig::default();
    config.validate().unwrap();
    assert!(
        config
            .allowed_origins
            .iter()
            .all(|o| o.contains("localhost") || o.contains("127.0.0.1") || o.contains("[::1]"))
    );
    assert_eq!(config.session_ttl().as_secs(), 300);
}

#[test]
fn each_bad_field_is_named() {
    let d = McpConfig::default;
    assert_eq!(
        field_of(McpConfig {
            session_ttl_ms: 0,
            ..d()
        }),
        "session_ttl_ms"
    );
    assert_eq!(
        field_of(McpConfig {
            max_sessions: 0,
            ..d()
        }),
        "max_sessions"
    );
    assert_eq!(
        field_of(McpConfig {
            max_listeners: 0,
            ..d()
        }),
        "max_listeners"
    );
    assert_eq!(
        field_of(McpConfig {
            session_queue: 0,
            ..d()
        }),
        "session_queue"
    );
    assert_eq!(
        field_of(McpConfig {
            max_body_bytes: 10,
            ..d()
        }),
        "max_body_bytes"
    );
    assert_eq!(
        field_of(McpConfig {
            max_body_bytes: usize::MAX,
            ..d()
        }),
        "max_body_bytes"
    );
    assert_eq!(
        field_of(McpConfig {
            call_timeout_ms: 0,
            ..d()
        }),
        "call_timeout_ms"
    );
    assert_eq!(
        field_of(McpConfig {
            allowed_origins: vec!["evil.example".into()],
            ..d()
        }),
        "allowed_origins"
    );
    assert_eq!(
        field_of(McpConfig {
            allowed_hosts: vec!["a b".into()],
            ..d()
        }),
        "allowed_hosts"
    );
    assert_eq!(
        field_of(McpConfig {
            server_name: String::new(),
            ..d()
        }),
        "server_name"
    );
}

#[test]
fn it_reads_from_json_with_defaults_and_refuses_unknown_fields() {
    let config: McpConfig =
        serde_json::from_str(r#"{"session_ttl_ms": 1000, "max_sessions": 8}"#).unwrap();
    assert_eq!(config.max_sessions, 8);
    assert_eq!(config.max_body_bytes, McpConfig::default().max_body_bytes);
    let typo = serde_json::from_str::<McpConfig>(r#"{"session_ttl": 1000}"#);
    assert!(typo.unwrap_err().to_string().contains("session_ttl"));
}

#[test]
fn an_invalid_config_or_no_runtime_is_an_error_not_a_panic() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let node = runtime.block_on(async { plexus_node::Node::builder("n").start().await.unwrap() });
    let bad = McpConfig {
        max_sessions: 0,
        ..McpConfig::default()
    };
    let err = runtime
        .block_on(async { McpServer::new(node.clone(), bad) })
        .unwrap_err();
    assert!(err.to_string().contains("max_sessions"), "{err}");
    // Outside any runtime.
    let err = McpServer::new(node, McpConfig::default()).unwrap_err();
    assert!(matches!(err, McpError::NoRuntime), "{err}");
}
