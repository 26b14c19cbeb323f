//! The configuration store through its public API: one test binary, a module per area.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

mod changes;
mod concurrency;
mod loading;
mod scenario;
mod sections;
mod support;
mod versions;
mod watch;
