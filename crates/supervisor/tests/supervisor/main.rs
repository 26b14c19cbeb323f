//! Integration tests of `plexus-supervisor`, driven through its public API.
#![allow(clippy::unwrap_used)]

mod escalation;
mod events;
mod intensity;
mod process;
mod restart;
mod shutdown;
mod strategy;
mod support;
