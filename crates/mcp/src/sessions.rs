//! [`Sessions`]: rmcp's in-memory session manager with a cap on live sessions and
//! an event for each session that opens, opens its stream, or closes.

use std::sync::Arc;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};

use crate::McpEvent;
use crate::server::Shared;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionsError {
    #[error("{max} sessions are live, the most allowed (max_sessions)")]
    Full { max: usize },
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

pub(crate) struct Sessions {
    inner: LocalSessionManager,
    shared: Arc<Shared>,
}

impl Sessions {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(shared.config.session_ttl());
        inner.session_config.channel_capacity = shared.config.session_queue;
        Self { inner, shared }
    }

    /// How many sessions are live.
    pub(crate) async fn count(&self) -> usize {
        self.inner.sessions.read().await.len()
    }
}

impl SessionManager for Sessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let max = self.shared.config.max_sessions;
        if self.count().await >= max {
            return Err(SessionsError::Full { max });
        }
        let (id, transport) = self.inner.create_session().await?;
        self.shared
            .emit(McpEvent::SessionOpened { id: id.to_string() });
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let known = self.inner.has_session(id).await?;
        self.inner.close_session(id).await?;
        if known {
            self.shared
                .emit(McpEvent::SessionClosed { id: id.to_string() });
        }
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_standalone_stream(id).await?;
        self.shared
            .emit(McpEvent::StreamOpened { id: id.to_string() });
        Ok(stream)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }
}
