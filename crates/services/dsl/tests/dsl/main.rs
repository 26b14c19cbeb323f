//! The command language through its public API: reading, printing, checking; and
//! the `dsl` service on a node.

#![allow(clippy::unwrap_used, missing_docs)]

mod language;
