//! The method template through its public API: typed calls, params refused with the
//! field named, unknown methods, and descriptors carrying the derived schemas (which
//! the node's validator compiles as they are).

use plexus_core::methods::{Effect, MethodTable, NoParams, schema_of};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A counter service's state.
struct Counter {
    step: u64,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Direction {
    Up,
    Down,
}

/// One sort key: nested, to check that nested types are inlined.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Key {
    /// The field.
    field: String,
    /// Which way.
    #[serde(default = "up")]
    order: Direction,
}

fn up() -> Direction {
    Direction::Up
}

/// Params of `add`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddParams {
    /// Where to start.
    #[schemars(range(min = 1))]
    from: u64,
    /// How many steps.
    #[serde(default)]
    times: Option<u32>,
    /// Sort keys.
    #[serde(default)]
    keys: Vec<Key>,
    /// The name, renamed on the wire.
    #[serde(rename = "label", default)]
    #[schemars(length(max = 8))]
    name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Sum {
    /// The total.
    total: u64,
    /// The orders of the keys.
    orders: Vec<Direction>,
    /// The fields of the keys.
    fields: Vec<String>,
    /// The label.
    label: String,
}

/// A recursive type: its schema refers to itself.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Tree {
    /// The value here.
    value: i64,
    /// The children.
    #[serde(default)]
    children: Vec<Tree>,
}

/// A type holding a recursive one: its schema keeps that one in `$defs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Forest {
    /// The trees.
    trees: Vec<Tree>,
}

fn total(tree: &Tree) -> i64 {
    tree.value + tree.children.iter().map(total).sum::<i64>()
}

async fn add(c: &Counter, _ctx: CallContext, p: AddParams) -> Result<Sum, ServiceError> {
    if p.from == 0 {
        return Err(ServiceError::invalid_params("/from", "must be at least 1"));
    }
    Ok(Sum {
        total: p.from + c.step * u64::from(p.times.unwrap_or(1)),
        orders: p.keys.iter().map(|k| k.order).collect(),
        fields: p.keys.into_iter().map(|k| k.field).collect(),
        label: p.name,
    })
}

async fn caller(
    _: &Counter,
    ctx: CallContext,
    _: NoParams,
) -> Result<Option<String>, ServiceError> {
    Ok(ctx.caller)
}

async fn echo(_: &Counter, _: CallContext, p: Value) -> Result<Value, ServiceError> {
    Ok(p)
}

async fn sum_tree(_: &Counter, _: CallContext, t: Tree) -> Result<i64, ServiceError> {
    Ok(total(&t))
}

async fn sum_forest(_: &Counter, _: CallContext, f: Forest) -> Result<i64, ServiceError> {
    Ok(f.trees.iter().map(total).sum())
}

fn table() -> MethodTable<Counter> {
    MethodTable::new()
        .method::<AddParams, Sum, _>("add", "Adds steps.", Effect::Mutating, add)
        .method::<NoParams, Option<String>, _>(
            "caller",
            "Who is calling.",
            Effect::Idempotent,
            caller,
        )
        .method::<Value, Value, _>("echo", "Returns its params.", Effect::Idempotent, echo)
        .method::<Tree, i64, _>("tree", "Sums a tree.", Effect::Idempotent, sum_tree)
        .method::<Forest, i64, _>("forest", "Sums trees.", Effect::Idempotent, sum_forest)
}

async fn call(method: &str, params: Value) -> Result<Value, ServiceError> {
    table()
        .call(
            &Counter { step: 10 },
            method,
            params,
            CallContext::new().with_caller("ana"),
        )
        .await
}

fn field(result: Result<Value, ServiceError>) -> (String, String) {
    match result {
        Err(ServiceError::InvalidParams { field, reason }) => (field, reason),
        other => panic!("expected invalid params, got {other:?}"),
    }
}

#[tokio::test]
async fn a_typed_method_is_called_with_its_params_and_context() {
    let sum = call(
        "add",
        json!({"from": 1, "times": 3, "keys": [{"field": "a"}, {"field": "b", "order": "down"}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        sum,
        json!({"total": 31, "orders": ["up", "down"], "fields": ["a", "b"], "label": ""})
    );
    assert_eq!(call("caller", json!({})).await.unwrap(), json!("ana"));
    // Absent params are `{}` for a method that takes an object.
    assert_eq!(call("caller", Value::Null).await.unwrap(), json!("ana"));
    // `Value` params and results pass through as they are.
    assert_eq!(
        call("echo", json!([1, "x"])).await.unwrap(),
        json!([1, "x"])
    );
    assert_eq!(call("echo", Value::Null).await.unwrap(), Value::Null);
    let tree = json!({"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]});
    assert_eq!(call("tree", tree.clone()).await.unwrap(), json!(6));
    let forest = json!({"trees": [tree, {"value": 4}]});
    assert_eq!(call("forest", forest).await.unwrap(), json!(10));
}

#[tokio::test]
async fn params_that_do_not_fit_are_refused_naming_the_field() {
    let cases = [
        (json!({"from": "one"}), "/from"),
        (json!({}), "/from"),
        (json!({"from": 1, "colour": "red"}), "/colour"),
        (json!({"from": 1, "times": -1}), "/times"),
        (
            json!({"from": 1, "keys": [{"field": "a"}, {"field": "b", "order": "sideways"}]}),
            "/keys/1/order",
        ),
        (
            json!({"from": 1, "keys": [{"order": "up"}]}),
            "/keys/0/field",
        ),
        (
            json!({"from": 1, "keys": [{"field": "a", "x": 1}]}),
            "/keys/0/x",
        ),
        (json!({"from": 1, "label": 5}), "/label"),
        (json!([1]), ""),
        (json!("from"), ""),
    ];
    for (params, expected) in cases {
        let (f, reason) = field(call("add", params.clone()).await);
        assert_eq!(f, expected, "{params}: {reason}");
        assert!(!reason.is_empty());
    }
    let (_, reason) = field(call("add", json!({})).await);
    assert_eq!(reason, "is required");
    let (_, reason) = field(call("add", json!({"from": 1, "colour": "red"})).await);
    assert!(
        reason.starts_with("is not a parameter; expected"),
        "{reason}"
    );
    let (f, reason) = field(call("caller", json!({"x": 1})).await);
    assert_eq!(
        (f.as_str(), reason.as_str()),
        ("/x", "is not a parameter; this method takes none")
    );
    // The handler's own checks come through unchanged.
    assert_eq!(field(call("add", json!({"from": 0})).await).0, "/from");
    // A key with a `/` or `~` is escaped in the pointer.
    assert_eq!(
        field(call("add", json!({"from": 1, "a/b~c": 1})).await).0,
        "/a~1b~0c"
    );
}

#[tokio::test]
async fn an_unknown_method_is_refused() {
    match call("subtract", json!({})).await {
        Err(ServiceError::MethodNotFound { method }) => assert_eq!(method, "subtract"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_descriptor_carries_the_derived_schemas() {
    let d = table().describe(ServiceDescriptor::new("counter", "demo"));
    d.validate().unwrap();
    let names: Vec<&str> = d.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["add", "caller", "echo", "tree", "forest"]);
    let add = d.method("add").unwrap();
    assert_eq!(add.description, "Adds steps.");
    assert!(!add.idempotent);
    assert!(d.method("caller").unwrap().idempotent);
    let p = &add.params;
    assert_eq!(p["type"], "object");
    assert_eq!(p["required"], json!(["from"]));
    assert_eq!(p["additionalProperties"], json!(false));
    assert_eq!(p["description"], "Params of `add`.");
    assert_eq!(p["properties"]["from"]["description"], "Where to start.");
    assert_eq!(p["properties"]["from"]["minimum"], json!(1));
    assert_eq!(p["properties"]["label"]["maxLength"], json!(8));
    // Nested types are inlined: no `$ref` to resolve.
    let key = &p["properties"]["keys"]["items"];
    assert_eq!(key["properties"]["order"]["default"], "up");
    assert!(!p.to_string().contains("$ref"), "{p}");
    assert!(
        p.get("$schema").is_none() && p.get("title").is_none(),
        "{p}"
    );
    assert_eq!(add.result["properties"]["total"]["type"], "integer");
    // `Value` is any JSON.
    assert_eq!(d.method("echo").unwrap().params, json!(true));
    // The same function gives the same schema.
    assert_eq!(schema_of::<NoParams>(), d.method("caller").unwrap().params);
}

#[test]
fn every_schema_compiles_and_agrees_with_the_types() {
    let d = table().describe(ServiceDescriptor::new("counter", "demo"));
    for m in &d.methods {
        for schema in [&m.params, &m.result] {
            jsonschema::draft202012::new(schema)
                .unwrap_or_else(|e| panic!("{}: {e}: {schema}", m.name));
        }
    }
    let add = jsonschema::draft202012::new(&d.method("add").unwrap().params).unwrap();
    assert!(add.is_valid(&json!({"from": 1, "keys": [{"field": "a", "order": "down"}]})));
    assert!(!add.is_valid(&json!({"from": 0})));
    assert!(!add.is_valid(&json!({"from": 1, "keys": [{"field": "a", "order": "sideways"}]})));
    assert!(!add.is_valid(&json!({"from": 1, "label": "far too long"})));
    assert!(!add.is_valid(&json!({"from": 1, "colour": "red"})));
    // Recursive types refer to their own schema (`#`) or to `$defs` inside the same
    // schema: both resolve without looking anywhere else.
    let tree = &d.method("tree").unwrap().params;
    assert!(tree.to_string().contains(r##""$ref":"#""##), "{tree}");
    let tree = jsonschema::draft202012::new(tree).unwrap();
    assert!(tree.is_valid(&json!({"value": 1, "children": [{"value": 2}]})));
    assert!(!tree.is_valid(&json!({"value": 1, "children": [{"value": "two"}]})));
    let forest = &d.method("forest").unwrap().params;
    assert!(forest.to_string().contains("#/$defs/"), "{forest}");
    let forest = jsonschema::draft202012::new(forest).unwrap();
    assert!(forest.is_valid(&json!({"trees": [{"value": 1, "children": [{"value": 2}]}]})));
    assert!(!forest.is_valid(&json!({"trees": [{"value": 1, "children": [{"value": "2"}]}]})));
}
