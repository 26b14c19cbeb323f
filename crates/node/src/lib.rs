//! A running Plexus node: services, the call path, configuration and metrics.

pub mod error;
pub mod metrics;
pub mod policy;
pub mod schema;

mod callpath;

pub use callpath::Transport;
pub use error::{CallError, codes};
