#![allow(clippy::unwrap_used)]
//! The durability tests: the outbox and its relay, replay, the audit trail,
//! configuration history, connection loss and a SIGKILLed writer — each on SQLite
//! (a temp file) and PostgreSQL (the server at `PLEXUS_TEST_POSTGRES_URL`, a fresh
//! schema per test). PostgreSQL being unreachable fails the tests.

mod audit;
mod connection;
mod crash;
mod history;
mod loss;
mod outbox;
mod support;
