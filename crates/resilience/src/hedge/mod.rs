//! Hedging: for idempotent calls, send a second copy when the first is slower than
//! a latency percentile of recent calls (or a fixed delay), and take whichever
//! answers first.
//!
//! The layer is `Clone` (it can sit in a cloned tower stack such as a
//! `BoxCloneSyncService`), and every clone shares one latency record, so the
//! percentile is that of all the calls made through it. The copy is made through a
//! clone of the inner service, polled in the caller's task: a balancer below sees it
//! as a second request of the same call (and can send it elsewhere).
//!
//! When the copy wins, the slower request is cancelled by default, as tower's hedge
//! does; [`Hedge::finish_slower`] lets it run to its end in the background instead,
//! so what sits below it (a breaker counting a hung instance's timeouts) still sees
//! its outcome. Only use that when the inner service bounds its own time.

mod latency;
mod layer;
mod service;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use layer::HedgeLayer;
pub use service::HedgeService;

use crate::ConfigError;
use latency::Latencies;

/// When to hedge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HedgeConfig {
    /// Hedge a call once it has taken longer than this percentile of recent calls,
    /// in `(0, 100)`.
    pub latency_percentile: f64,
    /// The calls the latency record must hold before hedging starts.
    pub min_data_points: u64,
    /// The latency record covers the last full period of this many milliseconds.
    pub period_ms: u64,
    /// A fixed delay instead of the percentile: hedge every idempotent call still
    /// unanswered after this many milliseconds (from the first call, no record
    /// needed).
    pub delay_ms: Option<u64>,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            latency_percentile: 95.0,
            min_data_points: 20,
            period_ms: 10_000,
            delay_ms: None,
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
        crate::error::check_positive("period_ms", self.period_ms)?;
        if let Some(delay) = self.delay_ms {
            crate::error::check_positive("delay_ms", delay)?;
        }
        Ok(())
    }
}

type Predicate<Req> = Arc<dyn Fn(&Req) -> bool + Send + Sync>;
type OnHedge = Arc<dyn Fn() + Send + Sync>;

/// A hedging policy: see the [module](self). Clones share the latency record.
pub struct Hedge<Req> {
    config: Arc<HedgeConfig>,
    idempotent: Predicate<Req>,
    latencies: Arc<Latencies>,
    on_hedge: Option<OnHedge>,
    finish_slower: bool,
}

impl<Req> Clone for Hedge<Req> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            idempotent: self.idempotent.clone(),
            latencies: self.latencies.clone(),
            on_hedge: self.on_hedge.clone(),
            finish_slower: self.finish_slower,
        }
    }
}

impl<Req> fmt::Debug for Hedge<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("config", &self.config)
            .field("finish_slower", &self.finish_slower)
            .finish()
    }
}

impl<Req> Hedge<Req> {
    /// Hedges the requests for which `idempotent` holds, after validating `config`.
    pub fn new(
        config: HedgeConfig,
        idempotent: impl Fn(&Req) -> bool + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let latencies = Latencies::new(Duration::from_millis(config.period_ms));
        Ok(Self {
            config: Arc::new(config),
            idempotent: Arc::new(idempotent),
            latencies: Arc::new(latencies),
            on_hedge: None,
            finish_slower: false,
        })
    }

    /// Calls `f` each time a copy is sent (to count hedges).
    pub fn on_hedge(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_hedge = Some(Arc::new(f));
        self
    }

    /// Lets the slower request run to its end in the background when the copy wins,
    /// instead of cancelling it (see the [module](self)).
    pub fn finish_slower(mut self, finish: bool) -> Self {
        self.finish_slower = finish;
        self
    }

    /// Wraps `service` (it must be `Clone`: the copy goes through a clone).
    pub fn layer<S>(&self, service: S) -> HedgeService<S, Req> {
        HedgeService::new(service, self.clone())
    }

    /// How long to wait before sending a copy of `req`, or `None` to send none.
    fn delay(&self, req: &Req) -> Option<Duration> {
        if !(self.idempotent)(req) {
            return None;
        }
        match self.config.delay_ms {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => self
                .latencies
                .percentile(self.config.latency_percentile, self.config.min_data_points),
        }
    }
}
