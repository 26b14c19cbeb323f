//! The dashboard's read endpoints under `/ui/api/`: small JSON views over what the
//! node already knows (registry, health, bus, configuration, metrics, audit). Each
//! needs the `ops` scope. Actions are not here: the page sends them to `/rpc` as
//! the node's own methods (`node.config_rollback`), where the token's `call:`
//! scopes decide and the audit trail records who did it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plexus_core::CallContext;
use plexus_node::metrics::Format;
use plexus_node::{BreakerView, CallError};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::stats::method_stats;
use crate::auth::{Caller, Need};
use crate::http::ops_denied;
use crate::server::Shared;

/// The service names whose presence turns a page on, by page.
const FAMILY_PAGES: [(&str, &[&str]); 4] = [
    ("datastore", &["datastore"]),
    ("audit", &["audit"]),
    ("jobs", &["jobs", "job"]),
    ("inference", &["inference"]),
];

/// The most series `/ui/api/metrics` returns.
const MAX_SERIES: usize = 2_000;

/// A JSON error body with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// `GET /ui/api/whoami`: who the token is and what the page may offer it. It is
/// served without the auth layer and answers 200 either way (`authenticated:
/// false` with why), so the page can ask for a token without a failed request.
pub(crate) async fn whoami(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let header = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let caller = match (shared.auth.enabled(), header) {
        (false, _) => shared.open.clone(),
        (true, None) => {
            return Json(json!({"authenticated": false, "auth": true})).into_response();
        }
        (true, header) => match shared.auth.authenticate(header) {
            Ok(caller) => caller,
            Err(failure) => {
                shared.metrics.auth_failure(failure.reason());
                return Json(json!({
                    "authenticated": false,
                    "auth": true,
                    "error": failure.to_string(),
                }))
                .into_response();
            }
        },
    };
    Json(json!({
        "authenticated": true,
        "name": caller.name(),
        "node": shared.node.name(),
        "auth": shared.auth.enabled(),
        "ops": caller.allows(Need::Ops),
        "admin": caller.allows(Need::Call("node.config_rollback")),
    }))
    .into_response()
}

/// `GET /ui/api/health`: the system's health, each component with its reason.
pub(crate) async fn health(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "health") {
        return denied;
    }
    Json(shared.node.system_health()).into_response()
}

/// `GET /ui/api/services`: every instance (status, reason, breaker) and every
/// method's calls, errors and p99 since start (the page derives rates).
pub(crate) async fn services(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let breakers: BTreeMap<(String, String), BreakerView> = shared
        .node
        .breakers()
        .into_iter()
        .map(|(s, i, b)| ((s.to_string(), i.to_string()), BreakerView::of(&b)))
        .collect();
    let instances: Vec<Value> = shared
        .node
        .registry()
        .discover(&plexus_registry::Query::new())
        .into_iter()
        .map(|r| {
            let key = (r.service().to_string(), r.instance().to_string());
            json!({
                "service": key.0,
                "instance": key.1,
                "version": r.descriptor.version,
                "status": r.status,
                "reason": r.reason,
                "status_since": r.status_since,
                "breaker": breakers.get(&key),
            })
        })
        .collect();
    let text = shared.node.metrics().render(Format::Prometheus);
    Json(json!({
        "at_ms": now_ms(),
        "instances": instances,
        "methods": method_stats(&text),
    }))
    .into_response()
}

fn now_ms() -> u64 {
    plexus_core::Timestamp::now().as_micros() / 1000
}

/// `GET /ui/api/bus`: the bus's counters and each subscription's (lag, drops, dead
/// letters).
pub(crate) async fn bus(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let bus = shared.node.bus();
    let s = bus.stats();
    let subscriptions: Vec<Value> = bus
        .subscriptions()
        .into_iter()
        .map(|sub| {
            json!({
                "name": sub.name.unwrap_or_else(|| format!("{}#{}", sub.pattern, sub.id)),
                "pattern": sub.pattern,
                "delivered": sub.stats.delivered,
                "dropped": sub.stats.dropped,
                "dead_lettered": sub.stats.dead_lettered,
                "rejected": sub.stats.rejected,
                "lag": sub.stats.queued,
            })
        })
        .collect();
    Json(json!({
        "at_ms": now_ms(),
        "published": s.published,
        "unmatched": s.unmatched,
        "expired": s.expired,
        "dead_lettered": s.dead_lettered,
        "dead_letter_lost": s.dead_letter_lost,
        "handler_failures": s.handler_failures,
        "subscriptions": subscriptions,
    }))
    .into_response()
}

/// `GET /ui/api/families`: which optional pages have their family in this node.
pub(crate) async fn families(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let registry = shared.node.registry();
    let present = |names: &[&str]| {
        names.iter().any(|n| {
            !registry
                .discover(&plexus_registry::Query::new().name(*n))
                .is_empty()
        })
    };
    let pages: Map<String, Value> = FAMILY_PAGES
        .iter()
        .map(|(page, names)| ((*page).to_owned(), Value::Bool(present(names))))
        .collect();
    Json(Value::Object(pages)).into_response()
}

/// Which series `/ui/api/metrics` returns.
#[derive(Debug, Deserialize)]
pub(crate) struct MetricsQuery {
    /// Series whose name starts with this (`plexus_store_`).
    prefix: String,
}

/// `GET /ui/api/metrics?prefix=…`: the samples of the series with that name prefix
/// (at most [`MAX_SERIES`]), for the pages of families (DataStore, and the ones
/// that add theirs).
pub(crate) async fn metrics(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<MetricsQuery>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    if !q.prefix.starts_with("plexus_") {
        return error(StatusCode::BAD_REQUEST, "prefix: must start with plexus_");
    }
    let text = shared.node.metrics().render(Format::Prometheus);
    let series: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with(q.prefix.as_str()))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some(json!({"series": series, "value": value.parse::<f64>().ok()?}))
        })
        .take(MAX_SERIES)
        .collect();
    Json(json!({"series": series})).into_response()
}

/// `GET /ui/api/config`: the version in force and every version kept, newest first,
/// without documents.
pub(crate) async fn config(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let store = shared.node.config();
    let versions: Vec<Value> = store
        .history()
        .into_iter()
        .rev()
        .map(|v| {
            json!({
                "version": v.version,
                "at": v.at,
                "author": v.author,
                "reason": v.reason,
                "changed": v.changed,
                "rollback_of": v.rollback_of,
            })
        })
        .collect();
    Json(json!({"current": store.current_version(), "versions": versions})).into_response()
}

/// The two versions to compare.
#[derive(Debug, Deserialize)]
pub(crate) struct DiffQuery {
    from: u64,
    to: u64,
}

/// `GET /ui/api/config/diff?from=&to=`: every dotted path whose value differs
/// between two kept versions, secrets masked (see [`redact`]).
pub(crate) async fn config_diff(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DiffQuery>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let store = shared.node.config();
    let (Some(from), Some(to)) = (store.version(q.from), store.version(q.to)) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "from/to: version {} or {} is not kept (see /ui/api/config)",
                q.from, q.to
            ),
        );
    };
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    flatten("", &from.document, &mut before);
    flatten("", &to.document, &mut after);
    let paths: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let changes: Vec<Value> = paths
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| {
            json!({
                "path": p,
                "before": before.get(p).map(|v| redact(p, v)),
                "after": after.get(p).map(|v| redact(p, v)),
            })
        })
        .collect();
    Json(json!({"from": q.from, "to": q.to, "changes": changes})).into_response()
}

/// Every leaf of `value` by dotted path (array items by index; an empty object or
/// array inside is a leaf of its own).
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&join(&i.to_string()), v, out);
            }
        }
        // An empty document has no leaves.
        leaf if prefix.is_empty() => {
            let _ = leaf;
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

/// `value` as the page may show it: masked when the path's last key names a
/// secret, and a URL's password masked (`postgres://u:•••@h`).
pub(crate) fn redact(path: &str, value: &Value) -> Value {
    plexus_config::secrets::redact_leaf(path, value)
}

/// Which audit entries to read: `audit.query`'s params, passed on.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditParams {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    who: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// `GET /ui/api/audit`: one page of the audit trail, newest first, through
/// `audit.query`; `{absent: true}` when the node has no audit trail.
pub(crate) async fn audit(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditParams>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let mut params = json!({"newest_first": true, "limit": q.limit.unwrap_or(100)});
    for (key, value) in [
        ("cursor", q.cursor),
        ("who", q.who),
        ("method", q.method),
        ("correlation_id", q.correlation_id),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            params[key] = Value::String(v);
        }
    }
    read(&shared, &caller, "audit.query", params).await
}

/// Runs the idempotent read `method` for a caller the gateway has checked for
/// `ops`: as the node's own call, named after the caller, so an ops token needs no
/// `call:` scope for it. `{absent: true}` when the node has no such service.
async fn read(shared: &Shared, caller: &Caller, method: &str, params: Value) -> Response {
    let mut ctx = CallContext::new();
    ctx.caller = caller.name().map(str::to_owned);
    match shared.node.call(method, params, ctx).await {
        Ok(page) => Json(page).into_response(),
        Err(CallError::MethodNotFound { .. }) => Json(json!({"absent": true})).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `GET /ui/api/datastore`: the DataStore's slow-query log through
/// `datastore.slow_queries`; `{absent: true}` without a DataStore. Its pool and
/// statement figures are read with `/ui/api/metrics?prefix=plexus_store_`.
pub(crate) async fn datastore(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    read(&shared, &caller, "datastore.slow_queries", json!({})).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_by_key_and_in_urls() {
        let v = json!("s3cr3t-value");
        assert_eq!(redact("gateway.tokens.0.token", &v), json!("•••"));
        assert_eq!(redact("redis.password", &v), json!("•••"));
        assert_eq!(
            redact("store.url", &json!("postgres://app:hunter2@db:5432/x")),
            json!("postgres://app:•••@db:5432/x")
        );
        assert_eq!(redact("calls.default.timeout_ms", &json!(5)), json!(5));
    }

    #[test]
    fn documents_flatten_to_dotted_leaves() {
        let mut out = BTreeMap::new();
        flatten("", &json!({"a": {"b": 1, "c": [true, {}]}}), &mut out);
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a.b", "a.c.0", "a.c.1"]);
    }
}
