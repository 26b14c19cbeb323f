//! A running Plexus node: services, the call path, configuration and metrics.

pub mod error;
pub mod family;
pub mod metrics;
pub mod policy;
pub mod schema;

mod admin;
pub mod audit;
mod callpath;
pub mod cluster;
pub mod durable;
mod node;
pub mod own;
pub mod shared_limit;
pub mod tap;

pub use admin::{BreakerView, NODE_SERVICE};
pub use audit::{CallObserver, CallRecord};
pub use callpath::Transport;
pub use cluster::ClusterLink;
pub use durable::{DurableLog, DurableReplay, DurableSink, Handoff};
pub use error::{CallError, ServiceCode, codes};
pub use node::{
    MAX_METHOD_LEN, Node, NodeBuilder, NodeError, NodeShutdown, ServiceOptions, WeakNode,
};
pub use tap::{CallEvent, CallTap, TapRecv};
