//! `docs/configuration.md` lists every key a node has: each key of the configuration
//! in force with nothing configured (every default, every section) appears on the
//! page, so a key added in code and not documented fails here.

mod support;

use serde_json::Value;

/// Every key path under `value`, descending into non-empty tables.
fn keys(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(v, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_configuration_key_is_documented() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let dir = support::data_dir("reference");
    let app = plexus_app::App::builder()
        .toml(support::config(&dir, "", ""))
        .start()
        .await
        .expect("the node starts");
    let effective = app
        .node()
        .config()
        .effective("")
        .expect("the configuration in force")
        .unwrap_or(Value::Null);
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let mut all = Vec::new();
    keys(&effective, "", &mut all);
    assert!(all.len() > 50, "{all:?}");
    let missing: Vec<&String> = all
        .iter()
        .filter(|path| {
            let (section, key) = path.split_once('.').unwrap_or((path.as_str(), ""));
            let heading = page.contains(&format!("## `[{section}]`"))
                || page.contains(&format!("## `[[{section}]]`"));
            !heading || !(key.is_empty() || page.contains(&format!("`{key}`")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

/// `node.config_get` never answers a secret: a token, at any path that reaches it,
/// comes back masked, while the node still authenticates with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_secrets_are_masked_when_read_back() {
    const SECRET: &str = "do-not-show-0123456789abcdef";
    let tokens =
        format!("[[gateway.tokens]]\nname = \"ops\"\ntoken = \"{SECRET}\"\nscopes = [\"admin\"]\n");
    let node = support::Served::start("secrets", "", &tokens).await;
    let client =
        plexus_client::Client::new(&format!("http://{}", node.addr), Some(SECRET.to_owned()))
            .expect("a client");
    for path in [
        None,
        Some("gateway"),
        Some("gateway.tokens"),
        Some("gateway.tokens.0.token"),
    ] {
        let params = path.map_or_else(|| serde_json::json!({}), |p| serde_json::json!({"path": p}));
        let shown = client
            .call("node.config_get", params)
            .await
            .expect("the token still authenticates");
        let text = shown.to_string();
        assert!(!text.contains(SECRET), "{path:?}: {text}");
        assert!(text.contains("•••"), "{path:?}: {text}");
    }
    node.stop().await;
}
