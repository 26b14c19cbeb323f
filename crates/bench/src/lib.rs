//! Benchmarks behind `plexus bench PART`.
//!
//! Every benchmark follows one convention (see the design's "Benchmarks" section): it
//! measures Plexus and the fastest bare alternative for the same work (the ceiling)
//! in the same run, on the same machine, with the same workload, and reports
//! `ratio = value / ceiling_value` (inverted for lower-is-better figures). A
//! [`Report`] prints as a table for people or as one JSON object for scripts.
//!
//! Parts: [`bus`], [`resilience`], [`callpath`], [`store`], [`gateway`], [`redis`],
//! [`script`], [`inference`], [`jobs`].

pub mod bus;
pub mod callpath;
pub mod cluster;
pub mod dsl;
pub mod gateway;
pub mod inference;
pub mod jobs;
pub mod mcp;
pub mod platform;
pub mod redis;
pub mod resilience;
pub mod script;
pub mod store;
mod support;

pub use support::{
    BenchError, Options, Progress, Report, Result as BenchResult, Unit, format_value,
};
