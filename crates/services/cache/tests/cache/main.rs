//! The cache family through its public API: the conformance suite on every backend
//! (in process under paused time; on the Redis at `PLEXUS_TEST_REDIS_URL`, plain and
//! two-tier, each test under a key prefix of its own), what only some backends do
//! (the byte cap, coherence of local tiers, the loader lease across clients),
//! faults against a private `redis-server`, and the `cache` service on a node.
#![allow(clippy::unwrap_used)]

mod faults;
mod memory;
mod redis;
mod service;
mod support;
