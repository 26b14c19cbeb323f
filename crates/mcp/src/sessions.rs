//! [`Sessions`]: rmcp's in-memory session manager with a cap on live sessions and
//! an event for each session that opens, opens its stream, or closes; and which
//! client address opened each session, for the cap per peer and the deadline of
//! `notifications/initialized`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

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
    /// The client address of each session that has one, and whether the client
    /// has sent `notifications/initialized`.
    peers: parking_lot::Mutex<HashMap<SessionId, (IpAddr, bool)>>,
}

impl Sessions {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(shared.config.session_ttl());
        inner.session_config.channel_capacity = shared.config.session_queue;
        Self {
            inner,
            shared,
            peers: parking_lot::Mutex::default(),
        }
    }

    /// How many live sessions `peer` holds (forgetting the ones that ended).
    pub(crate) async fn held_by(&self, peer: IpAddr) -> usize {
        let live = self.inner.sessions.read().await;
        let mut peers = self.peers.lock();
        peers.retain(|id, _| live.contains_key(id));
        peers.values().filter(|(ip, _)| *ip == peer).count()
    }

    /// Notes that `peer` opened session `id`; it is closed unless its client sends
    /// `notifications/initialized` within `init_timeout_ms`.
    pub(crate) fn opened_by(self: &Arc<Self>, id: SessionId, peer: IpAddr) {
        self.peers.lock().insert(id.clone(), (peer, false));
        let sessions = self.clone();
        let timeout = Duration::from_millis(self.shared.config.init_timeout_ms);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let pending = sessions
                .peers
                .lock()
                .get(&id)
                .is_some_and(|(_, initialized)| !initialized);
            if pending {
                tracing::debug!(session = %id, %peer, "closed: never initialized");
                sessions.peers.lock().remove(&id);
                let _ = sessions.close_session(&id).await;
                sessions
                    .shared
                    .emit(McpEvent::InitTimedOut { id: id.to_string() });
            }
        });
    }

    /// Notes that session `id`'s client has completed initialization.
    pub(crate) fn initialized(&self, id: &str) {
        if let Some((_, initialized)) = self.peers.lock().get_mut(id) {
            *initialized = true;
        }
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
