//! Filters: which documents a query or count selects, in the JSON shape callers send.
//!
//! # Grammar
//!
//! ```text
//! filter    := {}                                  every document
//!            | {"and": [filter, …]}                all hold ([] holds)
//!            | {"or":  [filter, …]}                one holds ([] never holds)
//!            | {"not": filter}                     does not hold
//!            | {"field": path, op: operand, …}     each op holds on the field
//! path      := segment ("." segment)*              at most 8 segments
//! segment   := [A-Za-z_][A-Za-z0-9_]*              at most 64 bytes
//! op        := "eq" | "ne"                         scalar (string, number, bool, null)
//!            | "gt" | "gte" | "lt" | "lte"         number or string
//!            | "in"                                array of scalars
//!            | "exists"                            bool
//!            | "contains"                          string
//! ```
//!
//! Comparisons are typed and behave the same on SQLite and PostgreSQL: a number never
//! equals a string or a boolean (`1` does not match `"1"` or `true`); `1` equals
//! `1.0`; ranges on numbers match only numbers and ranges on strings only strings,
//! compared by Unicode code point; `eq: null` matches a field holding JSON null;
//! `exists: true` matches a field that is present, even as null; `contains` is a
//! case-sensitive substring test on strings; `ne` and `not` are exact complements
//! (a missing field is "not equal"). Objects and arrays cannot be compared.
//!
//! ```
//! use plexus_store::Filter;
//! use serde_json::json;
//!
//! let f = Filter::from_json(&json!({"and": [
//!     {"field": "status", "eq": "open"},
//!     {"field": "meta.score", "gte": 3, "lt": 10},
//!     {"not": {"field": "type", "in": ["a", "b"]}},
//! ]})).unwrap();
//! assert_eq!(f.terms(), 9);
//! let bad = Filter::from_json(&json!({"field": "a'--", "eq": 1})).unwrap_err();
//! assert!(bad.to_string().contains("/field"));
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::StoreError;
use crate::backend::{CmpOp, Scalar};
use crate::sql::FieldPath;

/// The deepest nesting of `and` / `or` / `not` accepted.
pub const MAX_FILTER_DEPTH: usize = 16;

/// A parsed filter. Build one with [`Filter::from_json`] (or serde) so the grammar is
/// checked.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Filter {
    /// Every document.
    #[default]
    All,
    /// All of these.
    And(Vec<Filter>),
    /// Any of these.
    Or(Vec<Filter>),
    /// Not this.
    Not(Box<Filter>),
    /// A condition on one field.
    Field(FieldPath, Condition),
}

/// A condition on one field.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// Equal to the scalar.
    Eq(Scalar),
    /// Not equal to it (also true when the field is missing).
    Ne(Scalar),
    /// A range comparison on a number or a string.
    Cmp(CmpOp, Scalar),
    /// Equal to one of the scalars.
    In(Vec<Scalar>),
    /// Present (`true`) or absent (`false`).
    Exists(bool),
    /// A string containing this text.
    Contains(String),
}

impl Filter {
    /// Parses the JSON shape described in the module documentation.
    pub fn from_json(value: &Value) -> Result<Self, StoreError> {
        parse(value, "", 0)
    }

    /// How many nodes the filter holds (each condition, each `and`/`or`/`not`, each
    /// `in` value), which `max_filter_terms` bounds.
    pub fn terms(&self) -> usize {
        match self {
            Self::All => 0,
            Self::And(parts) | Self::Or(parts) => 1 + parts.iter().map(Self::terms).sum::<usize>(),
            Self::Not(inner) => 1 + inner.terms(),
            Self::Field(_, Condition::In(values)) => 1 + values.len(),
            Self::Field(..) => 1,
        }
    }

    /// Refuses a filter of more than `max` [terms](Self::terms) (`max_filter_terms`).
    pub(crate) fn check_terms(&self, max: usize) -> Result<(), StoreError> {
        let terms = self.terms();
        if terms > max {
            return Err(StoreError::InvalidFilter {
                path: String::new(),
                reason: format!("{terms} terms, more than {max}"),
            });
        }
        Ok(())
    }

    /// The filter back in its JSON shape.
    pub fn to_json(&self) -> Value {
        match self {
            Self::All => json!({}),
            Self::And(parts) => json!({"and": parts.iter().map(Self::to_json).collect::<Vec<_>>()}),
            Self::Or(parts) => json!({"or": parts.iter().map(Self::to_json).collect::<Vec<_>>()}),
            Self::Not(inner) => json!({"not": inner.to_json()}),
            Self::Field(path, condition) => {
                let (op, operand) = match condition {
                    Condition::Eq(v) => ("eq", scalar_json(v)),
                    Condition::Ne(v) => ("ne", scalar_json(v)),
                    Condition::Cmp(op, v) => (op_name(*op), scalar_json(v)),
                    Condition::In(vs) => ("in", Value::Array(vs.iter().map(scalar_json).collect())),
                    Condition::Exists(b) => ("exists", Value::Bool(*b)),
                    Condition::Contains(s) => ("contains", Value::String(s.clone())),
                };
                let mut map = Map::new();
                map.insert("field".to_owned(), Value::String(path.to_string()));
                map.insert(op.to_owned(), operand);
                Value::Object(map)
            }
        }
    }
}

fn op_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Gt => "gt",
        CmpOp::Gte => "gte",
        CmpOp::Lt => "lt",
        CmpOp::Lte => "lte",
    }
}

fn scalar_json(s: &Scalar) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::Int(i) => Value::from(*i),
        Scalar::Float(f) => Value::from(*f),
        Scalar::Text(t) => Value::String(t.clone()),
    }
}

fn err(path: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidFilter {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn parse(value: &Value, at: &str, depth: usize) -> Result<Filter, StoreError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(err(at, format!("nested deeper than {MAX_FILTER_DEPTH}")));
    }
    let Value::Object(map) = value else {
        return Err(err(at, "a filter must be a JSON object"));
    };
    if map.is_empty() {
        return Ok(Filter::All);
    }
    for combinator in ["and", "or", "not"] {
        if let Some(operand) = map.get(combinator) {
            if map.len() != 1 {
                return Err(err(
                    at,
                    format!("`{combinator}` must be the object's only key"),
                ));
            }
            let here = format!("{at}/{combinator}");
            return match combinator {
                "not" => Ok(Filter::Not(Box::new(parse(operand, &here, depth + 1)?))),
                _ => {
                    let Value::Array(items) = operand else {
                        return Err(err(&here, "must be an array of filters"));
                    };
                    let parts = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| parse(item, &format!("{here}/{i}"), depth + 1))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(if combinator == "and" {
                        Filter::And(parts)
                    } else {
                        Filter::Or(parts)
                    })
                }
            };
        }
    }
    let Some(field) = map.get("field") else {
        return Err(err(
            at,
            "expected `and`, `or`, `not`, or `field` with an operator",
        ));
    };
    let Value::String(field) = field else {
        return Err(err(&format!("{at}/field"), "must be a string"));
    };
    let path = FieldPath::parse(field).map_err(|reason| err(&format!("{at}/field"), reason))?;
    let mut conditions = Vec::new();
    for (key, operand) in map {
        if key == "field" {
            continue;
        }
        let here = format!("{at}/{key}");
        let condition = match key.as_str() {
            "eq" => Condition::Eq(scalar(operand, &here)?),
            "ne" => Condition::Ne(scalar(operand, &here)?),
            "gt" => Condition::Cmp(CmpOp::Gt, ordered(operand, &here)?),
            "gte" => Condition::Cmp(CmpOp::Gte, ordered(operand, &here)?),
            "lt" => Condition::Cmp(CmpOp::Lt, ordered(operand, &here)?),
            "lte" => Condition::Cmp(CmpOp::Lte, ordered(operand, &here)?),
            "in" => {
                let Value::Array(items) = operand else {
                    return Err(err(&here, "must be an array of scalars"));
                };
                Condition::In(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| scalar(v, &format!("{here}/{i}")))
                        .collect::<Result<_, _>>()?,
                )
            }
            "exists" => match operand {
                Value::Bool(b) => Condition::Exists(*b),
                _ => return Err(err(&here, "must be true or false")),
            },
            "contains" => match operand {
                Value::String(s) if s.contains('\0') => {
                    return Err(err(&here, "strings may not contain U+0000"));
                }
                Value::String(s) => Condition::Contains(s.clone()),
                _ => return Err(err(&here, "must be a string")),
            },
            other => {
                return Err(err(
                    &here,
                    format!(
                        "unknown operator `{other}`: use eq, ne, gt, gte, lt, lte, in, exists or contains"
                    ),
                ));
            }
        };
        conditions.push(Filter::Field(path.clone(), condition));
    }
    match conditions.len() {
        0 => Err(err(at, format!("no operator on field `{path}`"))),
        1 => Ok(conditions.remove(0)),
        _ => Ok(Filter::And(conditions)),
    }
}

fn scalar(value: &Value, at: &str) -> Result<Scalar, StoreError> {
    Ok(match value {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64().ok_or_else(|| err(at, "number out of range"))?),
        },
        Value::String(s) => {
            if s.contains('\0') {
                return Err(err(at, "strings may not contain U+0000"));
            }
            Scalar::Text(s.clone())
        }
        Value::Array(_) | Value::Object(_) => {
            return Err(err(
                at,
                "must be a scalar (string, number, boolean or null)",
            ));
        }
    })
}

fn ordered(value: &Value, at: &str) -> Result<Scalar, StoreError> {
    match scalar(value, at)? {
        s @ (Scalar::Int(_) | Scalar::Float(_) | Scalar::Text(_)) => Ok(s),
        _ => Err(err(at, "a range compares a number or a string")),
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Filter::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_parses_and_round_trips() {
        let v = json!({"or": [
            {"field": "a", "eq": "x"}, {"field": "a", "ne": null},
            {"field": "n", "gt": 1}, {"field": "n", "lte": 2.5},
            {"field": "t", "in": ["a", 1, true]}, {"field": "t", "exists": false},
            {"field": "s.t", "contains": "needle"}, {"not": {}}
        ]});
        let f = Filter::from_json(&v).unwrap();
        assert_eq!(Filter::from_json(&f.to_json()).unwrap(), f);
    }

    #[test]
    fn errors_point_into_the_filter() {
        let cases = [
            (json!([1]), ""),
            (json!({"and": {}}), "/and"),
            (json!({"and": [{"field": "a"}]}), "/and/0"),
            (json!({"or": [{}, {"field": "a", "gt": true}]}), "/or/1/gt"),
            (json!({"field": "a", "eq": {"x": 1}}), "/eq"),
            (json!({"field": "a", "like": "x"}), "/like"),
            (json!({"field": 3, "eq": 1}), "/field"),
            (json!({"field": "a", "in": [1, [2]]}), "/in/1"),
            (json!({"not": {"field": "a b", "eq": 1}}), "/not/field"),
            (json!({"and": [], "or": []}), ""),
        ];
        for (value, path) in cases {
            match Filter::from_json(&value) {
                Err(StoreError::InvalidFilter { path: p, .. }) => assert_eq!(p, path, "{value}"),
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_operand_holds_u0000() {
        // PostgreSQL cannot bind text holding U+0000 (found by fuzz target store_filter:
        // `contains` took any string, and the query failed in the database).
        for op in ["eq", "ne", "gt", "in", "contains"] {
            let operand = if op == "in" {
                json!(["a\u{0}b"])
            } else {
                json!("a\u{0}b")
            };
            let value = json!({"field": "a", op: operand});
            match Filter::from_json(&value) {
                Err(StoreError::InvalidFilter { path, reason }) => {
                    assert!(path.starts_with(&format!("/{op}")), "{path}");
                    assert!(reason.contains("U+0000"), "{reason}");
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut v = json!({"field": "a", "eq": 1});
        for _ in 0..=MAX_FILTER_DEPTH {
            v = json!({"not": v});
        }
        assert!(Filter::from_json(&v).is_err());
    }
}
