//! The jobs family through its public API: the conformance suite on SQLite (a
//! fresh file per test) and on PostgreSQL (the server at
//! `PLEXUS_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`, a
//! fresh schema per test, dropped after) and on Redis (the server at
//! `PLEXUS_TEST_REDIS_URL`, a fresh key prefix per test; and a private
//! `redis-server` killed and restarted), and the family opening the `jobs` service
//! on a node.
#![allow(clippy::unwrap_used)]

mod family;
mod postgres;
mod redis;
mod sqlite;

/// A name no other test run uses (process id, time, counter).
fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{nanos:x}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
