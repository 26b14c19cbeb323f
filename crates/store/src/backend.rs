//! The trait every database backend implements, and what travels through it.
//!
//! A [`Backend`] owns a connection pool and hands out [`Session`]s: one pooled
//! connection on which statements run, optionally inside a transaction. Statements
//! arrive as a [`Statement`]: SQL text with `$N` placeholders (both SQLite and
//! PostgreSQL accept them) and the [`Param`]s bound to them. The backend knows its
//! [`Dialect`], which renders the few SQL fragments that differ between engines
//! (JSON paths, types, the document column's cast).
//!
//! Both engines' backends are written once, generic over the sqlx database, in
//! [`pooled`]; each engine's folder keeps only what differs.

pub(crate) mod pooled;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::BackendKind;
use crate::sql::FieldPath;

/// One value bound to a placeholder.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// JSON text, bound where the dialect expects a document (`$N::jsonb` on
    /// PostgreSQL, text on SQLite).
    Json(String),
    /// SQL NULL (bound as a null text; cast it where another type is meant).
    Null,
}

/// SQL with `$N` placeholders and the values bound to them.
#[derive(Clone, Debug)]
pub struct Statement {
    /// The SQL text. Only the store's builders produce it: every value is a
    /// placeholder, and every name or path in it passed a strict grammar first.
    pub sql: Arc<str>,
    /// `params[0]` is bound to `$1`, and so on.
    pub params: Vec<Param>,
}

impl Statement {
    /// A statement over shared SQL text.
    pub fn new(sql: Arc<str>, params: Vec<Param>) -> Self {
        Self { sql, params }
    }
}

/// A stored document as a row: `SELECT id, version, doc`.
#[derive(Clone, Debug, PartialEq)]
pub struct DocRow {
    /// The id.
    pub id: String,
    /// The version, from 1.
    pub version: i64,
    /// The document.
    pub doc: Value,
}

/// The pool's state at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
}

/// One pooled connection. Dropping it returns the connection to the pool; a
/// transaction still open then is rolled back.
#[async_trait]
pub trait Session: Send {
    /// Opens a transaction that writes (SQLite: `BEGIN IMMEDIATE`, so writers queue
    /// on the lock up front instead of failing on upgrade).
    async fn begin(&mut self) -> Result<(), sqlx::Error>;
    /// Commits the open transaction.
    async fn commit(&mut self) -> Result<(), sqlx::Error>;
    /// Rolls the open transaction back.
    async fn rollback(&mut self) -> Result<(), sqlx::Error>;
    /// Runs a statement returning `id, version, doc` rows.
    async fn fetch_docs(&mut self, stmt: &Statement) -> Result<Vec<DocRow>, sqlx::Error>;
    /// Runs a statement returning `id, version, doc` rows, keeping rows while their
    /// documents' JSON text ([`plexus_core::json_len`]) adds up to at most `max_bytes` (the first row
    /// is always kept). Returns the rows kept and whether a row was left out for the
    /// budget. A backend that can stream rows stops reading at the budget; this
    /// default reads them all first.
    async fn fetch_docs_within(
        &mut self,
        stmt: &Statement,
        max_bytes: usize,
    ) -> Result<(Vec<DocRow>, bool), sqlx::Error> {
        let mut rows = self.fetch_docs(stmt).await?;
        let mut budget = Budget::new(max_bytes);
        let kept = rows.iter().take_while(|row| budget.admit(&row.doc)).count();
        let cut = kept < rows.len();
        rows.truncate(kept);
        Ok((rows, cut))
    }
    /// Runs a statement returning at most one row whose first column is an integer.
    async fn fetch_i64(&mut self, stmt: &Statement) -> Result<Option<i64>, sqlx::Error>;
    /// Runs a statement and returns the rows it affected.
    async fn execute(&mut self, stmt: &Statement) -> Result<u64, sqlx::Error>;
}

/// A database engine behind a pool.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Which engine.
    fn kind(&self) -> BackendKind;
    /// How this engine spells the SQL that differs.
    fn dialect(&self) -> &'static dyn Dialect;
    /// Takes a connection from the pool, waiting at most the configured acquire
    /// timeout (then `sqlx::Error::PoolTimedOut`).
    async fn acquire(&self) -> Result<Box<dyn Session>, sqlx::Error>;
    /// The pool's size and idle connections now.
    fn pool_state(&self) -> PoolState;
    /// Closes the pool: waits for connections in use to come back, then closes all.
    async fn close(&self);
}

/// The SQL fragments that differ between engines. Paths handed in have passed
/// [`FieldPath`]'s grammar; values go through placeholders the builder numbers.
pub trait Dialect: Send + Sync + 'static {
    /// The placeholder for a JSON document parameter (`$2` or `$2::jsonb`).
    fn json_param(&self, n: usize) -> String;
    /// `CREATE TABLE IF NOT EXISTS` for a document table.
    fn create_table(&self, table: &str) -> String;
    /// The expression an index on `path` is built on; equality and range filters use
    /// the same expression so the planner can use the index.
    fn index_expr(&self, path: &FieldPath) -> String;
    /// `SELECT … FOR UPDATE` where the engine has it; SQLite's write transactions
    /// already hold the lock.
    fn for_update(&self) -> &'static str;
    /// `path` holds exactly `value` (a scalar; `null` matches a JSON null).
    fn eq(&self, path: &FieldPath, value: &Scalar, n: &mut dyn FnMut(Param) -> String) -> String;
    /// `path` holds a number or a string of the same type as `value` that compares
    /// `op` against it (strings by code point).
    fn cmp(
        &self,
        path: &FieldPath,
        op: CmpOp,
        value: &Scalar,
        n: &mut dyn FnMut(Param) -> String,
    ) -> String;
    /// `path` is present (a JSON null counts as present).
    fn exists(&self, path: &FieldPath) -> String;
    /// `path` holds a string containing `needle` (case-sensitive).
    fn contains(
        &self,
        path: &FieldPath,
        needle: &str,
        n: &mut dyn FnMut(Param) -> String,
    ) -> String;
    /// The sort rank of `path`'s value: 0 absent or null, 1 number, 2 string,
    /// 3 boolean, 4 array or object.
    fn sort_rank(&self, path: &FieldPath) -> String;
    /// The value's number as a double (booleans 0 and 1); NULL for other types.
    fn sort_num(&self, path: &FieldPath) -> String;
    /// The value's string, ordered by code point; NULL for other types.
    fn sort_str(&self, path: &FieldPath) -> String;
}

/// A scalar a filter compares against.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// JSON null.
    Null,
    /// true or false.
    Bool(bool),
    /// An integer that fits i64.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Text(String),
}

impl Scalar {
    /// The scalar as a bound number parameter, or `None` when it is not a number.
    pub(crate) fn number_param(&self) -> Option<Param> {
        match self {
            Self::Int(i) => Some(Param::Int(*i)),
            Self::Float(f) => Some(Param::Float(*f)),
            _ => None,
        }
    }

    /// The scalar as JSON text.
    pub(crate) fn to_json(&self) -> String {
        match self {
            Self::Null => "null".to_owned(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => Value::from(*f).to_string(),
            Self::Text(s) => Value::from(s.as_str()).to_string(),
        }
    }
}

/// A range comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

impl CmpOp {
    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Gte => ">=",
            Self::Lt => "<",
            Self::Lte => "<=",
        }
    }
}

impl Statement {
    /// The statement as an sqlx query for database `DB`, every parameter bound in
    /// order. The one place parameters meet sqlx, for both backends.
    pub(crate) fn bound<'a, DB>(
        &'a self,
    ) -> sqlx::query::Query<'a, DB, <DB as sqlx::Database>::Arguments>
    where
        DB: sqlx::Database,
        for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> f64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> Option<&'t str>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for param in &self.params {
            q = match param {
                Param::Text(s) | Param::Json(s) => q.bind(s.as_str()),
                Param::Int(i) => q.bind(*i),
                Param::Float(f) => q.bind(*f),
                Param::Null => q.bind(None::<&str>),
            };
        }
        q
    }
}

/// A result's byte budget, spent row by row on each document's
/// [`json_len`](plexus_core::json_len).
#[derive(Debug)]
pub struct Budget {
    left: usize,
    first: bool,
}

impl Budget {
    /// A budget of `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            left: max_bytes,
            first: true,
        }
    }

    /// Whether `doc` fits in what is left (the first document always does), spending
    /// its size if so.
    pub fn admit(&mut self, doc: &Value) -> bool {
        let size = plexus_core::json_len(doc);
        let first = std::mem::take(&mut self.first);
        if size <= self.left || first {
            self.left = self.left.saturating_sub(size);
            true
        } else {
            false
        }
    }
}
