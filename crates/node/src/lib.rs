//! A running Plexus node: services, the call path, configuration and metrics.

pub mod error;
pub mod metrics;
pub mod policy;
pub mod schema;

mod admin;
mod callpath;
mod node;

pub use admin::NODE_SERVICE;
pub use callpath::Transport;
pub use error::{CallError, codes};
pub use node::{MAX_METHOD_LEN, Node, NodeBuilder, NodeError, NodeShutdown, ServiceOptions};
