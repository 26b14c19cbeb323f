//! The breaker's configuration: a serde struct, validated before use.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, check_percent, check_positive};

/// The largest count-based window, in calls.
pub const MAX_COUNT_WINDOW: u32 = 1 << 20;
/// The most trial calls in half-open.
pub const MAX_HALF_OPEN_CALLS: u32 = (1 << 16) - 1;
/// The largest time-based window, in seconds.
pub const MAX_TIME_WINDOW_SECS: u32 = 3600;

/// Which calls the rates are computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Window {
    /// The last `size` calls.
    Count {
        /// How many calls.
        size: u32,
    },
    /// The calls of the last `seconds` seconds (one bucket per second).
    Time {
        /// How many seconds.
        seconds: u32,
    },
}

/// Everything that shapes a circuit breaker. Durations are in milliseconds.
///
/// ```
/// let config: plexus_resilience::BreakerConfig = serde_json::from_str(
///     r#"{"name": "storage", "window": {"kind": "count", "size": 20},
///         "failure_rate_threshold": 50, "minimum_calls": 10}"#,
/// ).unwrap();
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// The breaker's name, carried by its errors, events and metrics.
    pub name: String,
    /// The sliding window the rates are computed over.
    pub window: Window,
    /// Open when at least this percentage of calls in the window failed, in `(0, 100]`.
    pub failure_rate_threshold: f64,
    /// Open when at least this percentage of calls in the window were slow, in `(0, 100]`.
    pub slow_call_rate_threshold: f64,
    /// A call taking at least this long is slow; `None` turns slow-call tracking off
    /// (and spares the breaker reading the clock on each call).
    pub slow_call_duration_ms: Option<u64>,
    /// The calls the window must hold before the rates count.
    pub minimum_calls: u32,
    /// Trial calls let through in half-open; their rates decide between closing and
    /// reopening once all of them have completed.
    pub permitted_calls_in_half_open: u32,
    /// Reopen when the half-open trials have not all completed this long after
    /// half-open began (a trial that hangs must not hold the breaker half-open).
    pub max_wait_in_half_open_ms: Option<u64>,
    /// How long the breaker stays open before it allows trials.
    pub wait_in_open_ms: u64,
    /// Each reopening without a close in between multiplies the wait by this (1 = fixed).
    pub wait_multiplier: f64,
    /// The cap on a growing wait.
    pub max_wait_in_open_ms: u64,
    /// Move to half-open as soon as the wait is over (a timer task on the tokio runtime)
    /// instead of on the next call.
    pub automatic_transition: bool,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            window: Window::Count { size: 100 },
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration_ms: None,
            minimum_calls: 100,
            permitted_calls_in_half_open: 10,
            max_wait_in_half_open_ms: None,
            wait_in_open_ms: 60_000,
            wait_multiplier: 1.0,
            max_wait_in_open_ms: 60_000,
            automatic_transition: false,
        }
    }
}

impl BreakerConfig {
    /// Rejects nonsense, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        match self.window {
            Window::Count { size } => {
                check_positive("window.size", size.into())?;
                if size > MAX_COUNT_WINDOW {
                    return Err(ConfigError::new(
                        "window.size",
                        format!("{size} is over the maximum {MAX_COUNT_WINDOW}"),
                    ));
                }
            }
            Window::Time { seconds } => {
                check_positive("window.seconds", seconds.into())?;
                if seconds > MAX_TIME_WINDOW_SECS {
                    return Err(ConfigError::new(
                        "window.seconds",
                        format!("{seconds} is over the maximum {MAX_TIME_WINDOW_SECS}"),
                    ));
                }
            }
        }
        check_percent("failure_rate_threshold", self.failure_rate_threshold)?;
        check_percent("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if self.slow_call_duration_ms == Some(0) {
            return Err(ConfigError::new(
                "slow_call_duration_ms",
                "must be at least 1",
            ));
        }
        check_positive("minimum_calls", self.minimum_calls.into())?;
        check_positive(
            "permitted_calls_in_half_open",
            self.permitted_calls_in_half_open.into(),
        )?;
        if self.permitted_calls_in_half_open > MAX_HALF_OPEN_CALLS {
            return Err(ConfigError::new(
                "permitted_calls_in_half_open",
                format!("is over the maximum {MAX_HALF_OPEN_CALLS}"),
            ));
        }
        if self.max_wait_in_half_open_ms == Some(0) {
            return Err(ConfigError::new(
                "max_wait_in_half_open_ms",
                "must be at least 1",
            ));
        }
        check_positive("wait_in_open_ms", self.wait_in_open_ms)?;
        if !(self.wait_multiplier.is_finite() && self.wait_multiplier >= 1.0) {
            return Err(ConfigError::new(
                "wait_multiplier",
                format!(
                    "{} must be a finite number of at least 1",
                    self.wait_multiplier
                ),
            ));
        }
        if self.max_wait_in_open_ms < self.wait_in_open_ms {
            return Err(ConfigError::new(
                "max_wait_in_open_ms",
                "must not be below wait_in_open_ms",
            ));
        }
        Ok(())
    }

    /// The wait in open after `reopenings` reopenings in a row.
    pub(crate) fn wait_in_open(&self, reopenings: u32) -> Duration {
        let base = self.wait_in_open_ms as f64;
        let grown = base * self.wait_multiplier.powi(reopenings.min(1024) as i32);
        let ms = grown.min(self.max_wait_in_open_ms as f64);
        Duration::from_millis(ms as u64)
    }

    /// The minimum calls, capped by a count window's size.
    pub(crate) fn effective_minimum_calls(&self) -> u64 {
        match self.window {
            Window::Count { size } => u64::from(self.minimum_calls.min(size)),
            Window::Time { .. } => u64::from(self.minimum_calls),
        }
    }
}
