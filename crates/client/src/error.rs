//! [`ClientError`]: everything a call to a node can end in, with what to do about it.

use std::time::Duration;

use serde_json::Value;

/// The JSON-RPC code a node answers when a request carries no token or an unknown
/// one ([`codes::UNAUTHORIZED`](crate::codes::UNAUTHORIZED), kept under this name
/// for existing callers).
pub const UNAUTHORIZED_CODE: i64 = crate::codes::UNAUTHORIZED;

/// Why a request to a node failed.
///
/// The variants sort failures the way a caller acts on them: the node is not there
/// ([`NotRunning`](Self::NotRunning)), it does not accept our token
/// ([`Unauthorized`](Self::Unauthorized)), it answered with an error of the method
/// ([`Rpc`](Self::Rpc), kept exactly as the node sent it), or something between us
/// broke (the rest).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing accepts connections at the node's address.
    #[error(
        "no Plexus node is running at {url}: start one with `plexus serve`, or point --url (PLEXUS_URL) at a running node"
    )]
    NotRunning {
        /// The address tried.
        url: String,
    },
    /// The node refused the request's token (HTTP 401, JSON-RPC -32001).
    #[error(
        "the node at {url} refused the request: {message}; set PLEXUS_TOKEN (or --token) to a token it accepts"
    )]
    Unauthorized {
        /// The node's address.
        url: String,
        /// What the node said.
        message: String,
    },
    /// The node answered with a JSON-RPC error: the method failed, the params were
    /// wrong, the caller lacks a scope, the service is unavailable… Code, message
    /// and data are the node's own.
    #[error("{message} (JSON-RPC error {code})")]
    Rpc {
        /// The JSON-RPC error code ([`crate::codes`]).
        code: i64,
        /// The node's message.
        message: String,
        /// The node's structured detail (the field at fault, a hint, retry-after…).
        data: Option<Value>,
    },
    /// The address is not an `http://` URL the client can use.
    #[error("invalid node URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node did not answer within the client's timeout.
    #[error("the node at {url} did not answer within {after:?}")]
    Timeout {
        /// The node's address.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The HTTP exchange failed for another reason (connection reset, bad HTTP).
    #[error("talking to the node at {url}: {source}")]
    Http {
        /// The node's address.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The node answered with an HTTP status the client did not expect and no
    /// JSON-RPC error in the body.
    #[error("the node at {url} answered HTTP {status}: {body}")]
    Status {
        /// The node's address.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, for people.
        body: String,
    },
    /// The answer was larger than [`crate::ClientConfig::max_response_bytes`].
    #[error("the node's answer is larger than {limit} bytes (max_response_bytes)")]
    TooLarge {
        /// The bound.
        limit: usize,
    },
    /// The answer was not the JSON-RPC 2.0 the client expected.
    #[error("the node's answer is not valid JSON-RPC: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The WebSocket failed.
    #[error("WebSocket to {url}: {source}")]
    WebSocket {
        /// The WebSocket address.
        url: String,
        /// What failed.
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The node closed a subscription's WebSocket (it is shutting down, or the
    /// subscription's socket broke a bound).
    #[error("the node closed the subscription: {reason}")]
    Closed {
        /// The close frame's code and reason, or how the connection ended.
        reason: String,
    },
    /// The params given are not what the call needs (not a JSON object where one is
    /// needed, an unknown priority…). Nothing was sent.
    #[error("invalid argument `{argument}`: {reason}")]
    InvalidArgument {
        /// The argument.
        argument: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ClientError {
    /// Whether no node could be reached at all.
    pub fn is_not_running(&self) -> bool {
        matches!(self, ClientError::NotRunning { .. })
    }

    /// The JSON-RPC code, when the node answered with an error.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            ClientError::Rpc { code, .. } => Some(*code),
            ClientError::Unauthorized { .. } => Some(UNAUTHORIZED_CODE),
            _ => None,
        }
    }
}
