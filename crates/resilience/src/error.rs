//! Errors shared by every layer: the boxed error type and configuration errors.

/// The error type every layer returns, as in tower: callers downcast it to the typed
/// rejection they care about ([`crate::CircuitOpen`], [`crate::DeadlineExceeded`],
/// [`crate::BulkheadFull`], [`crate::RateLimited`], [`crate::NoInstanceAvailable`]) or
/// to the inner service's own error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A configuration value that makes no sense, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ConfigError {
    /// The field, as spelled in the serde configuration.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks that a percentage lies in `(0, 100]`.
pub(crate) fn check_percent(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 100.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("{value} is not a percentage in (0, 100]"),
        ))
    }
}

/// Checks that a number is at least one.
pub(crate) fn check_positive(field: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        Err(ConfigError::new(field, "must be at least 1"))
    } else {
        Ok(())
    }
}
