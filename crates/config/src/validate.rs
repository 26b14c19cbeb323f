//! Validation of typed sections: the [`Validate`] trait and the field-named errors
//! it returns, with helpers for the common checks so a section's rules stay short.
//!
//! Field paths are relative to the value being validated (`failure_rate`,
//! `retry.max_attempts`); the store prefixes them with the section's own path, so a
//! rejected change names the full dotted path
//! (`services.storage.breaker.failure_rate`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Display};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A typed configuration section that can check itself.
///
/// ```
/// use plexus_config::{FieldErrors, Validate};
///
/// struct Pool { name: String, size: u32 }
///
/// impl Validate for Pool {
///     fn validate(&self) -> Result<(), FieldErrors> {
///         let mut errors = FieldErrors::new();
///         errors.non_empty("name", &self.name).range("size", self.size, 1..=64);
///         errors.into_result()
///     }
/// }
///
/// let errors = Pool { name: String::new(), size: 100 }.validate().unwrap_err();
/// assert_eq!(errors.len(), 2);
/// assert_eq!(errors.first().unwrap().field, "name");
/// assert_eq!(errors.iter().nth(1).unwrap().reason, "must be between 1 and 64, got 100");
/// ```
pub trait Validate {
    /// Every problem found, each naming its field relative to `self`; `Ok` when none.
    fn validate(&self) -> Result<(), FieldErrors>;
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The dotted path of the field (`services.storage.breaker.failure_rate`).
    pub field: String,
    /// What is wrong with it, and what is allowed.
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "`{}` {}", self.field, self.reason)
        }
    }
}

/// Joins a prefix and a relative field path with a dot; either may be empty.
pub(crate) fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{field}"),
    }
}

/// Every problem found in one value, in the order they were found.
///
/// It is both the error of [`Validate::validate`] and the accumulator its
/// implementations fill: each helper checks one rule and records a [`FieldError`]
/// when it does not hold, so all problems are reported at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exactly one error.
    pub fn one(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, reason)])
    }

    /// Records a problem with `field`.
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) -> &mut Self {
        self.0.push(FieldError::new(field, reason));
        self
    }

    /// Records `reason()` against `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, reason: impl FnOnce() -> String) -> &mut Self {
        if !ok {
            self.push(field, reason());
        }
        self
    }

    /// `value` must lie in `range` (inclusive): "must be between 0 and 1, got 1.5".
    /// A NaN is never in range.
    pub fn range<T: PartialOrd + Display>(
        &mut self,
        field: &str,
        value: T,
        range: RangeInclusive<T>,
    ) -> &mut Self {
        let ok = range.contains(&value);
        self.check(ok, field, || {
            format!(
                "must be between {} and {}, got {value}",
                range.start(),
                range.end()
            )
        })
    }

    /// `value` must be at least `min`.
    pub fn at_least<T: PartialOrd + Display>(
        &mut self,
        field: &str,
        value: T,
        min: T,
    ) -> &mut Self {
        let ok = value >= min;
        self.check(ok, field, || format!("must be at least {min}, got {value}"))
    }

    /// `value` must be at most `max`.
    pub fn at_most<T: PartialOrd + Display>(&mut self, field: &str, value: T, max: T) -> &mut Self {
        let ok = value <= max;
        self.check(ok, field, || format!("must be at most {max}, got {value}"))
    }

    /// `value` must be greater than zero (its `Default`).
    pub fn positive<T: PartialOrd + Default + Display>(
        &mut self,
        field: &str,
        value: T,
    ) -> &mut Self {
        let ok = value > T::default();
        self.check(ok, field, || format!("must be greater than 0, got {value}"))
    }

    /// A duration must be longer than zero.
    pub fn positive_duration(&mut self, field: &str, value: Duration) -> &mut Self {
        self.check(!value.is_zero(), field, || {
            "must be a duration greater than zero".to_owned()
        })
    }

    /// A string must not be empty or only whitespace.
    pub fn non_empty(&mut self, field: &str, value: &str) -> &mut Self {
        self.check(!value.trim().is_empty(), field, || {
            "must not be empty".to_owned()
        })
    }

    /// A list must hold at least one item.
    pub fn non_empty_list<T>(&mut self, field: &str, items: &[T]) -> &mut Self {
        self.check(!items.is_empty(), field, || {
            "must hold at least one item".to_owned()
        })
    }

    /// A string must be one of `allowed`.
    pub fn one_of(&mut self, field: &str, value: &str, allowed: &[&str]) -> &mut Self {
        self.check(allowed.contains(&value), field, || {
            format!("must be one of {}, got {value:?}", allowed.join(", "))
        })
    }

    /// Validates a nested value and records its errors under `field`.
    pub fn nested<V: Validate + ?Sized>(&mut self, field: &str, value: &V) -> &mut Self {
        if let Err(inner) = value.validate() {
            self.extend_under(field, inner);
        }
        self
    }

    /// Records `errors`, each moved under `prefix`.
    pub fn extend_under(&mut self, prefix: &str, errors: FieldErrors) -> &mut Self {
        self.0.extend(errors.0.into_iter().map(|e| FieldError {
            field: join(prefix, &e.field),
            reason: e.reason,
        }));
        self
    }

    /// The same errors, each moved under `prefix`.
    pub fn under(self, prefix: &str) -> Self {
        let mut out = Self::new();
        out.extend_under(prefix, self);
        out
    }

    /// `Ok` when nothing was recorded, otherwise these errors.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many errors were recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first error recorded.
    pub fn first(&self) -> Option<&FieldError> {
        self.0.first()
    }

    /// The errors in the order they were recorded.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    /// The errors as a vector.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, FieldError> {
        self.0.iter_mut()
    }
}

impl Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

impl From<FieldError> for FieldErrors {
    fn from(error: FieldError) -> Self {
        Self(vec![error])
    }
}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a FieldErrors {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Validate + ?Sized> Validate for Box<T> {
    fn validate(&self) -> Result<(), FieldErrors> {
        (**self).validate()
    }
}

impl<T: Validate + ?Sized> Validate for Arc<T> {
    fn validate(&self) -> Result<(), FieldErrors> {
        (**self).validate()
    }
}

/// An absent value is valid; a present one must be.
impl<T: Validate> Validate for Option<T> {
    fn validate(&self) -> Result<(), FieldErrors> {
        self.as_ref().map_or(Ok(()), Validate::validate)
    }
}

/// Each item is validated under its index (`2.name`).
impl<T: Validate> Validate for Vec<T> {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        for (i, item) in self.iter().enumerate() {
            errors.nested(&i.to_string(), item);
        }
        errors.into_result()
    }
}

/// Each value is validated under its key (`storage.breaker.failure_rate`).
impl<T: Validate> Validate for BTreeMap<String, T> {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        for (key, item) in self {
            errors.nested(key, item);
        }
        errors.into_result()
    }
}

/// Each value is validated under its key, in key order.
impl<T: Validate, S: std::hash::BuildHasher> Validate for HashMap<String, T, S> {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut keys: Vec<&String> = self.keys().collect();
        keys.sort();
        let mut errors = FieldErrors::new();
        for key in keys {
            if let Some(item) = self.get(key) {
                errors.nested(key, item);
            }
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Retry {
        attempts: u32,
    }
    impl Validate for Retry {
        fn validate(&self) -> Result<(), FieldErrors> {
            let mut errors = FieldErrors::new();
            errors.range("attempts", self.attempts, 1..=10);
            errors.into_result()
        }
    }

    #[test]
    fn helpers_name_the_field_and_say_why() {
        let mut errors = FieldErrors::new();
        errors
            .range("rate", 1.5, 0.0..=1.0)
            .range("nan", f64::NAN, 0.0..=1.0)
            .range("ok", 0.5, 0.0..=1.0)
            .at_least("min", 0, 1)
            .at_most("max", 9, 8)
            .positive("calls", 0u32)
            .positive_duration("timeout", Duration::ZERO)
            .non_empty("name", "  ")
            .non_empty_list::<u8>("hosts", &[])
            .one_of("mode", "fast", &["count", "time"]);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rate", "nan", "min", "max", "calls", "timeout", "name", "hosts", "mode"
            ]
        );
        assert_eq!(
            errors.first().unwrap().reason,
            "must be between 0 and 1, got 1.5"
        );
        assert_eq!(
            errors.iter().last().unwrap().reason,
            "must be one of count, time, got \"fast\""
        );
    }

    #[test]
    fn collections_prefix_their_items() {
        let list = vec![Retry { attempts: 3 }, Retry { attempts: 0 }];
        let errors = list.validate().unwrap_err();
        assert_eq!(errors.first().unwrap().field, "1.attempts");

        let mut map = BTreeMap::new();
        map.insert("storage".to_owned(), Retry { attempts: 11 });
        let errors = map.validate().unwrap_err().under("services");
        assert_eq!(errors.first().unwrap().field, "services.storage.attempts");
        assert_eq!(
            errors.to_string(),
            "`services.storage.attempts` must be between 1 and 10, got 11"
        );
        assert!(None::<Retry>.validate().is_ok());
    }
}
