//! Fault tolerance for every call Plexus makes, as composable [`tower`] layers.
//!
//! Each piece is a [`tower::Layer`] and also a plain async wrapper around any future,
//! is configured from a serde struct whose `validate()` names the field at fault, and
//! exposes its metrics:
//!
//! | piece | type | rejection |
//! | --- | --- | --- |
//! | circuit breaker | [`CircuitBreaker`] | [`CircuitOpen`] |
//! | retry | [`Retry`] | (the last attempt's error) |
//! | deadline | [`Deadline`], [`deadline::within`] | [`DeadlineExceeded`] |
//! | bulkhead | [`Bulkhead`] | [`BulkheadFull`] |
//! | rate limit | [`RateLimiter`] | [`RateLimited`] |
//! | load balancer | [`Balancer`] | [`NoInstanceAvailable`] |
//! | fallback | [`Fallback`] | (the fallback's own error) |
//! | hedging | [`Hedge`] | |
//!
//! Errors are [`BoxError`], as in tower: downcast to the typed rejection.
//! [`ResilienceBuilderExt`] adds one method per layer to [`tower::ServiceBuilder`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use plexus_resilience::{Bulkhead, CircuitBreaker, ResilienceBuilderExt, Retry};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let breaker = CircuitBreaker::builder("echo").build().unwrap();
//! let service = ServiceBuilder::new()
//!     // retry idempotent calls, inside the budget, before the deadline
//!     .retry_with(Retry::builder().build().unwrap())
//!     // each attempt must end within 100 ms
//!     .deadline(Duration::from_millis(100))
//!     // stop calling a failing dependency
//!     .circuit_breaker(&breaker)
//!     // at most 10 calls at once
//!     .bulkhead(&Bulkhead::builder("echo").max_concurrent(10).build().unwrap())
//!     .service(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) }));
//! assert_eq!(service.oneshot(21).await.unwrap(), 42);
//! # }
//! ```

pub mod balance;
pub mod breaker;
pub mod bulkhead;
pub mod deadline;
pub mod fallback;
pub mod hedge;
pub mod rate_limit;
pub mod retry;

mod builder;
mod clock;
mod error;
mod rng;

pub use balance::{Balancer, BalancerConfig, Instance, NoInstanceAvailable, Strategy};
pub use breaker::{
    BreakerBuilder, BreakerConfig, BreakerMetrics, CircuitBreaker, CircuitBreakerLayer,
    CircuitBreakerService, CircuitOpen, ErrorClass, Permit, State, StateTransition,
    TransitionReason,
};
pub use builder::ResilienceBuilderExt;
pub use bulkhead::{Bulkhead, BulkheadConfig, BulkheadFull, BulkheadLayer, BulkheadMetrics};
pub use deadline::{Deadline, DeadlineConfig, DeadlineExceeded, DeadlineLayer};
pub use error::{BoxError, ConfigError};
pub use fallback::{Fallback, FallbackLayer};
pub use hedge::{Hedge, HedgeConfig, HedgeLayer, HedgeService};
pub use rate_limit::{RateLimitConfig, RateLimitLayer, RateLimited, RateLimiter};
pub use retry::{Backoff, BudgetConfig, Jitter, Retry, RetryConfig, RetryLayer, RetryMetrics};
