//! The audit trail: one row per mutating call — who, what, when, the correlation id,
//! how it ended and how long it took — in the `plexus_audit` table.
//!
//! [`AuditLog`] records and queries entries. [`Auditor`] is what the node's call path
//! holds: after each call it runs [`Auditor::record_call`], which records the call
//! when it is mutating ([`Auditor::is_mutating`]: the method is not idempotent) and
//! skips it otherwise. Params are kept when their JSON is at most
//! [`AuditConfig::max_params_bytes`], with the values of sensitive keys
//! ([`AuditConfig::redact_keys`]) replaced by `"[redacted]"`; larger params are
//! replaced by `{"truncated": true, "bytes": n, "keys": [...]}`.

use std::sync::Arc;
use std::time::Duration;

use plexus_core::{CallContext, CorrelationId, MethodDescriptor, ServiceError, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::AuditError;
use super::rows::{int, json_column, json_object, json_param, opt_str_at, opt_u64_at, u64_at};
use crate::backend::{Param, Statement};
use crate::metrics::StatementKind;
use crate::{SqlBuilder, Store};

/// The label the audit statements are timed under, as a collection.
const AUDIT: &str = "audit";

/// What the text replacing a redacted value says.
pub const REDACTED: &str = "[redacted]";

/// The bounds of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Params whose JSON is longer are replaced by a summary. Default 4,096 bytes.
    pub max_params_bytes: usize,
    /// Error messages are cut to this many bytes. Default 1,024.
    pub max_message_bytes: usize,
    /// The longest caller or method name accepted, in bytes. Default 256.
    pub max_name_bytes: usize,
    /// Entries a query returns when it sets no limit. Default 100.
    pub default_query_limit: u32,
    /// The largest limit a query may ask for. Default 1,000.
    pub max_query_limit: u32,
    /// Object keys (at any depth, compared case-insensitively) whose values are
    /// redacted. Default: password, secret, token, authorization, api_key.
    pub redact_keys: Vec<String>,
    /// How long entries are kept by [`AuditLog::prune`]; `None` keeps them.
    /// Default 90 days.
    pub retention_ms: Option<u64>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            max_params_bytes: 4096,
            max_message_bytes: 1024,
            max_name_bytes: 256,
            default_query_limit: 100,
            max_query_limit: 1_000,
            redact_keys: ["password", "secret", "token", "authorization", "api_key"]
                .map(str::to_owned)
                .to_vec(),
            retention_ms: Some(90 * 24 * 3600 * 1000),
        }
    }
}

impl AuditConfig {
    /// Checks every field, naming the first out of range.
    pub fn validate(&self) -> Result<(), AuditError> {
        let bad = |field: &'static str, reason: &str| {
            Err(AuditError::InvalidArgument {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.max_params_bytes < 64 {
            return bad("max_params_bytes", "must be at least 64");
        }
        if self.max_message_bytes == 0 || self.max_name_bytes == 0 {
            return bad("max_message_bytes", "and max_name_bytes must be at least 1");
        }
        if self.max_query_limit == 0 {
            return bad("max_query_limit", "must be at least 1");
        }
        if self.default_query_limit == 0 || self.default_query_limit > self.max_query_limit {
            return bad("default_query_limit", "must be 1 to max_query_limit");
        }
        Ok(())
    }
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AuditOutcome {
    /// It succeeded.
    Ok,
    /// It failed.
    Error {
        /// A stable code: `method_not_found`, `invalid_params`, `unavailable`,
        /// `timeout`, `failed`, or the caller's own.
        code: String,
        /// What went wrong.
        message: String,
    },
}

impl AuditOutcome {
    /// The outcome of a call's result.
    pub fn of(result: &Result<Value, ServiceError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e) => Self::Error {
                code: match e {
                    ServiceError::MethodNotFound { .. } => "method_not_found",
                    ServiceError::InvalidParams { .. } => "invalid_params",
                    ServiceError::Unavailable { .. } => "unavailable",
                    ServiceError::Timeout => "timeout",
                    _ => "failed",
                }
                .to_owned(),
                message: e.to_string(),
            },
        }
    }

    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }
}

/// One call to record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntry {
    /// When the call started (wall clock).
    pub at: Timestamp,
    /// Who made it (the authenticated caller); `None` when anonymous.
    pub who: Option<String>,
    /// What was called: `service.method`.
    pub method: String,
    /// The params, as recorded (bounded and redacted by [`AuditLog::record`]).
    #[schemars(
        description = "The params, as recorded: sensitive values redacted, large params summarized"
    )]
    pub params: Value,
    /// The correlation id of the call.
    pub correlation_id: CorrelationId,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// How long it took.
    #[serde(rename = "duration_us", with = "micros")]
    #[schemars(with = "u64", description = "How long it took, in microseconds")]
    pub duration: Duration,
}

mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

/// A recorded entry with its place in the trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    /// Its sequence number: increasing in the order entries were recorded.
    pub seq: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which entries to read. Every condition set must hold.
///
/// It is also the params of `audit.query`, whose schema is derived from it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this caller's calls.
    #[schemars(length(max = 256))]
    pub who: Option<String>,
    /// Only calls of this `service.method`.
    #[schemars(length(max = 256))]
    pub method: Option<String>,
    /// Only calls that started at or after this time.
    #[schemars(
        description = "Only calls that started at or after this time: microseconds since the Unix epoch, inclusive"
    )]
    pub since: Option<Timestamp>,
    /// Only calls that started before this time.
    #[schemars(
        description = "Only calls that started before this time: microseconds since the Unix epoch, exclusive"
    )]
    pub until: Option<Timestamp>,
    /// Only calls with this correlation id.
    pub correlation_id: Option<CorrelationId>,
    /// Only calls that ended this way: `true` succeeded, `false` failed.
    pub ok: Option<bool>,
    /// The most entries to return (default [`AuditConfig::default_query_limit`]).
    #[schemars(
        range(min = 1),
        description = "The most entries to return (default 100, at most the configured maximum)"
    )]
    pub limit: Option<u32>,
    /// Where the previous page stopped ([`AuditPage::next_cursor`]).
    #[schemars(description = "Where the previous page stopped (its next_cursor)")]
    pub cursor: Option<String>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

/// One page of entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditPage {
    /// The entries, in the order asked for.
    pub entries: Vec<AuditRecord>,
    /// Pass it back as [`AuditQuery::cursor`] for the next page; `None` at the end.
    #[schemars(description = "Pass it back as cursor for the next page; null at the end")]
    pub next_cursor: Option<String>,
}

struct Inner {
    store: Store,
    config: AuditConfig,
    insert: Arc<str>,
    select: String,
}

/// The audit trail on a [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", plexus_core::clip(text, max))
}

fn redact(value: &mut Value, keys: &[String]) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if keys.iter().any(|r| r.eq_ignore_ascii_case(k)) {
                    *v = Value::from(REDACTED);
                } else {
                    redact(v, keys);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, keys)),
        _ => {}
    }
}

impl AuditLog {
    /// The audit trail in `store`'s database.
    pub fn new(store: Store, config: AuditConfig) -> Result<Self, AuditError> {
        config.validate()?;
        let kind = store.kind();
        let doc = json_object(
            kind,
            &[
                ("at_us", "at_us"),
                ("who", "who"),
                ("method", "method"),
                ("params", &json_column(kind, "params")),
                ("correlation_id", "correlation_id"),
                ("ok", "ok"),
                ("error_code", "error_code"),
                ("error_message", "error_message"),
                ("duration_us", "duration_us"),
            ],
        );
        Ok(Self {
            inner: Arc::new(Inner {
                insert: format!(
                    "INSERT INTO plexus_audit (at_us, who, method, params, correlation_id, ok, \
                     error_code, error_message, duration_us) \
                     VALUES ($1, NULLIF($2, ''), $3, {}, $5, $6, NULLIF($7, ''), NULLIF($8, ''), $9)",
                    json_param(kind, 4)
                )
                .into(),
                select: format!(
                    "SELECT CAST(seq AS TEXT) AS id, seq AS version, {doc} AS doc FROM plexus_audit"
                ),
                store,
                config,
            }),
        })
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuditConfig {
        &self.inner.config
    }

    /// The params as they would be recorded: redacted, and summarized when too large.
    pub fn bounded_params(&self, params: &Value) -> Value {
        let mut params = params.clone();
        redact(&mut params, &self.inner.config.redact_keys);
        let size = params.to_string().len();
        if size <= self.inner.config.max_params_bytes {
            return params;
        }
        let keys: Vec<Value> = match &params {
            Value::Object(map) => map.keys().take(32).map(|k| json!(cut(k, 64))).collect(),
            _ => Vec::new(),
        };
        json!({"truncated": true, "bytes": size, "keys": keys})
    }

    /// Records one entry; the params are bounded and redacted first.
    pub async fn record(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        let config = &self.inner.config;
        if entry.method.is_empty() || entry.method.len() > config.max_name_bytes {
            return Err(AuditError::InvalidArgument {
                field: "method",
                reason: format!("must be 1 to {} bytes", config.max_name_bytes),
            });
        }
        if entry
            .who
            .as_ref()
            .is_some_and(|w| w.len() > config.max_name_bytes)
        {
            return Err(AuditError::InvalidArgument {
                field: "who",
                reason: format!("must be at most {} bytes", config.max_name_bytes),
            });
        }
        let (ok, code, message) = match &entry.outcome {
            AuditOutcome::Ok => (1, None, None),
            AuditOutcome::Error { code, message } => (
                0,
                Some(cut(code, config.max_name_bytes)),
                Some(cut(message, config.max_message_bytes)),
            ),
        };
        // Empty text is stored as SQL NULL (`NULLIF($n, '')`).
        let text = |t: Option<String>| Param::Text(t.unwrap_or_default());
        let params = vec![
            int(entry.at.as_micros()),
            text(entry.who.clone()),
            Param::Text(entry.method.clone()),
            Param::Json(self.bounded_params(&entry.params).to_string()),
            Param::Text(entry.correlation_id.to_string()),
            Param::Int(ok),
            text(code),
            text(message),
            int(u64::try_from(entry.duration.as_micros()).unwrap_or(u64::MAX)),
        ];
        let stmt = Statement::new(self.inner.insert.clone(), params);
        let mut session = self.inner.store.session().await?;
        session.execute(StatementKind::Insert, AUDIT, &stmt).await?;
        Ok(())
    }

    /// One page of the entries `query` selects.
    pub async fn query(&self, query: &AuditQuery) -> Result<AuditPage, AuditError> {
        let config = &self.inner.config;
        let limit = query.limit.unwrap_or(config.default_query_limit);
        if limit == 0 || limit > config.max_query_limit {
            return Err(AuditError::InvalidArgument {
                field: "limit",
                reason: format!("is {limit}; must be 1 to {}", config.max_query_limit),
            });
        }
        let after = query
            .cursor
            .as_deref()
            .map(|c| {
                c.strip_prefix('s')
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| AuditError::InvalidArgument {
                        field: "cursor",
                        reason: "is not a cursor this trail returned".to_owned(),
                    })
            })
            .transpose()?;
        let mut b = SqlBuilder::new(self.inner.store.dialect());
        b.push(&self.inner.select).push(" WHERE TRUE");
        if let Some(who) = &query.who {
            b.push(" AND who = ").push_bind(Param::Text(who.clone()));
        }
        if let Some(method) = &query.method {
            b.push(" AND method = ")
                .push_bind(Param::Text(method.clone()));
        }
        if let Some(since) = query.since {
            b.push(" AND at_us >= ").push_bind(int(since.as_micros()));
        }
        if let Some(until) = query.until {
            b.push(" AND at_us < ").push_bind(int(until.as_micros()));
        }
        if let Some(id) = query.correlation_id {
            b.push(" AND correlation_id = ")
                .push_bind(Param::Text(id.to_string()));
        }
        if let Some(ok) = query.ok {
            b.push(" AND ok = ").push_bind(Param::Int(i64::from(ok)));
        }
        let (cmp, order) = if query.newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(after) = after {
            b.push(&format!(" AND seq {cmp} ")).push_bind(int(after));
        }
        b.push(&format!(" ORDER BY seq {order} LIMIT "))
            .push_bind(Param::Int(i64::from(limit) + 1));
        let stmt = b.finish();
        let mut session = self.inner.store.session().await?;
        let rows = session
            .fetch_docs(StatementKind::Query, AUDIT, &stmt)
            .await?;
        drop(session);
        let mut entries = rows
            .into_iter()
            .map(|row| record_of(super::rows::unsigned(row.version), row.doc))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|r| format!("s{}", r.seq))
        } else {
            None
        };
        Ok(AuditPage {
            entries,
            next_cursor,
        })
    }

    /// Deletes entries older than [`AuditConfig::retention_ms`]; returns how many.
    pub async fn prune(&self) -> Result<u64, AuditError> {
        let Some(retention) = self.inner.config.retention_ms else {
            return Ok(0);
        };
        let cutoff = Timestamp::now()
            .as_micros()
            .saturating_sub(retention.saturating_mul(1000));
        let stmt = Statement::new(
            "DELETE FROM plexus_audit WHERE at_us < $1".into(),
            vec![int(cutoff)],
        );
        let mut session = self.inner.store.session().await?;
        Ok(session.execute(StatementKind::Delete, AUDIT, &stmt).await?)
    }
}

fn record_of(seq: u64, doc: Value) -> Result<AuditRecord, AuditError> {
    let corrupt = |reason: &str| AuditError::Corrupt {
        seq,
        reason: reason.to_owned(),
    };
    let correlation_id: CorrelationId = opt_str_at(&doc, "correlation_id")
        .and_then(|s| serde_json::from_value(Value::String(s)).ok())
        .ok_or_else(|| corrupt("its correlation id is not a UUID"))?;
    let method = opt_str_at(&doc, "method").ok_or_else(|| corrupt("it has no method"))?;
    let outcome = if u64_at(&doc, "ok") == 1 {
        AuditOutcome::Ok
    } else {
        AuditOutcome::Error {
            code: opt_str_at(&doc, "error_code").unwrap_or_default(),
            message: opt_str_at(&doc, "error_message").unwrap_or_default(),
        }
    };
    Ok(AuditRecord {
        seq,
        entry: AuditEntry {
            at: Timestamp::from_micros(u64_at(&doc, "at_us")),
            who: opt_str_at(&doc, "who"),
            method,
            params: doc.get("params").cloned().unwrap_or(Value::Null),
            correlation_id,
            outcome,
            duration: Duration::from_micros(opt_u64_at(&doc, "duration_us").unwrap_or(0)),
        },
    })
}

/// What the node's call path uses to audit calls.
///
/// After every call, the node runs
/// `auditor.record_call(&ctx, "service.method", Auditor::is_mutating(method), &params, &result, started, took)`.
/// Idempotent (read-only) methods are skipped; every other call is recorded, failed
/// ones included. A call whose method is unknown is not idempotent as far as the
/// auditor knows: pass `true`.
#[derive(Clone, Debug)]
pub struct Auditor {
    log: AuditLog,
}

impl Auditor {
    /// An auditor writing to `log`.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }

    /// The log it writes to.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Whether calls of `method` are audited: those that are not idempotent.
    pub fn is_mutating(method: &MethodDescriptor) -> bool {
        !method.idempotent
    }

    /// Records the call when `mutating`; returns whether it was recorded.
    /// `started` is when the call began and `took` how long it ran.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_call(
        &self,
        ctx: &CallContext,
        method: &str,
        mutating: bool,
        params: &Value,
        result: &Result<Value, ServiceError>,
        started: Timestamp,
        took: Duration,
    ) -> Result<bool, AuditError> {
        if !mutating {
            return Ok(false);
        }
        let entry = AuditEntry {
            at: started,
            who: ctx.caller.clone(),
            method: method.to_owned(),
            params: params.clone(),
            correlation_id: ctx.correlation_id,
            outcome: AuditOutcome::of(result),
            duration: took,
        };
        self.log.record(&entry).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_name_the_error_kind() {
        let e = Err(ServiceError::unavailable("db down"));
        assert!(
            matches!(AuditOutcome::of(&e), AuditOutcome::Error { code, .. } if code == "unavailable")
        );
        assert!(AuditOutcome::of(&Ok(Value::Null)).is_ok());
    }

    #[test]
    fn redaction_reaches_nested_keys() {
        let mut v = json!({"user": {"Password": "x", "name": "n"}, "list": [{"token": 1}]});
        redact(&mut v, &AuditConfig::default().redact_keys);
        assert_eq!(v["user"]["Password"], REDACTED);
        assert_eq!(v["user"]["name"], "n");
        assert_eq!(v["list"][0]["token"], REDACTED);
    }

    #[tokio::test]
    async fn query_params_name_the_bad_field() {
        use plexus_core::methods::{Effect, MethodTable};

        async fn echo(_: &(), _: CallContext, q: AuditQuery) -> Result<AuditQuery, ServiceError> {
            Ok(q)
        }
        let table = MethodTable::new().method::<AuditQuery, AuditQuery, _>(
            "query",
            "",
            Effect::Idempotent,
            echo,
        );
        let parse = |params: Value| table.call(&(), "query", params, CallContext::new());
        let q: AuditQuery = serde_json::from_value(
            parse(json!({"who": "ana", "limit": 5, "newest_first": true}))
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(q.who.as_deref(), Some("ana"));
        assert_eq!(q.limit, Some(5));
        for (params, expected) in [
            (json!({"since": "yesterday"}), "/since"),
            (json!({"bogus": 1}), "/bogus"),
        ] {
            match parse(params).await {
                Err(ServiceError::InvalidParams { field, .. }) => assert_eq!(field, expected),
                other => panic!("{other:?}"),
            }
        }
    }
}
