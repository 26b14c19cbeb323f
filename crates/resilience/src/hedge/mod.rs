//! Hedging: for idempotent calls, send a second copy when the first is slower than
//! a latency percentile, and take whichever answers first.
//!
//! Built on tower's `hedge` middleware (a rotating latency histogram at millisecond
//! resolution); Plexus adds the configuration and an idempotency predicate so only
//! calls that are safe to repeat are hedged.

mod layer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use layer::HedgeLayer;

use crate::ConfigError;

/// When to hedge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HedgeConfig {
    /// Hedge a call once it has taken longer than this percentile of recent calls,
    /// in `(0, 100)`.
    pub latency_percentile: f64,
    /// The calls the histogram must hold before hedging starts.
    pub min_data_points: u64,
    /// The histogram forgets latencies older than about this, in milliseconds.
    pub period_ms: u64,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            latency_percentile: 95.0,
            min_data_points: 20,
            period_ms: 10_000,
        }
    }
}

impl HedgeConfig {
    /// Rejects nonsense, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = self.latency_percentile;
        if !(p.is_finite() && p > 0.0 && p < 100.0) {
            return Err(ConfigError::new(
                "latency_percentile",
                format!("{p} is not a percentile in (0, 100)"),
            ));
        }
        crate::error::check_positive("min_data_points", self.min_data_points)?;
        crate::error::check_positive("period_ms", self.period_ms)
    }
}

/// Which requests may be sent twice.
pub struct Idempotent<Req> {
    predicate: Arc<dyn Fn(&Req) -> bool + Send + Sync>,
}

impl<Req> Clone for Idempotent<Req> {
    fn clone(&self) -> Self {
        Self {
            predicate: self.predicate.clone(),
        }
    }
}

impl<Req> fmt::Debug for Idempotent<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Idempotent(..)")
    }
}

impl<Req: Clone> tower::hedge::Policy<Req> for Idempotent<Req> {
    fn clone_request(&self, req: &Req) -> Option<Req> {
        (self.predicate)(req).then(|| req.clone())
    }

    fn can_retry(&self, req: &Req) -> bool {
        (self.predicate)(req)
    }
}

/// A hedging policy: see the [module](self).
pub struct Hedge<Req> {
    config: HedgeConfig,
    idempotent: Idempotent<Req>,
}

impl<Req> Clone for Hedge<Req> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            idempotent: self.idempotent.clone(),
        }
    }
}

impl<Req> fmt::Debug for Hedge<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("config", &self.config)
            .finish()
    }
}

impl<Req: Clone> Hedge<Req> {
    /// Hedges the requests for which `idempotent` holds, after validating `config`.
    pub fn new(
        config: HedgeConfig,
        idempotent: impl Fn(&Req) -> bool + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            idempotent: Idempotent {
                predicate: Arc::new(idempotent),
            },
        })
    }

    /// Wraps `service` (it must be `Clone`: the hedge calls a copy).
    pub fn layer<S>(&self, service: S) -> tower::hedge::Hedge<S, Idempotent<Req>>
    where
        S: tower::Service<Req> + Clone,
        S::Error: Into<crate::BoxError>,
    {
        tower::hedge::Hedge::new(
            service,
            self.idempotent.clone(),
            self.config.min_data_points,
            (self.config.latency_percentile / 100.0) as f32,
            Duration::from_millis(self.config.period_ms),
        )
    }
}
