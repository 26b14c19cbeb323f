//! Why the gateway could not start or stopped with an error.

use std::net::SocketAddr;

use crate::config::ConfigError;

/// Everything that can stop the gateway from serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The listener failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    /// The server task ended abnormally.
    #[error("the server task failed: {0}")]
    Task(String),
}
