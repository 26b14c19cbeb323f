//! stdio: one MCP connection over a byte stream, newline-delimited JSON-RPC, for
//! `plexus mcp` (an MCP client launches it and talks over its stdin/stdout).

use plexus_node::Node;
use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::handler::Tools;
use crate::{McpConfig, McpError, McpServer};

impl McpServer {
    /// Serves one MCP connection over `read`/`write` until the client closes it.
    ///
    /// Both lifecycles are served: `initialize` (2025-11-25; the connection then gets
    /// `notifications/tools/list_changed` as services come and go) and per-request
    /// metadata (2026-07-28; `server/discover`, and list changes on
    /// `subscriptions/listen`). A line longer than `max_body_bytes` is dropped and
    /// the connection stays open.
    pub async fn serve_io<R, W>(&self, read: R, write: W) -> Result<(), McpError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let transport = AsyncRwTransport::new_server(read, write)
            .with_max_line_length(self.shared.config.max_body_bytes);
        let running = Tools::new(self.shared.clone())
            .serve(transport)
            .await
            .map_err(|e| McpError::Handshake(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| McpError::Handshake(format!("the connection task failed: {e}")))?;
        Ok(())
    }
}

/// Serves `node` as an MCP server over this process's stdin and stdout until the
/// client closes stdin (`plexus mcp`). Nothing else may write to stdout meanwhile.
pub async fn serve_stdio(node: Node, config: McpConfig) -> Result<(), McpError> {
    let server = McpServer::new(node, config)?;
    let (read, write) = rmcp::transport::stdio();
    server.serve_io(read, write).await
}
