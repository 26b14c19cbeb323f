//! The node through its public API: the call path, services, health and healing,
//! metrics read back from the exposition, runtime configuration.
#![allow(clippy::unwrap_used)]

mod breakers;
mod callpath;
mod config;
mod failover;
mod healing;
mod hedging;
mod modules;
mod ownership;
mod support;
mod tap;
