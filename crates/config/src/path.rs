//! Dotted paths into the configuration tree (`services.storage.breaker`), and the
//! tree operations the store is built on: read, write, remove, compare, measure.
//!
//! A path is a list of keys joined by dots; every key is non-empty. Reading also
//! indexes arrays by number (`hosts.0`); writing goes through tables only. A key
//! that itself contains a dot cannot be addressed one key at a time: change its
//! parent table instead.

use serde_json::{Map, Value};

use crate::ConfigError;

/// Splits a dotted path into its keys, refusing empty keys.
pub(crate) fn keys(path: &str) -> Result<Vec<&str>, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if path.is_empty() {
        return Err(invalid("is empty"));
    }
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(invalid(
            "has an empty key (two dots in a row, or a leading or trailing dot)",
        ));
    }
    Ok(keys)
}

/// The value at `keys`, indexing tables by key and arrays by number.
pub(crate) fn get<'a>(root: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(root, |node, key| match node {
        Value::Object(map) => map.get(*key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Sets the value at `keys`, creating missing tables on the way. Fails, saying
/// where, when the way leads through something that is not a table.
pub(crate) fn set(root: &mut Value, keys: &[&str], value: Value) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else {
        return Err("is empty".to_owned());
    };
    let mut node = root;
    for (depth, key) in parents.iter().enumerate() {
        let map = as_table(node, &keys[..depth])?;
        node = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    as_table(node, parents)?.insert((*last).to_owned(), value);
    Ok(())
}

/// Removes the value at `keys`; `None` when nothing was there.
pub(crate) fn remove(root: &mut Value, keys: &[&str]) -> Option<Value> {
    let (last, parents) = keys.split_last()?;
    let mut node = root;
    for key in parents {
        node = node.as_object_mut()?.get_mut(*key)?;
    }
    node.as_object_mut()?.remove(*last)
}

fn as_table<'a>(node: &'a mut Value, at: &[&str]) -> Result<&'a mut Map<String, Value>, String> {
    let what = kind(node);
    node.as_object_mut().ok_or_else(|| {
        if at.is_empty() {
            format!("leads through the root, which is {what}, not a table")
        } else {
            format!(
                "leads through `{}`, which is {what}, not a table",
                at.join(".")
            )
        }
    })
}

/// The name of a value's kind, as a TOML user would say it.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// The dotted paths whose values differ between `old` and `new`, sorted: leaves
/// that were added, removed or changed, and tables or arrays replaced as a whole
/// by something of another kind.
pub(crate) fn diff(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    // An explicit stack: the documents' depth is bounded, but no recursion is needed.
    let mut stack: Vec<(String, Option<&Value>, Option<&Value>)> =
        vec![(String::new(), Some(old), Some(new))];
    while let Some((at, a, b)) = stack.pop() {
        match (a, b) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                    stack.push((crate::validate::join(&at, key), a.get(key), b.get(key)));
                }
            }
            (Some(Value::Object(a)), None) if !a.is_empty() => {
                for (key, value) in a {
                    stack.push((crate::validate::join(&at, key), Some(value), None));
                }
            }
            (None, Some(Value::Object(b))) if !b.is_empty() => {
                for (key, value) in b {
                    stack.push((crate::validate::join(&at, key), None, Some(value)));
                }
            }
            (a, b) if a != b => out.push(at),
            _ => {}
        }
    }
    out.sort();
    out
}

/// The first path deeper than `limit` levels of tables and arrays, if any.
pub(crate) fn too_deep(root: &Value, limit: usize) -> Option<String> {
    let mut stack: Vec<(&Value, usize, String)> = vec![(root, 0, String::new())];
    while let Some((node, depth, at)) = stack.pop() {
        let children: Box<dyn Iterator<Item = (String, &Value)>> = match node {
            Value::Object(map) => Box::new(map.iter().map(|(k, v)| (k.clone(), v))),
            Value::Array(items) => {
                Box::new(items.iter().enumerate().map(|(i, v)| (i.to_string(), v)))
            }
            _ => continue,
        };
        if depth >= limit {
            return Some(if at.is_empty() { ".".to_owned() } else { at });
        }
        for (key, child) in children {
            stack.push((child, depth + 1, crate::validate::join(&at, &key)));
        }
    }
    None
}

/// The size of `value` as compact JSON, in bytes, without building the text.
pub(crate) fn encoded_len(value: &Value) -> usize {
    plexus_core::json_len(value)
}

/// Merges `over` into `base`: objects key by key, recursively; anything else replaces.
/// An object whose `kind` differs (a tagged variant, such as another backoff) replaces
/// the whole object rather than mixing the fields of two variants.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o))
            if o.get("kind").is_some_and(|k| b.get("kind") != Some(k)) =>
        {
            *b = o.clone();
        }
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_refuse_empty_segments() {
        assert_eq!(keys("a.b").unwrap(), ["a", "b"]);
        for bad in ["", ".a", "a.", "a..b"] {
            assert!(
                matches!(keys(bad), Err(ConfigError::InvalidPath { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn get_set_remove() {
        let mut doc = json!({"a": {"b": 1, "list": [10, 20]}, "s": "x"});
        assert_eq!(get(&doc, &["a", "b"]), Some(&json!(1)));
        assert_eq!(get(&doc, &["a", "list", "1"]), Some(&json!(20)));
        assert_eq!(get(&doc, &["a", "list", "x"]), None);
        set(&mut doc, &["n", "m", "k"], json!(true)).unwrap();
        assert_eq!(get(&doc, &["n", "m", "k"]), Some(&json!(true)));
        let err = set(&mut doc, &["s", "t"], json!(1)).unwrap_err();
        assert_eq!(err, "leads through `s`, which is a string, not a table");
        assert_eq!(remove(&mut doc, &["a", "b"]), Some(json!(1)));
        assert_eq!(remove(&mut doc, &["a", "b"]), None);
        assert_eq!(remove(&mut doc, &["s", "t"]), None);
    }

    #[test]
    fn diff_lists_changed_leaves() {
        let old = json!({"a": {"b": 1, "c": 2}, "gone": {"x": 1}, "list": [1]});
        let new = json!({"a": {"b": 1, "c": 3, "d": 4}, "list": [1, 2], "t": {"u": 1}});
        assert_eq!(diff(&old, &new), ["a.c", "a.d", "gone.x", "list", "t.u"]);
        assert!(diff(&old, &old).is_empty());
        assert_eq!(diff(&json!({"a": {"b": 1}}), &json!({"a": 5})), ["a"]);
    }

    #[test]
    fn depth_and_size() {
        let doc = json!({"a": {"b": {"c": [1]}}});
        assert_eq!(too_deep(&doc, 4), None);
        assert_eq!(too_deep(&doc, 3).as_deref(), Some("a.b.c"));
        assert_eq!(encoded_len(&json!({"a": 1})), 7);
    }
}
