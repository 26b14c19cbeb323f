//! The dashboard's read endpoints under `/ui/api/`: small JSON views over what the
//! node already knows (registry, health, bus, configuration, metrics, audit). Each
//! needs the `ops` scope. Actions are not here: the page sends them to `/rpc` as
//! the node's own methods (`node.config_rollback`, `jobs.requeue`, `jobs.pause`,
//! `jobs.resume`), where the token's `call:` scopes decide and the audit trail
//! records who did it; `whoami` only tells the page which buttons to offer.

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

use super::stats::{method_stats, model_usage, sum_by};
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

/// The methods behind the page's actions: `whoami` says which of them the token
/// may call, and the page offers only those buttons.
const ACTIONS: [&str; 4] = [
    "node.config_rollback",
    "jobs.requeue",
    "jobs.pause",
    "jobs.resume",
];

/// The longest error text a dead-job row carries (the full history is one
/// `jobs.get` away).
const MAX_ERROR_CHARS: usize = 300;

/// A dead-list page's length when neither the request nor the node's configuration
/// says (`jobs.max_list`'s default).
const DEFAULT_DEAD_PAGE: u32 = 1_000;

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
    let may: Map<String, Value> = ACTIONS
        .iter()
        .map(|m| ((*m).to_owned(), Value::Bool(caller.allows(Need::Call(m)))))
        .collect();
    Json(json!({
        "authenticated": true,
        "name": caller.name(),
        "node": shared.node.name(),
        "auth": shared.auth.enabled(),
        "ops": caller.allows(Need::Ops),
        "admin": caller.allows(Need::Call("node.config_rollback")),
        "may": may,
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
/// method's calls, errors and p99 since start, with the duration histogram's
/// cumulative buckets (the page derives rates, and p99 over the last interval, for
/// its charts).
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
    let methods: Vec<Value> = method_stats(&text)
        .into_iter()
        .map(|m| {
            let buckets: Vec<[f64; 2]> = m
                .buckets()
                .iter()
                .filter(|(le, _)| le.is_finite())
                .map(|&(le, n)| [le, n])
                .collect();
            let mut v = json!(m);
            v["buckets"] = json!(buckets);
            v
        })
        .collect();
    Json(json!({
        "at_ms": now_ms(),
        "instances": instances,
        "methods": methods,
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
    match read_value(shared, caller, method, params).await {
        Ok(page) => Json(page).into_response(),
        Err(response) => response,
    }
}

/// [`read`]'s answer as a value to shape further; the response to send as is
/// (absent, or the error) otherwise.
async fn read_value(
    shared: &Shared,
    caller: &Caller,
    method: &str,
    params: Value,
) -> Result<Value, Response> {
    let mut ctx = CallContext::new();
    ctx.caller = caller.name().map(str::to_owned);
    match shared.node.call(method, params, ctx).await {
        Ok(page) => Ok(page),
        Err(CallError::MethodNotFound { .. }) => Err(Json(json!({"absent": true})).into_response()),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
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

/// `GET /ui/api/jobs`: every queue's counts by state and whether it is paused,
/// through `jobs.stats`, and `max_list` (`jobs.max_list` in force, defaults
/// included; null when the node's configuration knows no `[jobs]`);
/// `{absent: true}` without the jobs family.
pub(crate) async fn jobs(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let mut stats = match read_value(&shared, &caller, "jobs.stats", json!({})).await {
        Ok(stats) => stats,
        Err(response) => return response,
    };
    // The most ids one `jobs.requeue` takes, for the page's bulk retry.
    stats["max_list"] = json!(max_list(&shared));
    Json(stats).into_response()
}

/// `jobs.max_list` in force (defaults included), when the node's configuration
/// knows the `[jobs]` section.
fn max_list(shared: &Shared) -> Option<u32> {
    let value = shared.node.config().effective("jobs.max_list").ok()??;
    value.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// Which dead jobs to read: `jobs.dead`'s params, passed on.
#[derive(Debug, Deserialize)]
pub(crate) struct DeadParams {
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /ui/api/jobs/dead?queue=&after=&limit=`: one page of the dead-letter list
/// in id order, through `jobs.dead`, each job as a row (id, queue, target,
/// attempts, when it died, its last error, who enqueued it) and `next` (the id to
/// page on from; null once a page is shorter than `limit`, which is by default
/// `jobs.max_list`); `{absent: true}` without the family.
pub(crate) async fn jobs_dead(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DeadParams>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let limit = q
        .limit
        .or_else(|| max_list(&shared))
        .unwrap_or(DEFAULT_DEAD_PAGE);
    let mut params = json!({"limit": limit});
    if let Some(queue) = q.queue.filter(|v| !v.is_empty()) {
        params["queue"] = Value::String(queue);
    }
    if let Some(after) = q.after {
        params["after"] = json!(after);
    }
    let page = match read_value(&shared, &caller, "jobs.dead", params).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let jobs = page["jobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows: Vec<Value> = jobs.iter().map(dead_row).collect();
    let may_continue = u32::try_from(rows.len()).is_ok_and(|n| n >= limit);
    let next = if may_continue {
        jobs.last().map(|j| j["id"].clone())
    } else {
        None
    };
    Json(json!({"jobs": rows, "next": next})).into_response()
}

/// A dead job as the page's row: its last error (`{attempt, at, error: kind,
/// message}`) as its message (its kind when it has none), cut to
/// [`MAX_ERROR_CHARS`].
fn dead_row(job: &Value) -> Value {
    let last = job["errors"].as_array().and_then(|e| e.last());
    let field = |key: &str| match last.and_then(|e| e.get(key)) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let text = field("message")
        .or_else(|| field("error"))
        .unwrap_or_default();
    json!({
        "id": job["id"],
        "queue": job["queue"],
        "target": job["target"],
        "attempt": job["attempt"],
        "max_attempts": job["max_attempts"],
        "finished_at": job["finished_at"],
        "caller": job["caller"],
        "error": text.chars().take(MAX_ERROR_CHARS).collect::<String>(),
    })
}

/// `GET /ui/api/inference`: the models and aliases with their deployments and
/// breaker states (`inference.models`), each model's tokens, cost and requests,
/// each deployment's failures and each alias's fallbacks since start (from
/// `plexus_inference_*`); `{absent: true}` without the family.
pub(crate) async fn inference(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    let models = match read_value(&shared, &caller, "inference.models", json!({})).await {
        Ok(models) => models,
        Err(response) => return response,
    };
    let text = shared.node.metrics().render(Format::Prometheus);
    let counter = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Json(json!({
        "at_ms": now_ms(),
        "models": models["data"],
        "usage": model_usage(&text),
        "failures": sum_by(&text, "plexus_inference_deployment_failures_total", "deployment"),
        "fallbacks": sum_by(&text, "plexus_inference_fallbacks_total", "model"),
        "budget_refusals": counter("plexus_inference_budget_refusals_total"),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_row_carries_the_last_error_cut_short() {
        let long = "x".repeat(MAX_ERROR_CHARS + 50);
        let job = json!({"id": 7, "queue": "mail", "target": "mail.send", "attempt": 3,
            "max_attempts": 3, "finished_at": 5, "caller": "root",
            "errors": [{"attempt": 1, "error": "first"}, {"attempt": 3, "error": "failed", "message": long}]});
        let row = dead_row(&job);
        assert_eq!(
            (&row["id"], &row["target"]),
            (&json!(7), &json!("mail.send"))
        );
        let text = row["error"].as_str().unwrap();
        assert!(text.starts_with("xxx"), "{text}");
        assert_eq!(text.chars().count(), MAX_ERROR_CHARS);
        let kind_only = json!({"id": 8, "errors": [{"error": "timeout", "message": null}]});
        assert_eq!(dead_row(&kind_only)["error"], "timeout");
        assert_eq!(dead_row(&json!({"id": 9, "errors": []}))["error"], "");
    }

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
