//! The InferenceEngine through its public interfaces, against fake providers (real
//! HTTP servers on loopback speaking each wire format).

#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod engine;
mod golden;
mod http;
mod service;
mod support;
