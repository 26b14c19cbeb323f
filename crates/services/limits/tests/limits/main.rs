//! The limits family through its public API: the conformance suite on every
//! backend (in process under paused time; on the Redis at `PLEXUS_TEST_REDIS_URL`,
//! each test under a key prefix of its own), what only some backends do (the key
//! cap in process, one limit shared by several clients of one Redis, keys that
//! expire), faults against a private `redis-server`, and the `ratelimit` service on
//! a node.
#![allow(clippy::unwrap_used)]

mod callpath;
mod faults;
mod memory;
mod redis;
mod service;
