//! The registry, health checks, healing and system health through their public API:
//! one test binary, a module per area. Everything time-driven runs under paused time.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

mod conformance;
mod discovery;
mod events;
mod healing;
mod health;
mod recovery;
mod stale;
mod support;
mod system;
