#![allow(clippy::unwrap_used)]
//! The DataStore family's integration tests: one binary, a module per area. The
//! `datastore` and `audit` services through `Service::call`, under connection loss,
//! and in the case-management seed scenario, each on SQLite (a temp file) and
//! PostgreSQL (the server at `PLEXUS_TEST_POSTGRES_URL`, each test in a fresh
//! schema); PostgreSQL being unreachable fails the tests.

mod audit;
mod cases;
mod connection;
mod service;
mod support;
