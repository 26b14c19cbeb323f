//! The locks family through its public API: the conformance suite on every backend
//! (in process under paused time; on the Redis at `PLEXUS_TEST_REDIS_URL` under a
//! key prefix of its own; on the PostgreSQL at `PLEXUS_TEST_POSTGRES_URL`), fenced
//! DataStore writes refusing a holder past its lease (SQLite and PostgreSQL),
//! faults against a private `redis-server`, and the `lock` service on a node.
#![allow(clippy::unwrap_used)]

mod faults;
mod fencing;
mod memory;
mod postgres;
mod redis;
mod service;
mod support;
