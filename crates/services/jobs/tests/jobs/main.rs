//! The jobs family through its public API: the conformance suite on SQLite (a
//! fresh file per test), and the family opening the `jobs` service on a node.
#![allow(clippy::unwrap_used)]

mod family;
mod sqlite;
