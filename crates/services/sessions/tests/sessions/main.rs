//! The sessions family through its public API: the conformance suite on every
//! backend (in process under paused time; on the Redis at `PLEXUS_TEST_REDIS_URL`,
//! each test under a key prefix of its own), what only some backends do (the
//! memory backend's count bound; expiry announced once by two sweepers sharing
//! Redis), faults against a private `redis-server`, and the `session` service on a
//! node.
#![allow(clippy::unwrap_used)]

mod faults;
mod memory;
mod redis;
mod service;
mod sqlite;
mod support;
