//! Documents and the operations on them: what a stored document looks like, how puts
//! are checked, JSON merge patch (RFC 7386), projection, collection specs and
//! transaction operations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::StoreError;
use crate::sql::FieldPath;

/// The longest document id, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// A stored document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Its id, unique in the collection.
    pub id: String,
    /// Its version: 1 when inserted, one more at each write.
    pub version: u64,
    /// The JSON object.
    pub doc: Value,
}

/// What a write left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The version now stored.
    pub version: u64,
}

/// How a put treats an existing document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PutMode {
    /// Only if no document has the id ([`StoreError::AlreadyExists`] otherwise).
    #[schemars(description = "Only if no document has the id.")]
    Insert,
    /// Only if a document has the id ([`StoreError::NotFound`] otherwise).
    #[schemars(description = "Only if a document has the id.")]
    Replace,
    /// Insert or replace.
    #[default]
    Upsert,
}

/// A secondary index on one or more fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Its name, unique in the collection: `[a-z][a-z0-9_]*`, at most 24 bytes.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"), length(max = 24))]
    pub name: String,
    /// The field paths it covers, in order (1 to 8).
    #[schemars(length(min = 1, max = 8))]
    pub fields: Vec<String>,
    /// Whether two documents may not share the key. Documents missing a field, or
    /// holding null there, never conflict.
    #[serde(default)]
    pub unique: bool,
}

impl IndexSpec {
    /// A non-unique index.
    pub fn new(name: &str, fields: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            unique: false,
        }
    }

    /// Makes the index unique.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
}

/// What a collection declares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionSpec {
    /// Its secondary indexes.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
}

impl CollectionSpec {
    /// Adds an index.
    pub fn with_index(mut self, index: IndexSpec) -> Self {
        self.indexes.push(index);
        self
    }
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// [`DataStore::put`](crate::DataStore::put).
    #[schemars(description = "A put.")]
    Put {
        /// The collection.
        #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"), length(max = 32))]
        collection: String,
        /// The id.
        #[schemars(length(min = 1, max = 256))]
        id: String,
        /// The document.
        #[schemars(with = "Map<String, Value>")]
        doc: Value,
        /// Insert, replace or upsert (default).
        #[serde(default)]
        mode: PutMode,
        /// The version the caller expects (0: must not exist).
        #[serde(default)]
        expected_version: Option<u64>,
    },
    /// [`DataStore::get`](crate::DataStore::get).
    #[schemars(description = "A get.")]
    Get {
        /// The collection.
        #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"), length(max = 32))]
        collection: String,
        /// The id.
        #[schemars(length(min = 1, max = 256))]
        id: String,
    },
    /// [`DataStore::delete`](crate::DataStore::delete).
    #[schemars(description = "A delete.")]
    Delete {
        /// The collection.
        #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"), length(max = 32))]
        collection: String,
        /// The id.
        #[schemars(length(min = 1, max = 256))]
        id: String,
        /// The version the caller expects.
        #[serde(default)]
        expected_version: Option<u64>,
    },
    /// [`DataStore::patch`](crate::DataStore::patch).
    #[schemars(description = "A merge patch.")]
    Patch {
        /// The collection.
        #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"), length(max = 32))]
        collection: String,
        /// The id.
        #[schemars(length(min = 1, max = 256))]
        id: String,
        /// The merge patch.
        #[schemars(with = "Map<String, Value>")]
        patch: Value,
        /// The version the caller expects.
        #[serde(default)]
        expected_version: Option<u64>,
    },
}

/// The outcome of one operation of a committed transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpResult {
    /// A put's new version.
    Put(Stored),
    /// A get's document, if there was one.
    Get {
        /// The document.
        doc: Option<Document>,
    },
    /// Whether a delete removed a document.
    Delete {
        /// Whether it did.
        deleted: bool,
    },
    /// A patch's new version.
    Patch(Stored),
}

/// Checks an id: 1 to [`MAX_ID_LEN`] bytes, no control characters.
pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(StoreError::invalid_argument(
            "id",
            format!("must be 1 to {MAX_ID_LEN} bytes"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(StoreError::invalid_argument(
            "id",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a document and returns its JSON text: a non-empty object, at most
/// `max_bytes` of JSON, nested at most `max_depth` deep, no U+0000 anywhere
/// (PostgreSQL's jsonb cannot hold it, so neither backend accepts it).
pub(crate) fn encode_document(
    doc: &Value,
    max_bytes: usize,
    max_depth: usize,
) -> Result<String, StoreError> {
    let Value::Object(map) = doc else {
        return Err(StoreError::invalid_document(format!(
            "must be a JSON object, not {}",
            type_name(doc)
        )));
    };
    if map.is_empty() {
        return Err(StoreError::invalid_document("must not be an empty object"));
    }
    let text = serde_json::to_string(doc)
        .map_err(|e| StoreError::invalid_document(format!("cannot be encoded: {e}")))?;
    if text.len() > max_bytes {
        return Err(StoreError::DocumentTooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    check_value(doc, 1, max_depth)?;
    Ok(text)
}

fn check_value(value: &Value, depth: usize, max_depth: usize) -> Result<(), StoreError> {
    match value {
        Value::Object(map) => {
            if depth > max_depth {
                return Err(StoreError::invalid_document(format!(
                    "nested deeper than {max_depth}"
                )));
            }
            for (key, v) in map {
                if key.contains('\0') {
                    return Err(StoreError::invalid_document("keys may not contain U+0000"));
                }
                check_value(v, depth + 1, max_depth)?;
            }
        }
        Value::Array(items) => {
            if depth > max_depth {
                return Err(StoreError::invalid_document(format!(
                    "nested deeper than {max_depth}"
                )));
            }
            for v in items {
                check_value(v, depth + 1, max_depth)?;
            }
        }
        Value::String(s) if s.contains('\0') => {
            return Err(StoreError::invalid_document(
                "strings may not contain U+0000",
            ));
        }
        _ => {}
    }
    Ok(())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies a JSON merge patch (RFC 7386) to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Keeps only `fields` of `doc`, nested as they were.
pub(crate) fn project(doc: &Value, fields: &[FieldPath]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in fields {
        let Some(value) = path.lookup(doc) else {
            continue;
        };
        let mut at = &mut out;
        let segments = path.segments();
        for (i, segment) in segments.iter().enumerate() {
            let Value::Object(map) = at else { break };
            if i + 1 == segments.len() {
                map.insert(segment.clone(), value.clone());
                break;
            }
            at = map
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected, "patch {patch}");
        }
    }

    #[test]
    fn documents_are_checked() {
        assert!(encode_document(&json!({"a": 1}), 100, 4).is_ok());
        assert!(matches!(
            encode_document(&json!([1]), 100, 4),
            Err(StoreError::InvalidDocument { .. })
        ));
        assert!(matches!(
            encode_document(&json!({}), 100, 4),
            Err(StoreError::InvalidDocument { .. })
        ));
        assert!(matches!(
            encode_document(&json!({"a": "x".repeat(200)}), 100, 4),
            Err(StoreError::DocumentTooLarge { limit: 100, .. })
        ));
        assert!(encode_document(&json!({"a": {"b": {"c": 1}}}), 100, 3).is_ok());
        assert!(encode_document(&json!({"a": {"b": {"c": {}}}}), 100, 3).is_err());
        assert!(encode_document(&json!({"a": "x\u{0}y"}), 100, 4).is_err());
        assert!(check_id("").is_err());
        assert!(check_id("a\nb").is_err());
        assert!(check_id("order-1").is_ok());
    }

    #[test]
    fn projection_keeps_nested_fields() {
        let doc = json!({"a": 1, "m": {"x": 2, "y": 3}, "z": 4});
        let fields = [
            FieldPath::parse("m.x").unwrap(),
            FieldPath::parse("z").unwrap(),
            FieldPath::parse("missing.q").unwrap(),
        ];
        assert_eq!(project(&doc, &fields), json!({"m": {"x": 2}, "z": 4}));
    }
}
