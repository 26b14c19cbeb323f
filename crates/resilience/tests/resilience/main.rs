//! Integration tests of plexus-resilience through its public API, one module per
//! area. Time-driven behaviour runs under paused tokio time.

mod balance;
mod breaker;
mod breaker_props;
mod bulkhead;
mod config;
mod deadline;
mod fallback;
mod hedge;
mod rate_limit;
mod retry;
mod stack;
mod support;
