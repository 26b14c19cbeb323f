//! plexus-mcp through its public API: real HTTP on loopback, stdio over pipes, and
//! the official Python and TypeScript SDKs against the live server.
#![allow(clippy::unwrap_used)]

mod support;

mod clients;
mod config;
mod errors;
mod list_changed;
mod sessions;
mod stateless;
mod stdio;
mod tools;
