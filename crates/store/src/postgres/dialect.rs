//! PostgreSQL's spelling of the store's SQL: `#>` / `#>>` / `jsonb_typeof` on a
//! `jsonb` column, strings compared with `COLLATE "C"` (code point order, as SQLite).

use crate::backend::{CmpOp, Dialect, Param, Scalar};
use crate::sql::FieldPath;

/// PostgreSQL's dialect.
#[derive(Debug, Clone, Copy)]
pub struct PostgresDialect;

/// The field's jsonb value, JSON null folded into SQL NULL: the expression indexes
/// are built on, so unique indexes let nulls repeat as SQLite's do.
fn value(path: &FieldPath) -> String {
    format!("(NULLIF(doc #> '{}', 'null'::jsonb))", path.postgres())
}

fn raw(path: &FieldPath) -> String {
    format!("(doc #> '{}')", path.postgres())
}

fn text(path: &FieldPath) -> String {
    format!("(doc #>> '{}')", path.postgres())
}

fn json_type(path: &FieldPath) -> String {
    format!("jsonb_typeof(doc #> '{}')", path.postgres())
}

impl Dialect for PostgresDialect {
    fn json_param(&self, n: usize) -> String {
        format!("${n}::jsonb")
    }

    fn create_table(&self, table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (\
             id TEXT COLLATE \"C\" NOT NULL PRIMARY KEY, version BIGINT NOT NULL, doc JSONB NOT NULL)"
        )
    }

    fn index_expr(&self, path: &FieldPath) -> String {
        value(path)
    }

    fn for_update(&self) -> &'static str {
        " FOR UPDATE"
    }

    fn eq(&self, path: &FieldPath, v: &Scalar, n: &mut dyn FnMut(Param) -> String) -> String {
        match v {
            Scalar::Null => format!("{} = 'null'", json_type(path)),
            Scalar::Bool(b) => format!("{} = '{b}'::jsonb", value(path)),
            other => format!(
                "{} = {}::jsonb",
                value(path),
                n(Param::Json(other.to_json()))
            ),
        }
    }

    fn cmp(
        &self,
        path: &FieldPath,
        op: CmpOp,
        v: &Scalar,
        n: &mut dyn FnMut(Param) -> String,
    ) -> String {
        let op = op.sql();
        match v {
            Scalar::Text(s) => format!(
                "{} = 'string' AND {} COLLATE \"C\" {op} {}",
                json_type(path),
                text(path),
                n(Param::Text(s.clone()))
            ),
            Scalar::Int(_) | Scalar::Float(_) => format!(
                "{} = 'number' AND {} {op} {}::jsonb",
                json_type(path),
                value(path),
                n(Param::Json(v.to_json()))
            ),
            // The filter parser admits only numbers and strings to ranges.
            Scalar::Null | Scalar::Bool(_) => "FALSE".to_owned(),
        }
    }

    fn exists(&self, path: &FieldPath) -> String {
        format!("{} IS NOT NULL", raw(path))
    }

    fn contains(
        &self,
        path: &FieldPath,
        needle: &str,
        n: &mut dyn FnMut(Param) -> String,
    ) -> String {
        format!(
            "{} = 'string' AND strpos({}, {}) > 0",
            json_type(path),
            text(path),
            n(Param::Text(needle.to_owned()))
        )
    }

    fn sort_rank(&self, path: &FieldPath) -> String {
        format!(
            "(CASE {} WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'boolean' THEN 3 \
             WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END)",
            json_type(path)
        )
    }

    fn sort_num(&self, path: &FieldPath) -> String {
        format!(
            "(CASE {t} WHEN 'number' THEN {v}::float8 \
             WHEN 'boolean' THEN (CASE WHEN {r} = 'true'::jsonb THEN 1.0::float8 ELSE 0.0::float8 END) END)",
            t = json_type(path),
            v = text(path),
            r = raw(path)
        )
    }

    fn sort_str(&self, path: &FieldPath) -> String {
        format!(
            "((CASE {} WHEN 'string' THEN {} END) COLLATE \"C\")",
            json_type(path),
            text(path)
        )
    }
}
