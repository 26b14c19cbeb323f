//! Where a configuration comes from: TOML text or a TOML file, then `PLEXUS_*`
//! environment overrides on top.
//!
//! # Environment overrides
//!
//! A variable `PLEXUS_SERVICES__STORAGE__BREAKER__FAILURE_RATE=0.3` sets
//! `services.storage.breaker.failure_rate` to `0.3`: the prefix
//! ([`crate::ConfigOptions::env_prefix`]) is removed, the rest is lower-cased, and a
//! double underscore separates keys (a single underscore stays part of a key).
//! Variables whose name starts with one of [`crate::ConfigOptions::env_exclude`]
//! (by default `PLEXUS_TEST_`, which the test suites use for server URLs) are not
//! configuration and are skipped.
//!
//! Values are read by [`parse_value`]: as a TOML value when they are one (`0.3`,
//! `true`, `42`, `"quoted"`, `[1, 2]`, `{ a = 1 }`), else as JSON (`{"a": 1}`),
//! else as the string itself (`info`, `postgres://…`). Overrides are applied in
//! the order of their paths, so a table is set before the keys inside it.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Number, Value};

use crate::{ConfigError, path};

/// TOML text as a configuration document. `origin` names the text in errors.
pub fn parse_toml(text: &str, origin: &str) -> Result<Value, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((1, 1));
        ConfigError::Parse {
            origin: origin.to_owned(),
            line,
            column,
            message: error.message().trim_end().to_owned(),
        }
    })?;
    toml_to_json(toml::Value::Table(table), "").map_err(|(field, reason)| {
        ConfigError::invalid(vec![crate::FieldError::new(field, reason)])
    })
}

/// The 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Converts a TOML value to JSON. Datetimes become their TOML text; NaN and the
/// infinities have no JSON form and are refused, naming the field.
fn toml_to_json(value: toml::Value, at: &str) -> Result<Value, (String, String)> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::Number(i.into()),
        toml::Value::Float(f) => Value::Number(Number::from_f64(f).ok_or_else(|| {
            (
                at.to_owned(),
                format!("is {f}, which a configuration value cannot be"),
            )
        })?),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(v, &crate::validate::join(at, &i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => {
            let mut map = Map::new();
            for (key, v) in table {
                let value = toml_to_json(v, &crate::validate::join(at, &key))?;
                map.insert(key, value);
            }
            Value::Object(map)
        }
    })
}

/// Reads one value as given on a command line or in an environment variable: a
/// TOML value when it is one (`0.3`, `true`, `"text"`, `[1, 2]`, `{ a = 1 }`), else
/// JSON (`{"a": 1}`), else the text itself as a string.
///
/// ```
/// use plexus_config::parse_value;
/// use serde_json::json;
///
/// assert_eq!(parse_value("0.3"), json!(0.3));
/// assert_eq!(parse_value("[1, 2]"), json!([1, 2]));
/// assert_eq!(parse_value(r#"{"a": true}"#), json!({"a": true}));
/// assert_eq!(parse_value("info"), json!("info"));
/// ```
pub fn parse_value(text: &str) -> Value {
    // A line break could smuggle in more keys; such text is never one TOML value.
    if !text.contains(['\n', '\r'])
        && let Ok(mut table) = toml::from_str::<toml::Table>(&format!("v = {text}"))
        && table.len() == 1
        && let Some(value) = table.remove("v")
        && let Ok(value) = toml_to_json(value, "")
    {
        return value;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// One environment variable read as an override.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvOverride {
    /// The variable's name (`PLEXUS_SERVICES__STORAGE__BREAKER__FAILURE_RATE`).
    pub var: String,
    /// The dotted path it sets (`services.storage.breaker.failure_rate`).
    pub path: String,
    /// The value it sets.
    pub value: Value,
}

/// The environment overrides read once and applied on top of every read of the
/// configuration file (start-up and each reload).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvOverrides {
    entries: Vec<EnvOverride>,
}

impl EnvOverrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads overrides from `vars` (name, value): the names that start with
    /// `prefix` and with none of `exclude`. A malformed name is refused, naming
    /// the variable.
    pub fn from_vars<I, K, V>(
        vars: I,
        prefix: &str,
        exclude: &[String],
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: AsRef<str>,
    {
        let mut entries: Vec<EnvOverride> = Vec::new();
        for (var, value) in vars {
            let var: String = var.into();
            let Some(rest) = var.strip_prefix(prefix) else {
                continue;
            };
            if exclude.iter().any(|x| var.starts_with(x.as_str())) {
                continue;
            }
            let bad = |reason: &str| ConfigError::Env {
                var: var.clone(),
                reason: reason.to_owned(),
            };
            let keys: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            if keys.iter().any(String::is_empty) {
                return Err(bad(
                    "names an empty key: after the prefix, keys are separated by exactly two underscores (PLEXUS_SERVICES__STORAGE__TIMEOUT)",
                ));
            }
            if keys.iter().any(|k| k.contains('.')) {
                return Err(bad("has a dot in a key; use two underscores between keys"));
            }
            let path = keys.join(".");
            if let Some(other) = entries.iter().find(|e| e.path == path) {
                return Err(bad(&format!("sets `{path}`, which {} sets too", other.var)));
            }
            entries.push(EnvOverride {
                var,
                path,
                value: parse_value(value.as_ref()),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Self { entries })
    }

    /// Reads overrides from the process environment. Variables that are not
    /// Unicode are skipped.
    pub fn from_process_env(prefix: &str, exclude: &[String]) -> Result<Self, ConfigError> {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
            prefix,
            exclude,
        )
    }

    /// The overrides, in the order they are applied.
    pub fn iter(&self) -> std::slice::Iter<'_, EnvOverride> {
        self.entries.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies every override to `document`. One that leads through a value that
    /// is not a table is refused, naming the variable.
    pub fn apply_to(&self, document: &mut Value) -> Result<(), ConfigError> {
        for entry in &self.entries {
            let keys: Vec<&str> = entry.path.split('.').collect();
            path::set(document, &keys, entry.value.clone()).map_err(|reason| ConfigError::Env {
                var: entry.var.clone(),
                reason: format!("sets `{}`, but the path {reason}", entry.path),
            })?;
        }
        Ok(())
    }

    /// The variable that set the value `field` is about in `document`, if one did
    /// and the value is still the one it set: the override's path is the field, or
    /// a table around it, or a key inside it.
    pub(crate) fn origin_of(&self, field: &str, document: &Value) -> Option<&str> {
        let related = |p: &str| {
            p == field
                || field.strip_prefix(p).is_some_and(|r| r.starts_with('.'))
                || p.strip_prefix(field).is_some_and(|r| r.starts_with('.'))
        };
        self.entries
            .iter()
            .filter(|e| related(&e.path))
            .find(|e| {
                let keys: Vec<&str> = e.path.split('.').collect();
                path::get(document, &keys) == Some(&e.value)
            })
            .map(|e| e.var.as_str())
    }
}

/// Reads a UTF-8 file of at most `limit` bytes.
pub(crate) fn read_file(file: &Path, limit: usize) -> Result<String, ConfigError> {
    let io = |source| ConfigError::Io {
        path: file.to_owned(),
        source,
    };
    let handle = std::fs::File::open(file).map_err(io)?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    handle.take(cap).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > limit {
        let size = std::fs::metadata(file)
            .ok()
            .and_then(|m| usize::try_from(m.len()).ok())
            .unwrap_or(bytes.len());
        return Err(ConfigError::TooLarge {
            what: format!("file {}", file.display()),
            size,
            limit,
            option: "max_document_bytes",
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn toml_errors_say_where() {
        let err = parse_toml("a = 1\nb = = 2\n", "node.toml").unwrap_err();
        match err {
            ConfigError::Parse {
                origin,
                line,
                column,
                ..
            } => {
                assert_eq!(origin, "node.toml");
                assert_eq!(line, 2);
                assert!(column > 1);
            }
            other => panic!("{other}"),
        }
        let err = parse_toml("[a]\nx = nan\n", "f").unwrap_err();
        assert_eq!(err.field(), Some("a.x"));
    }

    #[test]
    fn values_are_toml_then_json_then_text() {
        assert_eq!(parse_value("42"), json!(42));
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("\"quoted\""), json!("quoted"));
        assert_eq!(parse_value("{ a = 1 }"), json!({"a": 1}));
        assert_eq!(parse_value("1979-05-27"), json!("1979-05-27"));
        assert_eq!(parse_value("nan"), json!("nan"));
        assert_eq!(parse_value("1\nb = 2"), json!("1\nb = 2"));
        assert_eq!(parse_value(""), json!(""));
        assert_eq!(parse_value("postgres://u@h/db"), json!("postgres://u@h/db"));
    }
}
