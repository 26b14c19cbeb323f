//! The `script` service's tests, one binary: escapes and exhaustion, the service
//! through a real node, and running off the async workers.

#![allow(clippy::unwrap_used)]

mod concurrency;
mod sandbox;
mod service;
mod support;
