//! SQLite's spelling of the store's SQL: `json_extract` / `json_type` on a TEXT
//! column holding the document's JSON.

use crate::backend::{CmpOp, Dialect, Param, Scalar};
use crate::sql::FieldPath;

/// SQLite's dialect.
#[derive(Debug, Clone, Copy)]
pub struct SqliteDialect;

fn value(path: &FieldPath) -> String {
    format!("json_extract(doc, '{}')", path.sqlite())
}

fn json_type(path: &FieldPath) -> String {
    format!("json_type(doc, '{}')", path.sqlite())
}

impl Dialect for SqliteDialect {
    fn json_param(&self, n: usize) -> String {
        format!("${n}")
    }

    fn create_table(&self, table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (\
             id TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL\
             ) WITHOUT ROWID"
        )
    }

    fn index_expr(&self, path: &FieldPath) -> String {
        value(path)
    }

    fn for_update(&self) -> &'static str {
        ""
    }

    fn eq(&self, path: &FieldPath, v: &Scalar, n: &mut dyn FnMut(Param) -> String) -> String {
        let t = json_type(path);
        match v {
            Scalar::Null => format!("{t} = 'null'"),
            Scalar::Bool(true) => format!("{t} = 'true'"),
            Scalar::Bool(false) => format!("{t} = 'false'"),
            Scalar::Int(i) => format!(
                "{t} IN ('integer', 'real') AND {} = {}",
                value(path),
                n(Param::Int(*i))
            ),
            Scalar::Float(f) => format!(
                "{t} IN ('integer', 'real') AND {} = {}",
                value(path),
                n(Param::Float(*f))
            ),
            Scalar::Text(s) => format!(
                "{t} = 'text' AND {} = {}",
                value(path),
                n(Param::Text(s.clone()))
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
        let t = json_type(path);
        let op = op.sql();
        match v {
            Scalar::Text(s) => format!(
                "{t} = 'text' AND {} {op} {}",
                value(path),
                n(Param::Text(s.clone()))
            ),
            other => match other.number_param() {
                Some(p) => format!(
                    "{t} IN ('integer', 'real') AND {} {op} {}",
                    value(path),
                    n(p)
                ),
                // The filter parser admits only numbers and strings to ranges.
                None => "FALSE".to_owned(),
            },
        }
    }

    fn exists(&self, path: &FieldPath) -> String {
        format!("{} IS NOT NULL", json_type(path))
    }

    fn contains(
        &self,
        path: &FieldPath,
        needle: &str,
        n: &mut dyn FnMut(Param) -> String,
    ) -> String {
        format!(
            "{} = 'text' AND instr({}, {}) > 0",
            json_type(path),
            value(path),
            n(Param::Text(needle.to_owned()))
        )
    }

    fn sort_rank(&self, path: &FieldPath) -> String {
        format!(
            "(CASE {} WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 \
             WHEN 'true' THEN 3 WHEN 'false' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 4 \
             ELSE 0 END)",
            json_type(path)
        )
    }

    fn sort_num(&self, path: &FieldPath) -> String {
        format!(
            "(CASE {} WHEN 'integer' THEN CAST({v} AS REAL) WHEN 'real' THEN {v} \
             WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 END)",
            json_type(path),
            v = value(path)
        )
    }

    fn sort_str(&self, path: &FieldPath) -> String {
        format!(
            "(CASE {} WHEN 'text' THEN {} END)",
            json_type(path),
            value(path)
        )
    }
}
