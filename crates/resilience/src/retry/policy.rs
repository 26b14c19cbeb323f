//! Backoff schedules and the retry configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, check_positive};
use crate::rng;

/// How the random part of an exponential delay is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Uniform in `[0, delay]` (AWS "full jitter"): spreads retries the most.
    #[default]
    Full,
    /// Uniform in `[delay / 2, delay]`.
    Equal,
    /// None: exactly the delay.
    None,
}

/// The wait before each retry.
#[derive(Clone)]
pub enum Backoff {
    /// `initial * multiplier^(n-1)`, capped at `max`, then jittered.
    Exponential {
        /// The delay before the first retry, before jitter.
        initial: Duration,
        /// The growth factor, at least 1.
        multiplier: f64,
        /// The cap, before jitter.
        max: Duration,
        /// The jitter.
        jitter: Jitter,
    },
    /// The same delay before every retry.
    Fixed(Duration),
    /// The listed delays in order; the last one repeats.
    Schedule(Arc<[Duration]>),
    /// A function of the retry number (1 for the first retry).
    Custom(Arc<dyn Fn(u32) -> Duration + Send + Sync>),
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backoff::Exponential {
                initial,
                multiplier,
                max,
                jitter,
            } => f
                .debug_struct("Exponential")
                .field("initial", initial)
                .field("multiplier", multiplier)
                .field("max", max)
                .field("jitter", jitter)
                .finish(),
            Backoff::Fixed(d) => f.debug_tuple("Fixed").field(d).finish(),
            Backoff::Schedule(s) => f.debug_tuple("Schedule").field(s).finish(),
            Backoff::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Backoff {
    /// Exponential backoff with full jitter.
    pub fn exponential(initial: Duration, multiplier: f64, max: Duration) -> Self {
        Backoff::Exponential {
            initial,
            multiplier,
            max,
            jitter: Jitter::Full,
        }
    }

    /// The largest delay retry `n` (from 1) can wait.
    pub fn max_delay(&self, n: u32) -> Duration {
        match self {
            Backoff::Exponential {
                initial,
                multiplier,
                max,
                ..
            } => {
                let grown =
                    initial.as_secs_f64() * multiplier.powi(n.saturating_sub(1).min(1024) as i32);
                Duration::from_secs_f64(grown.min(max.as_secs_f64()))
            }
            Backoff::Fixed(d) => *d,
            Backoff::Schedule(s) => {
                let i = (n.max(1) as usize - 1).min(s.len().saturating_sub(1));
                s.get(i).copied().unwrap_or_default()
            }
            Backoff::Custom(f) => f(n),
        }
    }

    /// The smallest delay retry `n` (from 1) can wait.
    pub fn min_delay(&self, n: u32) -> Duration {
        match self {
            Backoff::Exponential { jitter, .. } => match jitter {
                Jitter::Full => Duration::ZERO,
                Jitter::Equal => self.max_delay(n) / 2,
                Jitter::None => self.max_delay(n),
            },
            _ => self.max_delay(n),
        }
    }

    /// The delay before retry `n` (from 1), jitter drawn.
    pub fn delay(&self, n: u32) -> Duration {
        let top = self.max_delay(n);
        match self {
            Backoff::Exponential { jitter, .. } => match jitter {
                Jitter::Full => top.mul_f64(rng::unit()),
                Jitter::Equal => top / 2 + (top / 2).mul_f64(rng::unit()),
                Jitter::None => top,
            },
            _ => top,
        }
    }
}

/// The backoff, as configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum BackoffConfig {
    /// See [`Backoff::Exponential`].
    Exponential {
        /// Milliseconds before the first retry.
        initial_ms: u64,
        /// Growth factor, at least 1.
        multiplier: f64,
        /// Cap in milliseconds.
        max_ms: u64,
        /// The jitter.
        #[serde(default)]
        jitter: Jitter,
    },
    /// See [`Backoff::Fixed`].
    Fixed {
        /// Milliseconds between attempts.
        delay_ms: u64,
    },
    /// See [`Backoff::Schedule`].
    Schedule {
        /// Milliseconds before each retry; the last repeats.
        delays_ms: Vec<u64>,
    },
}

/// The retry budget, as tower's `TpsBudget` takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// How long a deposit counts, in seconds (1 to 60).
    pub ttl_secs: u64,
    /// Retries always allowed per second, whatever the traffic.
    pub min_per_sec: u32,
    /// Retries allowed as a share of calls (0.2 = 20%), at most 1000.
    pub retry_ratio: f32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 10,
            min_per_sec: 10,
            retry_ratio: 0.2,
        }
    }
}

/// Everything that shapes a retry policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Stop retrying once this much time has passed since the first attempt.
    pub max_elapsed_ms: Option<u64>,
    /// The wait between attempts.
    pub backoff: BackoffConfig,
    /// Keep retries under a share of calls; `None` for no budget.
    pub budget: Option<BudgetConfig>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_elapsed_ms: None,
            backoff: BackoffConfig::Exponential {
                initial_ms: 50,
                multiplier: 2.0,
                max_ms: 2_000,
                jitter: Jitter::Full,
            },
            budget: Some(BudgetConfig::default()),
        }
    }
}

impl RetryConfig {
    /// Rejects nonsense, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_positive("max_attempts", self.max_attempts.into())?;
        if self.max_elapsed_ms == Some(0) {
            return Err(ConfigError::new("max_elapsed_ms", "must be at least 1"));
        }
        match &self.backoff {
            BackoffConfig::Exponential {
                initial_ms,
                multiplier,
                max_ms,
                ..
            } => {
                check_positive("backoff.initial_ms", *initial_ms)?;
                if !(multiplier.is_finite() && *multiplier >= 1.0) {
                    return Err(ConfigError::new(
                        "backoff.multiplier",
                        format!("{multiplier} must be a finite number of at least 1"),
                    ));
                }
                if max_ms < initial_ms {
                    return Err(ConfigError::new(
                        "backoff.max_ms",
                        "must not be below backoff.initial_ms",
                    ));
                }
            }
            BackoffConfig::Fixed { .. } => {}
            BackoffConfig::Schedule { delays_ms } => {
                if delays_ms.is_empty() {
                    return Err(ConfigError::new("backoff.delays_ms", "must not be empty"));
                }
            }
        }
        if let Some(budget) = &self.budget {
            if !(1..=60).contains(&budget.ttl_secs) {
                return Err(ConfigError::new(
                    "budget.ttl_secs",
                    format!("{} is not between 1 and 60", budget.ttl_secs),
                ));
            }
            if budget.min_per_sec >= i32::MAX as u32 {
                return Err(ConfigError::new("budget.min_per_sec", "is too large"));
            }
            if !(budget.retry_ratio.is_finite() && (0.0..=1000.0).contains(&budget.retry_ratio)) {
                return Err(ConfigError::new(
                    "budget.retry_ratio",
                    format!("{} is not between 0 and 1000", budget.retry_ratio),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn backoff(&self) -> Backoff {
        match &self.backoff {
            BackoffConfig::Exponential {
                initial_ms,
                multiplier,
                max_ms,
                jitter,
            } => Backoff::Exponential {
                initial: Duration::from_millis(*initial_ms),
                multiplier: *multiplier,
                max: Duration::from_millis(*max_ms),
                jitter: *jitter,
            },
            BackoffConfig::Fixed { delay_ms } => Backoff::Fixed(Duration::from_millis(*delay_ms)),
            BackoffConfig::Schedule { delays_ms } => Backoff::Schedule(
                delays_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
            ),
        }
    }
}
