//! Who may join a service: names served in process are reserved, a new instance
//! must declare exactly the methods callers already see, and schemas must compile.
//! Each refused attempt names what is wrong and leaves traffic as it was.

use plexus_core::{CallContext, MethodDescriptor, Service, ServiceDescriptor};
use plexus_node::Node;
use plexus_registry::RegistryError;
use serde_json::json;

use crate::support::*;

fn refused(result: Result<plexus_registry::Registration, RegistryError>) -> (String, String) {
    match result {
        Err(RegistryError::InvalidDescriptor(e)) => (e.field, e.reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_impostor_cannot_take_over_or_reshape_a_service() {
    let storage = Module::new("storage", "storage-1");
    let node = start(Node::builder("owners"), &[&storage]).await;

    // An in-process service's name is reserved: an impostor declaring only `echo`
    // is refused, and `storage.work` keeps going to the real one.
    let impostor = Module::new("storage", "storage-evil");
    let (field, reason) = refused(node.attach(impostor.descriptor(), impostor.clone()).await);
    assert_eq!(field, "name");
    assert!(reason.contains("reserved"), "{reason}");
    for n in 0..4 {
        node.call("storage.work", json!({"n": n}), CallContext::new())
            .await
            .unwrap();
    }
    assert_eq!((storage.calls(), impostor.calls()), (4, 0));

    // An external service: a second instance must match the first's methods.
    let first = Module::new("search", "search-1");
    node.attach(first.descriptor(), first.clone())
        .await
        .unwrap();
    let shrunk = ServiceDescriptor::new("search", "module")
        .with_instance("search-2")
        .with_method(MethodDescriptor::new("echo"));
    let (field, reason) = refused(node.attach(shrunk, first.clone()).await);
    assert_eq!(field, "methods");
    assert!(reason.contains("`work` is missing"), "{reason}");
    let mut changed = first.descriptor().with_instance("search-3");
    changed.methods[0].params = json!({"type": "object"});
    let (_, reason) = refused(node.attach(changed, first.clone()).await);
    assert!(reason.contains("`work` has other params"), "{reason}");
    // The same methods join.
    let twin = Module::new("search", "search-4");
    node.attach(twin.descriptor(), twin.clone()).await.unwrap();

    // A schema that cannot compile is refused at registration, naming the method's
    // schema; nothing is fetched.
    for schema in [
        json!({"type": "wat"}),
        json!({"type": "string", "pattern": "(unclosed"}),
        json!({"$ref": "http://example.com/schema.json"}),
    ] {
        let broken = ServiceDescriptor::new("broken", "module")
            .with_instance("broken-1")
            .with_method(MethodDescriptor::new("go").with_params(schema.clone()));
        let (field, reason) = refused(node.attach(broken, first.clone()).await);
        assert_eq!(field, "methods[0].params", "{schema}");
        assert!(reason.contains("does not compile"), "{schema}: {reason}");
    }
}

#[tokio::test]
async fn an_authenticated_caller_calls_only_what_its_scopes_allow() {
    use plexus_core::scope::{Caller, Scope};

    let node = start(
        Node::builder("scoped"),
        &[&Module::new("storage", "storage-1")],
    )
    .await;
    let reader = Caller::new(
        "reader",
        vec!["call:storage.work".parse::<Scope>().unwrap()],
    );
    let ctx = || plexus_core::CallContext::new().acting_for(&reader);
    node.call("storage.work", serde_json::json!({"n": 1}), ctx())
        .await
        .unwrap();
    let refused = node
        .call("storage.echo", serde_json::json!({}), ctx())
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        plexus_node::CallError::Forbidden {
            caller: "reader".into(),
            needed: "call:storage.echo".into()
        }
    );
    assert_eq!(refused.code(), plexus_node::codes::FORBIDDEN);
    // An open caller (auth off) and a call from inside the process are unrestricted.
    let open = plexus_core::CallContext::new().acting_for(&Caller::open());
    node.call("storage.echo", serde_json::json!({}), open)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_plexus_service_is_registered_and_publish_checks_its_own_scope() {
    use plexus_core::scope::{Caller, Scope};

    let node = Node::builder("own").start().await.unwrap();
    let descriptor = node
        .registry()
        .instances(&plexus_core::ServiceName::new("plexus"))
        .first()
        .map(|r| r.descriptor.clone())
        .expect("the plexus service is registered");
    let ws_only: Vec<&str> = descriptor
        .methods
        .iter()
        .filter(|m| m.websocket_only)
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        ws_only,
        [
            "subscribe",
            "unsubscribe",
            "register",
            "deregister",
            "heartbeat"
        ]
    );
    let publish = descriptor.method("publish").unwrap();
    assert_eq!(publish.params["required"], json!(["topic"]));

    let mut events = node
        .bus()
        .subscribe("cases.>", plexus_bus::SubscribeOptions::default())
        .unwrap();
    let writer = Caller::new("writer", vec!["publish:cases.>".parse::<Scope>().unwrap()]);
    let answer = node
        .call(
            "plexus.publish",
            json!({"topic": "cases.opened", "payload": {"id": 7}}),
            CallContext::new().acting_for(&writer),
        )
        .await
        .unwrap();
    assert_eq!(answer["matched"], 1, "{answer}");
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.topic().as_str(), "cases.opened");

    let refused = |method: &'static str, params, ctx| {
        let node = node.clone();
        async move { node.call(method, params, ctx).await.unwrap_err() }
    };
    let (other_topic, dotted, pattern) = (
        json!({"topic": "billing.paid"}),
        json!({"topic": "a..b"}),
        json!({"pattern": "a.>"}),
    );
    let as_writer = CallContext::new().acting_for(&writer);
    let forbidden = refused("plexus.publish", other_topic, as_writer).await;
    assert_eq!(
        forbidden.code(),
        plexus_node::codes::FORBIDDEN,
        "{forbidden}"
    );
    let bad = refused("plexus.publish", dotted, CallContext::new()).await;
    assert!(bad.to_string().contains("/topic"), "{bad}");
    let socket = refused("plexus.subscribe", pattern, CallContext::new()).await;
    assert!(socket.to_string().contains("/ws"), "{socket}");
}
