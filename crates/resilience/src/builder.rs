//! One [`tower::ServiceBuilder`] method per layer.

use std::time::Duration;

use tower::ServiceBuilder;
use tower::layer::util::Stack;

use crate::{
    Bulkhead, BulkheadLayer, CircuitBreaker, CircuitBreakerLayer, DeadlineLayer, Fallback,
    FallbackLayer, Hedge, HedgeLayer, RateLimitLayer, RateLimiter, Retry, RetryLayer,
};

/// Adds the resilience layers to [`ServiceBuilder`]; the first added is the outermost.
pub trait ResilienceBuilderExt<L> {
    /// Guards calls with `breaker` (shared: clones report to the same breaker).
    fn circuit_breaker(
        self,
        breaker: &CircuitBreaker,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>>;
    /// Retries calls with `policy`.
    fn retry_with(self, policy: Retry) -> ServiceBuilder<Stack<RetryLayer, L>>;
    /// Gives each call a deadline `timeout` from when it is made.
    fn deadline(self, timeout: Duration) -> ServiceBuilder<Stack<DeadlineLayer, L>>;
    /// Caps concurrent calls.
    fn bulkhead(self, bulkhead: &Bulkhead) -> ServiceBuilder<Stack<BulkheadLayer, L>>;
    /// Limits the call rate.
    fn rate_limiter(self, limiter: &RateLimiter) -> ServiceBuilder<Stack<RateLimitLayer, L>>;
    /// Answers chosen errors with a fallback.
    fn fallback<T>(self, fallback: Fallback<T>) -> ServiceBuilder<Stack<FallbackLayer<T>, L>>;
    /// Hedges idempotent calls.
    fn hedge<Req>(self, hedge: Hedge<Req>) -> ServiceBuilder<Stack<HedgeLayer<Req>, L>>;
}

impl<L> ResilienceBuilderExt<L> for ServiceBuilder<L> {
    fn circuit_breaker(
        self,
        breaker: &CircuitBreaker,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>> {
        self.layer(CircuitBreakerLayer::new(breaker.clone()))
    }
    fn retry_with(self, policy: Retry) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(RetryLayer::new(policy))
    }
    fn deadline(self, timeout: Duration) -> ServiceBuilder<Stack<DeadlineLayer, L>> {
        self.layer(DeadlineLayer::new(timeout))
    }
    fn bulkhead(self, bulkhead: &Bulkhead) -> ServiceBuilder<Stack<BulkheadLayer, L>> {
        self.layer(BulkheadLayer::new(bulkhead.clone()))
    }
    fn rate_limiter(self, limiter: &RateLimiter) -> ServiceBuilder<Stack<RateLimitLayer, L>> {
        self.layer(RateLimitLayer::new(limiter.clone()))
    }
    fn fallback<T>(self, fallback: Fallback<T>) -> ServiceBuilder<Stack<FallbackLayer<T>, L>> {
        self.layer(FallbackLayer::new(fallback))
    }
    fn hedge<Req>(self, hedge: Hedge<Req>) -> ServiceBuilder<Stack<HedgeLayer<Req>, L>> {
        self.layer(HedgeLayer::new(hedge))
    }
}
