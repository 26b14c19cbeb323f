//! The bus through its public API: one test binary, a module per area.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

mod faults;
mod handled;
mod lanes;
mod overflow;
mod request;
mod routing;
mod shutdown;
mod support;
