//! The only place SQL is put together: field paths and names checked against a
//! strict grammar, and a builder that binds every value.
//!
//! Nothing a caller sends reaches SQL text except through [`FieldPath`] (dot-separated
//! identifiers, `[A-Za-z_][A-Za-z0-9_]*`, at most 8 segments) and [`check_identifier`]
//! (collection and index names, `[a-z][a-z0-9_]*`). Those are rendered into the SQL
//! because expression indexes only match literal paths; every value (document,
//! comparison operand, cursor key, limit) is a `$N` placeholder. [`SqlBuilder`] turns
//! a [`Filter`], a sort and a cursor into one [`Statement`] for a [`Dialect`].

use std::fmt;

use serde_json::Value;

use crate::StoreError;
use crate::backend::{Dialect, Param, Statement};
use crate::filter::{Condition, Filter};
use crate::query::{CursorKey, Sort};

/// The most segments a field path may have.
pub const MAX_PATH_SEGMENTS: usize = 8;
/// The longest segment of a field path, in bytes.
pub const MAX_SEGMENT_LEN: usize = 64;

/// A path to a field inside a document, such as `meta.score`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses `text`, or says why it is not a path. `field` names the argument in the
    /// error.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a field path must not be empty".to_owned());
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(format!(
                "`{}` has {} segments, more than {MAX_PATH_SEGMENTS}",
                preview(text),
                segments.len()
            ));
        }
        for segment in &segments {
            let mut chars = segment.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !first_ok || !rest_ok || segment.len() > MAX_SEGMENT_LEN {
                return Err(format!(
                    "`{}` is not a field path: segments are letters, digits and `_` \
                     (not starting with a digit, at most {MAX_SEGMENT_LEN} bytes), joined by `.`",
                    preview(text)
                ));
            }
        }
        Ok(Self { segments })
    }

    /// The path's segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The value at this path in `doc`, if any.
    pub fn lookup<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(doc, |v, segment| v.as_object()?.get(segment))
    }

    /// SQLite's JSON path literal body: `$.a.b`.
    pub fn sqlite(&self) -> String {
        format!("$.{}", self.segments.join("."))
    }

    /// PostgreSQL's text-array literal body: `{a,b}`.
    pub fn postgres(&self) -> String {
        format!("{{{}}}", self.segments.join(","))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

fn preview(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Checks a collection, index or schema name: `[a-z][a-z0-9_]*`, at most `max`
/// bytes.
pub fn check_identifier(field: &str, name: &str, max: usize) -> Result<(), StoreError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.len() > max {
        return Err(StoreError::invalid_argument(
            field,
            format!(
                "`{}` is not a name: lower-case letters, digits and `_`, starting with a letter, at most {max} bytes",
                preview(name)
            ),
        ));
    }
    Ok(())
}

/// Builds one statement, numbering placeholders as values are bound.
pub struct SqlBuilder<'d> {
    dialect: &'d dyn Dialect,
    sql: String,
    params: Vec<Param>,
}

impl<'d> SqlBuilder<'d> {
    /// An empty statement in `dialect`.
    pub fn new(dialect: &'d dyn Dialect) -> Self {
        Self {
            dialect,
            sql: String::with_capacity(256),
            params: Vec::new(),
        }
    }

    /// Appends SQL text the store wrote itself.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Binds `param` and returns its placeholder.
    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// Appends `param`'s placeholder.
    pub fn push_bind(&mut self, param: Param) -> &mut Self {
        let placeholder = self.bind(param);
        self.sql.push_str(&placeholder);
        self
    }

    /// Appends the filter as a boolean expression. Leaves may be NULL (treated as
    /// false by `WHERE`); `not` coalesces its operand so negation is exact.
    pub fn filter(&mut self, filter: &Filter) -> &mut Self {
        let rendered = self.render_filter(filter);
        self.sql.push_str(&rendered);
        self
    }

    fn render_filter(&mut self, filter: &Filter) -> String {
        match filter {
            Filter::All => "TRUE".to_owned(),
            Filter::And(parts) => self.join(parts, " AND ", "TRUE"),
            Filter::Or(parts) => self.join(parts, " OR ", "FALSE"),
            Filter::Not(inner) => {
                let inner = self.render_filter(inner);
                format!("(NOT COALESCE({inner}, FALSE))")
            }
            Filter::Field(path, condition) => self.render_condition(path, condition),
        }
    }

    fn join(&mut self, parts: &[Filter], op: &str, empty: &str) -> String {
        if parts.is_empty() {
            return empty.to_owned();
        }
        let rendered: Vec<String> = parts.iter().map(|p| self.render_filter(p)).collect();
        format!("({})", rendered.join(op))
    }

    fn render_condition(&mut self, path: &FieldPath, condition: &Condition) -> String {
        let dialect = self.dialect;
        let params = &mut self.params;
        let mut bind = |p: Param| {
            params.push(p);
            format!("${}", params.len())
        };
        let leaf = match condition {
            Condition::Eq(value) => dialect.eq(path, value, &mut bind),
            Condition::Ne(value) => {
                let eq = dialect.eq(path, value, &mut bind);
                format!("NOT COALESCE({eq}, FALSE)")
            }
            Condition::Cmp(op, value) => dialect.cmp(path, *op, value, &mut bind),
            Condition::In(values) if values.is_empty() => "FALSE".to_owned(),
            Condition::In(values) => {
                let eqs: Vec<String> = values
                    .iter()
                    .map(|v| dialect.eq(path, v, &mut bind))
                    .collect();
                eqs.join(" OR ")
            }
            Condition::Exists(true) => dialect.exists(path),
            Condition::Exists(false) => format!("NOT {}", dialect.exists(path)),
            Condition::Contains(needle) => dialect.contains(path, needle, &mut bind),
        };
        format!("({leaf})")
    }

    /// Appends the keyset condition "the row sorts after `cursor`" for `sort` (then
    /// the id, ascending).
    pub(crate) fn after(&mut self, sort: &[Sort], keys: &[CursorKey], id: &str) -> &mut Self {
        // Each unit is one (expression, placeholder, descending) in sort order.
        let mut units: Vec<(String, String, bool)> = Vec::new();
        for (s, key) in sort.iter().zip(keys) {
            let rank = self.bind(Param::Int(i64::from(key.rank)));
            units.push((self.dialect.sort_rank(&s.field), rank, s.descending));
            if let Some(num) = key.num {
                let p = self.bind(Param::Float(num));
                units.push((self.dialect.sort_num(&s.field), p, s.descending));
            } else if let Some(text) = &key.text {
                let p = self.bind(Param::Text(text.clone()));
                units.push((self.dialect.sort_str(&s.field), p, s.descending));
            }
        }
        let id = self.bind(Param::Text(id.to_owned()));
        units.push(("id".to_owned(), id, false));
        let mut alternatives = Vec::with_capacity(units.len());
        for j in 0..units.len() {
            let mut terms: Vec<String> = units[..j]
                .iter()
                .map(|(e, p, _)| format!("{e} = {p}"))
                .collect();
            let (e, p, desc) = &units[j];
            terms.push(format!("{e} {} {p}", if *desc { "<" } else { ">" }));
            alternatives.push(format!("({})", terms.join(" AND ")));
        }
        self.sql.push('(');
        self.sql.push_str(&alternatives.join(" OR "));
        self.sql.push(')');
        self
    }

    /// Appends `ORDER BY` for `sort`, then the id ascending.
    pub fn order_by(&mut self, sort: &[Sort]) -> &mut Self {
        self.sql.push_str(" ORDER BY ");
        for s in sort {
            let dir = if s.descending { "DESC" } else { "ASC" };
            let rank = self.dialect.sort_rank(&s.field);
            let num = self.dialect.sort_num(&s.field);
            let text = self.dialect.sort_str(&s.field);
            self.sql
                .push_str(&format!("{rank} {dir}, {num} {dir}, {text} {dir}, "));
        }
        self.sql.push_str("id ASC");
        self
    }

    /// The statement.
    pub fn finish(self) -> Statement {
        Statement::new(self.sql.into(), self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_follow_the_grammar() {
        let p = FieldPath::parse("meta.score_2").unwrap();
        assert_eq!(p.sqlite(), "$.meta.score_2");
        assert_eq!(p.postgres(), "{meta,score_2}");
        assert_eq!(p.lookup(&json!({"meta": {"score_2": 3}})), Some(&json!(3)));
        for bad in [
            "",
            "a..b",
            "1a",
            "a.b'",
            "a') OR 1=1 --",
            "a b",
            "a.b.c.d.e.f.g.h.i",
            "é",
            "a[0]",
            "$.a",
        ] {
            assert!(FieldPath::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn names_follow_the_grammar() {
        assert!(check_identifier("name", "orders_2", 32).is_ok());
        for bad in ["", "Orders", "2x", "a-b", "a\"b", "x; drop table y"] {
            assert!(check_identifier("name", bad, 32).is_err(), "{bad}");
        }
        assert!(check_identifier("name", &"a".repeat(33), 32).is_err());
    }
}
