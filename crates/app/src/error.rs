//! [`AppError`]: why a node could not be assembled, started or served.

use plexus_config::ConfigError;
use plexus_gateway::GatewayError;
use plexus_mcp::McpError;
use plexus_node::NodeError;
use plexus_node::family::FamilyError;

/// Why a node could not be assembled, started or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The configuration could not be read or was refused.
    #[error("configuration")]
    Config(#[from] ConfigError),
    /// A key of the configuration is unknown, of the wrong type, or out of range.
    #[error("configuration: `{key}`: {reason}")]
    Invalid {
        /// The key's dotted path.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The gateway's configuration was refused or it could not serve.
    #[error("gateway")]
    Gateway(#[from] GatewayError),
    /// The MCP server's configuration was refused or its transport failed.
    #[error("mcp")]
    Mcp(#[from] McpError),
    /// The node could not start.
    #[error("starting the node")]
    Node(#[from] NodeError),
    /// A service family could not open its backends (a database, a server).
    #[error("{family}")]
    Family {
        /// The family's section (`store`).
        family: &'static str,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Signal handlers could not be installed, or the runtime could not start.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl AppError {
    /// Whether the error is in the configuration (the CLI's exit status 2) rather
    /// than in running it (1).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            AppError::Config(_)
                | AppError::Invalid { .. }
                | AppError::Gateway(GatewayError::Config(_))
                | AppError::Mcp(McpError::InvalidConfig { .. })
                | AppError::Node(NodeError::Config(_) | NodeError::Policy(_))
        )
    }
}

impl From<FamilyError> for AppError {
    fn from(e: FamilyError) -> Self {
        match e {
            FamilyError::Invalid { key, reason } => AppError::Invalid { key, reason },
            FamilyError::Open { family, source } => AppError::Family { family, source },
            other => AppError::Family {
                family: "family",
                source: Box::new(other),
            },
        }
    }
}
