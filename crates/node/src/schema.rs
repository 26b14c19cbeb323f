//! Params checks: each method's JSON Schema compiled once, applied before dispatch.
//!
//! A [`ParamsSchema`] is compiled when a service registers (a schema that does not
//! compile rejects the registration) and checked on every call. The first violation
//! becomes a [`CallError::InvalidParams`] that names the field as a JSON pointer:
//! for a missing required property or a property the schema forbids, the pointer ends
//! at that property, not at the object holding it. Schemas are resolved without any
//! network or file access (`jsonschema` with its default features off).

use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::CallError;

/// A method's compiled params schema; `true` (accept anything) skips the check.
#[derive(Clone)]
pub struct ParamsSchema {
    validator: Option<std::sync::Arc<Validator>>,
    /// The schema says `"type": "object"`: absent params (`null`) mean `{}`, as
    /// JSON-RPC lets a caller omit `params`.
    object: bool,
}

impl fmt::Debug for ParamsSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParamsSchema")
            .field("checks", &self.validator.is_some())
            .finish()
    }
}

/// A schema that does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the params schema of `{method}` does not compile: {reason}")]
pub struct SchemaError {
    /// The method.
    pub method: String,
    /// What the compiler said.
    pub reason: String,
}

impl ParamsSchema {
    /// Compiles `schema` for `method`.
    pub fn compile(method: &str, schema: &Value) -> Result<Self, SchemaError> {
        if schema == &Value::Bool(true) {
            return Ok(Self {
                validator: None,
                object: false,
            });
        }
        let object = schema.get("type").and_then(Value::as_str) == Some("object");
        let validator = jsonschema::validator_for(schema).map_err(|e| SchemaError {
            method: method.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            validator: Some(std::sync::Arc::new(validator)),
            object,
        })
    }

    /// Absent params (`null`) become `{}` when the method takes an object.
    pub fn normalize(&self, params: Value) -> Value {
        match params {
            Value::Null if self.object => Value::Object(serde_json::Map::new()),
            other => other,
        }
    }

    /// Checks `params`, naming the first offending field.
    pub fn check(&self, method: &str, params: &Value) -> Result<(), CallError> {
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        match validator.validate(params) {
            Ok(()) => Ok(()),
            Err(error) => Err(invalid(method, &error)),
        }
    }
}

fn invalid(method: &str, error: &ValidationError<'_>) -> CallError {
    let at = error.instance_path().to_string();
    let (field, reason) = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| property.to_string());
            (format!("{at}/{name}"), "is required".to_owned())
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let first = unexpected.first().cloned().unwrap_or_default();
            (format!("{at}/{first}"), "is not allowed here".to_owned())
        }
        _ => (at, error.to_string()),
    };
    CallError::InvalidParams {
        method: method.to_owned(),
        field,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person() -> ParamsSchema {
        ParamsSchema::compile(
            "people.add",
            &json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "minimum": 0},
                    "address": {"type": "object", "properties": {"zip": {"type": "string"}}}
                },
                "required": ["name"],
                "additionalProperties": false
            }),
        )
        .unwrap()
    }

    fn field(e: CallError) -> (String, String) {
        match e {
            CallError::InvalidParams { field, reason, .. } => (field, reason),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn names_the_field_for_each_kind_of_violation() {
        let s = person();
        s.check("people.add", &json!({"name": "ada", "age": 36}))
            .unwrap();
        let (f, r) = field(
            s.check("people.add", &json!({"name": "ada", "age": "x"}))
                .unwrap_err(),
        );
        assert_eq!(f, "/age");
        assert!(r.contains("integer"), "{r}");
        assert_eq!(
            field(s.check("people.add", &json!({"age": 3})).unwrap_err()).0,
            "/name"
        );
        assert_eq!(
            field(
                s.check("people.add", &json!({"name": "a", "extra": 1}))
                    .unwrap_err()
            )
            .0,
            "/extra"
        );
        assert_eq!(
            field(
                s.check("people.add", &json!({"name": "a", "address": {"zip": 1}}))
                    .unwrap_err()
            )
            .0,
            "/address/zip"
        );
    }

    #[test]
    fn absent_params_are_an_empty_object_for_object_schemas() {
        let s = ParamsSchema::compile("m", &json!({"type": "object"})).unwrap();
        let params = s.normalize(Value::Null);
        assert_eq!(params, json!({}));
        s.check("m", &params).unwrap();
        assert_eq!(person().normalize(Value::Null), json!({}));
        assert!(person().check("people.add", &json!({})).is_err());
        let any = ParamsSchema::compile("m", &json!(true)).unwrap();
        assert_eq!(any.normalize(Value::Null), Value::Null);
    }

    #[test]
    fn a_schema_that_does_not_compile_is_an_error() {
        let err = ParamsSchema::compile("m", &json!({"type": "nonsense"})).unwrap_err();
        assert_eq!(err.method, "m");
        assert!(
            ParamsSchema::compile("m", &json!(true))
                .unwrap()
                .check("m", &json!(1))
                .is_ok()
        );
    }
}
