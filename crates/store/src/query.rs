//! Queries: filter, sort, projection, limit and a stable cursor; and the page they
//! return.
//!
//! Sorting is by up to [`MAX_SORT_KEYS`] field paths, each ascending or descending,
//! then by id ascending, so the order is total. Values of mixed types order the same
//! on both backends: absent or null, then numbers (as doubles), then strings (by code
//! point), then booleans (false, true), then arrays and objects (tied). Pages are cut
//! by keyset: the cursor holds the last row's sort key and id, so rows inserted or
//! deleted between pages never cause a duplicate or skip a row that stayed put. A row
//! whose sort field changes between pages may move past the cursor.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{Dialect, Param, Statement};
use crate::filter::Filter;
use crate::sql::{FieldPath, SqlBuilder};
use crate::{Document, StoreConfig, StoreError};

/// The most sort keys one query may have.
pub const MAX_SORT_KEYS: usize = 4;
/// The most projected fields one query may name.
pub const MAX_PROJECTION: usize = 64;

/// One sort key.
#[derive(Clone, Debug, PartialEq)]
pub struct Sort {
    /// The field sorted on.
    pub field: FieldPath,
    /// Largest first.
    pub descending: bool,
}

impl Sort {
    /// Ascending on `field`.
    pub fn asc(field: &str) -> Result<Self, StoreError> {
        Self::new(field, false)
    }

    /// Descending on `field`.
    pub fn desc(field: &str) -> Result<Self, StoreError> {
        Self::new(field, true)
    }

    fn new(field: &str, descending: bool) -> Result<Self, StoreError> {
        let field = FieldPath::parse(field).map_err(|r| StoreError::invalid_argument("sort", r))?;
        Ok(Self { field, descending })
    }
}

/// What to read from a collection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// Which documents.
    pub filter: Filter,
    /// In which order (then by id).
    pub sort: Vec<Sort>,
    /// Only these fields of each document; `None` returns whole documents.
    pub projection: Option<Vec<FieldPath>>,
    /// At most this many documents (default `default_query_limit`, at most
    /// `max_query_limit`).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

impl Query {
    /// A query selecting by `filter`.
    pub fn filter(filter: Filter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Adds a sort key.
    pub fn sort(mut self, sort: Sort) -> Self {
        self.sort.push(sort);
        self
    }

    /// Sets the limit.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continues after a page's `next_cursor`.
    pub fn after(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Returns only `fields` of each document.
    pub fn project(mut self, fields: &[&str]) -> Result<Self, StoreError> {
        let paths = fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                FieldPath::parse(f)
                    .map_err(|r| StoreError::invalid_argument(format!("projection[{i}]"), r))
            })
            .collect::<Result<_, _>>()?;
        self.projection = Some(paths);
        Ok(self)
    }

    /// Parses the JSON-RPC shape: `{"filter": {…}, "sort": [{"field": "a", "order":
    /// "asc"|"desc"}], "projection": ["a.b"], "limit": 50, "cursor": "…"}`, every key
    /// optional.
    pub fn from_json(value: &Value) -> Result<Self, StoreError> {
        let Value::Object(map) = value else {
            return Err(StoreError::invalid_argument(
                "query",
                "must be a JSON object",
            ));
        };
        let mut query = Query::default();
        for (key, v) in map {
            match key.as_str() {
                "filter" => query.filter = Filter::from_json(v)?,
                "sort" => {
                    let Value::Array(items) = v else {
                        return Err(StoreError::invalid_argument("sort", "must be an array"));
                    };
                    for (i, item) in items.iter().enumerate() {
                        query.sort.push(sort_from_json(item, i)?);
                    }
                }
                "projection" => {
                    let Value::Array(items) = v else {
                        return Err(StoreError::invalid_argument(
                            "projection",
                            "must be an array of field paths",
                        ));
                    };
                    let mut paths = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let field = format!("projection[{i}]");
                        let text = item.as_str().ok_or_else(|| {
                            StoreError::invalid_argument(&field, "must be a string")
                        })?;
                        paths.push(
                            FieldPath::parse(text)
                                .map_err(|r| StoreError::invalid_argument(&field, r))?,
                        );
                    }
                    query.projection = Some(paths);
                }
                "limit" => {
                    // Any whole number from 0 up is read; one beyond what a u32 holds
                    // is held to u32::MAX, so that the store's range check ("must be 1
                    // to N") words every limit that is too large the same way.
                    let limit = match v.as_u64() {
                        Some(l) => u32::try_from(l).unwrap_or(u32::MAX),
                        None if v.as_f64().is_some_and(|f| f >= 1.0 && f.fract() == 0.0) => {
                            u32::MAX
                        }
                        None => {
                            return Err(StoreError::invalid_argument(
                                "limit",
                                "must be a positive integer",
                            ));
                        }
                    };
                    query.limit = Some(limit);
                }
                "cursor" => match v {
                    Value::Null => {}
                    Value::String(s) => query.cursor = Some(s.clone()),
                    _ => return Err(StoreError::invalid_argument("cursor", "must be a string")),
                },
                other => {
                    return Err(StoreError::invalid_argument(
                        other,
                        "unknown query key: use filter, sort, projection, limit or cursor",
                    ));
                }
            }
        }
        Ok(query)
    }

    /// Checks the sort and projection sizes.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.sort.len() > MAX_SORT_KEYS {
            return Err(StoreError::invalid_argument(
                "sort",
                format!("at most {MAX_SORT_KEYS} keys"),
            ));
        }
        if self
            .projection
            .as_ref()
            .is_some_and(|p| p.len() > MAX_PROJECTION)
        {
            return Err(StoreError::invalid_argument(
                "projection",
                format!("at most {MAX_PROJECTION} fields"),
            ));
        }
        Ok(())
    }
}

/// A query checked against the store's bounds, its page size chosen and its cursor
/// decoded: what [`DataStore::query`](crate::DataStore::query) does before it names a
/// table. All that is left is to render it ([`QueryPlan::statement`]). Public for the
/// `store_filter` fuzz target (`fuzz/` at the repository root); not part of the
/// supported API.
#[doc(hidden)]
#[derive(Debug)]
pub struct QueryPlan<'q> {
    query: &'q Query,
    limit: u32,
    cursor: Option<Cursor>,
}

impl Query {
    /// Checks the query against `config`'s bounds (sort and projection sizes,
    /// `max_filter_terms`, the limit within `max_query_limit`) and decodes its
    /// cursor.
    #[doc(hidden)]
    pub fn plan(&self, config: &StoreConfig) -> Result<QueryPlan<'_>, StoreError> {
        self.check()?;
        self.filter.check_terms(config.max_filter_terms)?;
        let limit = self.limit.unwrap_or(config.default_query_limit);
        if limit == 0 || limit > config.max_query_limit {
            return Err(StoreError::invalid_argument(
                "limit",
                format!("must be 1 to {}", config.max_query_limit),
            ));
        }
        let cursor = self
            .cursor
            .as_deref()
            .map(|text| Cursor::decode(text, &self.sort))
            .transpose()?;
        Ok(QueryPlan {
            query: self,
            limit,
            cursor,
        })
    }
}

impl QueryPlan<'_> {
    /// The page size.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The `SELECT` on `table` (a name the store checked) in `dialect`: one row more
    /// than the page, so that the store knows whether another page follows.
    pub fn statement(&self, table: &str, dialect: &dyn Dialect) -> Statement {
        let query = self.query;
        let mut b = SqlBuilder::new(dialect);
        b.push("SELECT id, version, doc FROM ")
            .push(table)
            .push(" WHERE ")
            .filter(&query.filter);
        if let Some(cursor) = &self.cursor {
            b.push(" AND ").after(&query.sort, &cursor.keys, &cursor.id);
        }
        b.order_by(&query.sort)
            .push(" LIMIT ")
            .push_bind(Param::Int(i64::from(self.limit) + 1));
        b.finish()
    }
}

fn sort_from_json(item: &Value, i: usize) -> Result<Sort, StoreError> {
    let field = format!("sort[{i}]");
    let Value::Object(map) = item else {
        return Err(StoreError::invalid_argument(
            field,
            "must be {\"field\": path, \"order\": \"asc\"|\"desc\"}",
        ));
    };
    let path = map.get("field").and_then(Value::as_str).ok_or_else(|| {
        StoreError::invalid_argument(format!("{field}.field"), "must be a string")
    })?;
    let path = FieldPath::parse(path)
        .map_err(|r| StoreError::invalid_argument(format!("{field}.field"), r))?;
    let descending = match map.get("order").map(|o| o.as_str()) {
        None | Some(Some("asc")) => false,
        Some(Some("desc")) => true,
        Some(_) => {
            return Err(StoreError::invalid_argument(
                format!("{field}.order"),
                "must be \"asc\" or \"desc\"",
            ));
        }
    };
    if let Some(extra) = map.keys().find(|k| *k != "field" && *k != "order") {
        return Err(StoreError::invalid_argument(
            format!("{field}.{extra}"),
            "unknown key",
        ));
    }
    Ok(Sort {
        field: path,
        descending,
    })
}

/// One page of a query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The documents, in order.
    pub docs: Vec<Document>,
    /// Pass to [`Query::after`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A row's position on one sort key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CursorKey {
    /// 0 absent or null, 1 number, 2 string, 3 boolean, 4 array or object.
    #[serde(rename = "r")]
    pub(crate) rank: u8,
    /// The number (ranks 1 and 3).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub(crate) num: Option<f64>,
    /// The string (rank 2).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
}

impl CursorKey {
    /// The key of `value` (absent when `None`), by the same rules the SQL uses.
    pub(crate) fn of(value: Option<&Value>) -> Self {
        let (rank, num, text) = match value {
            None | Some(Value::Null) => (0, None, None),
            Some(Value::Number(n)) => (1, Some(n.as_f64().unwrap_or(0.0)), None),
            Some(Value::String(s)) => (2, None, Some(s.clone())),
            Some(Value::Bool(b)) => (3, Some(if *b { 1.0 } else { 0.0 }), None),
            Some(Value::Array(_) | Value::Object(_)) => (4, None, None),
        };
        Self { rank, num, text }
    }
}

/// The decoded cursor: which sort it was made for, the last row's keys and id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    #[serde(rename = "o")]
    pub(crate) sort: String,
    #[serde(rename = "k")]
    pub(crate) keys: Vec<CursorKey>,
    #[serde(rename = "i")]
    pub(crate) id: String,
}

/// The text that ties a cursor to the sort it was made for.
pub(crate) fn sort_signature(sort: &[Sort]) -> String {
    sort.iter()
        .map(|s| format!("{}:{}", s.field, if s.descending { "d" } else { "a" }))
        .collect::<Vec<_>>()
        .join(",")
}

impl Cursor {
    pub(crate) fn after(sort: &[Sort], doc: &Document) -> Self {
        Self {
            sort: sort_signature(sort),
            keys: sort
                .iter()
                .map(|s| CursorKey::of(s.field.lookup(&doc.doc)))
                .collect(),
            id: doc.id.clone(),
        }
    }

    pub(crate) fn encode(&self) -> String {
        // A struct of strings and numbers always serializes.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(crate) fn decode(text: &str, sort: &[Sort]) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::invalid_argument("cursor", reason);
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad("is not a cursor this store issued"))?;
        let cursor: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| bad("is not a cursor this store issued"))?;
        if cursor.sort != sort_signature(sort) || cursor.keys.len() != sort.len() {
            return Err(bad("was issued for a different sort"));
        }
        // No text the store issued holds U+0000 (PostgreSQL could not bind it).
        let keys_ok = cursor.keys.iter().all(|k| match k.rank {
            0 | 4 => k.num.is_none() && k.text.is_none(),
            1 | 3 => k.num.is_some_and(f64::is_finite) && k.text.is_none(),
            2 => k.num.is_none() && k.text.as_ref().is_some_and(|t| !t.contains('\0')),
            _ => false,
        }) && !cursor.id.contains('\0');
        if !keys_ok {
            return Err(bad("is not a cursor this store issued"));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_round_trip_and_are_tied_to_their_sort() {
        let sort = vec![Sort::desc("score").unwrap(), Sort::asc("name").unwrap()];
        let doc = Document {
            id: "d1".into(),
            version: 1,
            doc: json!({"score": 3, "name": "x"}),
        };
        let text = Cursor::after(&sort, &doc).encode();
        let back = Cursor::decode(&text, &sort).unwrap();
        assert_eq!(back.id, "d1");
        assert_eq!(back.keys[0].num, Some(3.0));
        assert_eq!(back.keys[1].text.as_deref(), Some("x"));
        assert!(Cursor::decode(&text, &sort[..1]).is_err());
        assert!(Cursor::decode("not-a-cursor!", &sort).is_err());
        // A forged cursor whose text PostgreSQL could not bind is refused up front.
        for forged in [
            json!({"o": "score:d,name:a", "k": [{"r": 1, "n": 3.0}, {"r": 2, "s": "x\u{0}"}], "i": "d1"}),
            json!({"o": "score:d,name:a", "k": [{"r": 1, "n": 3.0}, {"r": 2, "s": "x"}], "i": "d\u{0}"}),
        ] {
            let text = URL_SAFE_NO_PAD.encode(forged.to_string());
            assert!(Cursor::decode(&text, &sort).is_err(), "{forged}");
        }
    }

    #[test]
    fn a_limit_beyond_u32_is_held_to_the_top_for_the_one_range_check() {
        for big in [json!(4_294_967_296_u64), json!(u64::MAX), json!(1e30)] {
            let q = Query::from_json(&json!({"limit": big})).unwrap();
            assert_eq!(q.limit, Some(u32::MAX), "{big}");
        }
        assert_eq!(
            Query::from_json(&json!({"limit": 1_000_000}))
                .unwrap()
                .limit,
            Some(1_000_000)
        );
        for bad in [json!(-1), json!(1.5), json!("10")] {
            assert!(Query::from_json(&json!({"limit": bad})).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_json_names_the_bad_key() {
        let q = Query::from_json(&json!({"sort": [{"field": "a", "order": "desc"}], "limit": 5}))
            .unwrap();
        assert!(q.sort[0].descending);
        for (v, field) in [
            (
                json!({"sort": [{"field": "a", "order": "up"}]}),
                "sort[0].order",
            ),
            (json!({"projection": ["a", 3]}), "projection[1]"),
            (json!({"limit": -1}), "limit"),
            (json!({"limits": 1}), "limits"),
        ] {
            match Query::from_json(&v) {
                Err(StoreError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{v}: {other:?}"),
            }
        }
    }
}
