//! Loading: TOML text and files, `PLEXUS_*` environment overrides, and the bounds
//! every loaded document must keep.

use plexus_config::{ConfigError, ConfigOptions, ConfigStore, STARTUP_AUTHOR};
use serde_json::json;

use crate::support::{BREAKER, Breaker, TempDir, breaker_refused, node_toml};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Registers the storage breaker section of [`node_toml`] with `var` set to `value`,
/// expecting it refused: the field and the reason.
async fn breaker_refused_with(var: &str, value: &str) -> (String, String) {
    let store = ConfigStore::builder()
        .toml(node_toml(0.5))
        .env(vars(&[(var, value)]))
        .build()
        .await
        .expect("the store loads");
    breaker_refused(&store).await
}

#[tokio::test]
async fn file_and_environment_make_one_typed_document() {
    let dir = TempDir::new();
    let file = dir.replace("node.toml", &node_toml(0.5));
    let store = ConfigStore::builder()
        .file(&file)
        .env(vars(&[
            ("PLEXUS_SERVICES__STORAGE__BREAKER__FAILURE_RATE", "0.3"),
            ("PLEXUS_SERVICES__STORAGE__BREAKER__MINIMUM_CALLS", "20"),
            ("PLEXUS_NODE__DEBUG", "true"),
            ("PLEXUS_NODE__TAGS", r#"["edge", "eu"]"#),
            ("PLEXUS_NODE__OWNER", "ops-team"),
            ("PLEXUS_NODE__QUOTED", "\"42\""),
            (
                "PLEXUS_SERVICES__CACHE__LIMITS",
                "{ size = 3, ttl_ms = 500 }",
            ),
            ("PLEXUS_SERVICES__CACHE__LABELS", r#"{"tier": "hot"}"#),
            ("PLEXUS_LOG_LEVEL", "debug"),
            ("PLEXUS_TEST_POSTGRES_URL", "postgres://127.0.0.1/test"),
            ("HOME", "/root"),
        ]))
        .build()
        .await
        .unwrap();

    // Values keep their TOML types; nesting follows the double underscores.
    assert_eq!(
        store.get(BREAKER).unwrap(),
        Some(json!({"failure_rate": 0.3, "minimum_calls": 20}))
    );
    assert_eq!(store.get("node.name").unwrap(), Some(json!("alpha")));
    assert_eq!(store.get("node.debug").unwrap(), Some(json!(true)));
    assert_eq!(store.get("node.tags.1").unwrap(), Some(json!("eu")));
    assert_eq!(store.get("node.owner").unwrap(), Some(json!("ops-team")));
    assert_eq!(store.get("node.quoted").unwrap(), Some(json!("42")));
    assert_eq!(
        store.get("services.cache.limits").unwrap(),
        Some(json!({"size": 3, "ttl_ms": 500}))
    );
    assert_eq!(
        store.get("services.cache.labels.tier").unwrap(),
        Some(json!("hot"))
    );
    // A single underscore stays inside a key.
    assert_eq!(store.get("log_level").unwrap(), Some(json!("debug")));
    // Test-suite variables and other prefixes are not configuration.
    assert_eq!(store.get("test_postgres_url").unwrap(), None);
    assert_eq!(store.get("home").unwrap(), None);
    assert_eq!(store.env_overrides().iter().count(), 9);

    let first = store.current();
    assert_eq!((first.version, first.author.as_str()), (1, STARTUP_AUTHOR));
    assert!(first.changed.contains(&"node.debug".to_owned()));

    let breaker = store.register_section::<Breaker>(BREAKER).await.unwrap();
    assert_eq!(breaker.current().failure_rate, 0.3);
    assert_eq!(breaker.current().minimum_calls, 20);
}

#[tokio::test]
async fn a_bad_override_names_the_variable() {
    let build = |pairs: Vec<(String, String)>, toml: &str| {
        ConfigStore::builder().toml(toml).env(pairs).build()
    };
    let var_of = |error: ConfigError| match error {
        ConfigError::Env { var, reason } => (var, reason),
        other => panic!("expected Env, got {other:?}"),
    };

    // A key under a value that is not a table, whether the value came from the
    // environment or from the file.
    let (var, reason) = var_of(
        build(
            vars(&[("PLEXUS_NODE", "3"), ("PLEXUS_NODE__NAME", "x")]),
            "",
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(var, "PLEXUS_NODE__NAME");
    assert!(reason.contains("`node`, which is an integer"), "{reason}");
    let (var, _) = var_of(
        build(
            vars(&[("PLEXUS_NODE__NAME__FIRST", "x")]),
            "[node]\nname = \"alpha\"\n",
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(var, "PLEXUS_NODE__NAME__FIRST");

    // Malformed names.
    let (var, reason) = var_of(
        build(vars(&[("PLEXUS_SERVICES____STORAGE", "1")]), "")
            .await
            .unwrap_err(),
    );
    assert_eq!(var, "PLEXUS_SERVICES____STORAGE");
    assert!(reason.contains("empty key"), "{reason}");
    let (var, reason) = var_of(
        build(vars(&[("PLEXUS_A__B", "1"), ("PLEXUS_a__b", "2")]), "")
            .await
            .unwrap_err(),
    );
    assert!(var == "PLEXUS_a__b" || var == "PLEXUS_A__B");
    assert!(reason.contains("sets `a.b`, which PLEXUS_"), "{reason}");

    // A value of the wrong type or out of range: the section refuses it, naming
    // both the field and the variable.
    let (field, reason) =
        breaker_refused_with("PLEXUS_SERVICES__STORAGE__BREAKER__MINIMUM_CALLS", "many").await;
    assert_eq!(field, "services.storage.breaker.minimum_calls");
    assert!(reason.contains("invalid type: string \"many\""), "{reason}");
    assert!(
        reason.contains(
            "set by environment variable PLEXUS_SERVICES__STORAGE__BREAKER__MINIMUM_CALLS"
        ),
        "{reason}"
    );
    let (field, reason) =
        breaker_refused_with("PLEXUS_SERVICES__STORAGE__BREAKER__FAILURE_RATE", "1.5").await;
    assert_eq!(field, "services.storage.breaker.failure_rate");
    assert_eq!(
        reason,
        "must be between 0 and 1, got 1.5 (set by environment variable PLEXUS_SERVICES__STORAGE__BREAKER__FAILURE_RATE)"
    );
    // A value from the file is not blamed on the environment.
    let store = build(vec![], &node_toml(1.5)).await.unwrap();
    let (_, reason) = breaker_refused(&store).await;
    assert_eq!(reason, "must be between 0 and 1, got 1.5");
}

#[tokio::test]
async fn the_prefix_and_exclusions_are_options() {
    let options = ConfigOptions {
        env_prefix: "APP_".to_owned(),
        env_exclude: vec!["APP_SECRET".to_owned()],
        ..ConfigOptions::default()
    };
    let store = ConfigStore::builder()
        .options(options)
        .env(vars(&[
            ("APP_PORT", "8080"),
            ("APP_SECRET_KEY", "x"),
            ("PLEXUS_PORT", "1"),
        ]))
        .build()
        .await
        .unwrap();
    assert_eq!(*store.document(), json!({"port": 8080}));
}

#[tokio::test]
async fn toml_types_convert_to_the_document() {
    let store = ConfigStore::builder()
        .toml(
            r#"
            started = 1979-05-27T07:32:00Z
            ratio = 0.25
            [[servers]]
            host = "a"
            [[servers]]
            host = "b"
            ports = [1, 2]
            "#,
        )
        .build()
        .await
        .unwrap();
    assert_eq!(
        store.get("started").unwrap(),
        Some(json!("1979-05-27T07:32:00Z"))
    );
    assert_eq!(store.get("servers.1.host").unwrap(), Some(json!("b")));
    assert_eq!(store.get("servers.1.ports").unwrap(), Some(json!([1, 2])));
    assert_eq!(store.get("servers.9.host").unwrap(), None);
    assert!(matches!(
        store.get("a..b"),
        Err(ConfigError::InvalidPath { .. })
    ));
}

#[tokio::test]
async fn unreadable_or_malformed_sources_are_typed_errors() {
    let dir = TempDir::new();

    let file = dir.replace("broken.toml", "[node]\nname = \"alpha\"\nport = = 1\n");
    match ConfigStore::load(&file, ConfigOptions::default()).unwrap_err() {
        ConfigError::Parse {
            origin,
            line,
            column,
            message,
        } => {
            assert_eq!(origin, file.display().to_string());
            assert_eq!((line, column), (3, 8));
            assert!(!message.is_empty());
        }
        other => panic!("expected Parse, got {other:?}"),
    }

    let missing = dir.file("missing.toml");
    assert!(matches!(
        ConfigStore::load(&missing, ConfigOptions::default()),
        Err(ConfigError::Io { path, .. }) if path == missing
    ));

    let big = dir.replace("big.toml", &format!("text = \"{}\"\n", "x".repeat(300)));
    let options = ConfigOptions {
        max_document_bytes: 256,
        ..ConfigOptions::default()
    };
    assert!(matches!(
        ConfigStore::load(&big, options),
        Err(ConfigError::TooLarge { size, limit: 256, option: "max_document_bytes", .. }) if size > 300
    ));

    let nan = ConfigStore::builder()
        .toml("[a]\nb = nan\n")
        .build()
        .await
        .unwrap_err();
    assert_eq!(nan.field(), Some("a.b"));

    assert!(matches!(
        ConfigStore::new(json!([1, 2]), ConfigOptions::default()),
        Err(ConfigError::NotATable { kind: "an array" })
    ));
    let deep = ConfigOptions {
        max_depth: 3,
        ..ConfigOptions::default()
    };
    assert!(matches!(
        ConfigStore::new(json!({"a": {"b": {"c": {"d": 1}}}}), deep),
        Err(ConfigError::TooDeep { field, limit: 3 }) if field == "a.b.c"
    ));
    let no_history = ConfigOptions {
        max_history: 0,
        ..ConfigOptions::default()
    };
    assert!(matches!(
        ConfigStore::new(json!({}), no_history),
        Err(ConfigError::Options {
            field: "max_history",
            ..
        })
    ));
}
