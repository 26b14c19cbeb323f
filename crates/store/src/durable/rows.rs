//! The SQL the durable tables share between engines, and reading their rows through
//! the store's sessions: a row comes back as `(id, version, doc)` where `doc` is a
//! JSON object the database builds from the row's columns.

use serde_json::Value;

use crate::BackendKind;

/// `json_object(…)` (SQLite) or `json_build_object(…)` (PostgreSQL) over
/// `(key, expression)` pairs the store wrote itself.
pub(super) fn json_object(kind: BackendKind, fields: &[(&str, &str)]) -> String {
    let args: Vec<String> = fields
        .iter()
        .map(|(key, expr)| format!("'{key}', {expr}"))
        .collect();
    match kind {
        BackendKind::Sqlite => format!("json_object({})", args.join(", ")),
        BackendKind::Postgres => format!("json_build_object({})", args.join(", ")),
    }
}

/// A JSON column as a JSON value inside [`json_object`]: SQLite keeps JSON as text
/// and needs `json(…)` to embed it; PostgreSQL's `json` column is already one.
pub(super) fn json_column(kind: BackendKind, column: &str) -> String {
    match kind {
        BackendKind::Sqlite => format!("json({column})"),
        BackendKind::Postgres => column.to_owned(),
    }
}

/// The placeholder of a JSON text parameter stored in a `json` column.
pub(super) fn json_param(kind: BackendKind, n: usize) -> String {
    match kind {
        BackendKind::Sqlite => format!("${n}"),
        BackendKind::Postgres => format!("${n}::json"),
    }
}

/// `key` of a row object as an unsigned integer (absent, null or negative: 0).
pub(super) fn u64_at(doc: &Value, key: &str) -> u64 {
    doc.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// `key` of a row object as an unsigned integer, or `None` when null or absent.
pub(super) fn opt_u64_at(doc: &Value, key: &str) -> Option<u64> {
    doc.get(key).and_then(Value::as_u64)
}

/// `key` of a row object as text, or `None` when null or absent.
pub(super) fn opt_str_at(doc: &Value, key: &str) -> Option<String> {
    doc.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A count or micros as a bound integer, saturating.
pub(super) fn int(n: u64) -> crate::Param {
    crate::Param::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A stored integer as a count or offset (negative: 0).
pub(super) fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
