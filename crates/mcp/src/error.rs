//! [`McpError`]: why the MCP server could not be built or could not serve.

/// Why an MCP server could not be built, or why stdio serving stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// A configuration field is out of range.
    #[error("invalid MCP configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The field, as named in [`crate::McpConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The server was built outside a tokio runtime; it spawns its registry watcher
    /// on the current one.
    #[error("the MCP server must be built inside a tokio runtime")]
    NoRuntime,
    /// The stdio client did not complete the MCP handshake.
    #[error("MCP handshake over stdio failed: {0}")]
    Handshake(String),
    /// Reading or writing the stdio transport failed.
    #[error("MCP stdio transport: {0}")]
    Io(#[from] std::io::Error),
}
