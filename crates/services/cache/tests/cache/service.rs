//! The `cache` service on a node: every method through the call path, loading by a
//! call of another service, and the metrics in the node's registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use plexus_cache::{Cache, CacheConfig, CacheService};
use plexus_core::methods::{Effect, MethodTable};
use plexus_core::{CallContext, CallResult, Service, ServiceDescriptor, ServiceError, async_trait};
use plexus_node::{CallError, Node};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// A `users` service whose `get` counts its calls and takes a while.
struct Users {
    calls: Arc<AtomicUsize>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UserParams {
    id: u64,
}

async fn user(s: &Users, _: CallContext, p: UserParams) -> Result<Value, ServiceError> {
    s.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(json!({"id": p.id, "name": format!("user {}", p.id)}))
}

static USERS: std::sync::LazyLock<MethodTable<Users>> = std::sync::LazyLock::new(|| {
    MethodTable::new().method::<UserParams, Value, _>("get", "A user", Effect::Idempotent, user)
});

#[async_trait]
impl Service for Users {
    fn descriptor(&self) -> ServiceDescriptor {
        USERS.describe(ServiceDescriptor::new("users", "test"))
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        USERS.call(self, method, params, ctx).await
    }
}

async fn node_with(config: CacheConfig) -> (Node, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = CacheService::new(Cache::in_memory(config));
    let metrics = service.cache().metrics().clone();
    let node = Node::builder("cache-test")
        .service(Arc::new(service.clone()))
        .service(Arc::new(Users {
            calls: calls.clone(),
        }))
        .start()
        .await
        .unwrap();
    node.metrics().with_registry(|r| metrics.register(r));
    service.attach(&node);
    (node, calls)
}

async fn call(node: &Node, method: &str, params: Value) -> Result<Value, CallError> {
    node.call(method, params, CallContext::new()).await
}

fn invalid_field(err: CallError) -> String {
    match err {
        CallError::InvalidParams { field, .. } => field,
        other => panic!("expected invalid params, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_through_the_call_path() {
    let (node, _) = node_with(CacheConfig::default()).await;
    let set = call(
        &node,
        "cache.set",
        json!({"key": "a", "value": {"x": 1}, "ttl_ms": 60000}),
    )
    .await;
    assert_eq!(set.unwrap(), json!({"ttl_ms": 60000}));
    let got = call(&node, "cache.get", json!({"key": "a"})).await.unwrap();
    assert_eq!(
        got,
        json!({"found": true, "value": {"x": 1}, "loaded": false})
    );
    let none = call(&node, "cache.get", json!({"key": "b"})).await.unwrap();
    assert_eq!(
        none,
        json!({"found": false, "value": null, "loaded": false})
    );
    let many = call(&node, "cache.get_many", json!({"keys": ["b", "a"]}))
        .await
        .unwrap();
    assert_eq!(many, json!({"values": {"a": {"x": 1}}, "missing": ["b"]}));
    call(&node, "cache.set", json!({"key": "p:1", "value": 1}))
        .await
        .unwrap();
    let gone = call(&node, "cache.invalidate", json!({"prefix": "p:"}))
        .await
        .unwrap();
    assert_eq!(gone, json!({"invalidated": 1}));
    let gone = call(&node, "cache.invalidate", json!({"key": "a"}))
        .await
        .unwrap();
    assert_eq!(gone, json!({"invalidated": 1}));
    let deleted = call(&node, "cache.delete", json!({"key": "a"}))
        .await
        .unwrap();
    assert_eq!(deleted, json!({"deleted": false}));
    let stats = call(&node, "cache.stats", json!({})).await.unwrap();
    assert_eq!(stats["backend"], "memory");
    assert_eq!(stats["namespaces"]["default"]["hits"], 2);
    let text = node
        .metrics()
        .render(plexus_node::metrics::Format::Prometheus);
    assert!(
        text.contains("plexus_cache_hits_total{namespace=\"default\"} 2"),
        "{text}"
    );
    // The descriptor carries the derived schemas.
    let descriptor = node.registry().instances(&"cache".into())[0]
        .descriptor
        .clone();
    let get = descriptor.method("get").unwrap();
    assert_eq!(get.params["required"], json!(["key"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field() {
    let config = CacheConfig {
        max_value_bytes: 32,
        max_ttl_ms: 1_000,
        ..CacheConfig::default()
    };
    let (node, _) = node_with(config).await;
    let cases = [
        (
            "cache.set",
            json!({"key": "k", "value": "v".repeat(64)}),
            "/value",
        ),
        (
            "cache.set",
            json!({"key": "k", "value": 1, "ttl_ms": 5000}),
            "/ttl_ms",
        ),
        (
            "cache.set",
            json!({"key": "k", "value": 1, "ttl_ms": 0}),
            "/ttl_ms",
        ),
        (
            "cache.set",
            json!({"key": "k", "value": 1, "namespace": "nope"}),
            "/namespace",
        ),
        ("cache.get", json!({"key": "k".repeat(600)}), "/key"),
        ("cache.get", json!({"key": ""}), "/key"),
        ("cache.get", json!({"key": "k", "ttl_ms": 10}), "/ttl_ms"),
        ("cache.invalidate", json!({}), "/key"),
        (
            "cache.invalidate",
            json!({"key": "k", "prefix": "k"}),
            "/prefix",
        ),
    ];
    for (method, params, field) in cases {
        let err = call(&node, method, params.clone()).await.unwrap_err();
        assert_eq!(invalid_field(err), field, "{method} {params}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_loads_by_calling_a_method_once_for_all_callers() {
    let config = CacheConfig {
        load_methods: vec!["users.*".to_owned()],
        ..CacheConfig::default()
    };
    let (node, calls) = node_with(config).await;
    let params =
        json!({"key": "user:7", "load": "users.get", "params": {"id": 7}, "ttl_ms": 60000});
    let mut callers = Vec::new();
    for _ in 0..200 {
        let (node, params) = (node.clone(), params.clone());
        callers.push(tokio::spawn(async move {
            call(&node, "cache.get", params).await
        }));
    }
    let mut loaded = 0;
    for caller in callers {
        let got = caller.await.unwrap().unwrap();
        assert_eq!(got["value"], json!({"id": 7, "name": "user 7"}));
        loaded += usize::from(got["loaded"] == json!(true));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(loaded >= 1);
    let again = call(&node, "cache.get", params).await.unwrap();
    assert_eq!(
        (again["found"].clone(), again["loaded"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The loader's own bad params are named under /params; unknown methods, methods
    // not allowed to load and the cache itself under /load.
    let cases = [
        (
            json!({"load": "users.get", "params": {"id": "seven"}}),
            "/params/id",
        ),
        (json!({"load": "users.nothing"}), "/load"),
        (json!({"load": "node.health"}), "/load"),
        (json!({"load": "cache.stats"}), "/load"),
    ];
    for (mut params, field) in cases {
        params["key"] = json!("x");
        assert_eq!(refused(&node, params).await, field);
    }
}

/// The field a `cache.get` with `params` is refused for.
async fn refused(node: &Node, params: Value) -> String {
    invalid_field(call(node, "cache.get", params).await.unwrap_err())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_is_refused_unless_configured() {
    let (node, calls) = node_with(CacheConfig::default()).await;
    let params = json!({"key": "u", "load": "users.get", "params": {"id": 1}});
    assert_eq!(refused(&node, params).await, "/load");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
