#![allow(clippy::unwrap_used)]
//! The store's integration tests: one binary, a module per area. The conformance
//! suite runs unchanged against SQLite (a temp file) and PostgreSQL (the server at
//! `PLEXUS_TEST_POSTGRES_URL`, each test in a fresh schema); PostgreSQL being
//! unreachable fails the tests.

mod budget;
mod concurrency;
mod conformance;
mod fencing;
mod invalid;
mod observability;
mod support;
