//! What can go wrong while joining or using the cluster.

/// Why a cluster part could not start or answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The NATS server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {url}: {message} (is nats-server running with -js?)")]
    Connect {
        /// The address tried.
        url: String,
        /// What the client said.
        message: String,
    },
    /// JetStream refused to create or open what Plexus needs.
    #[error(
        "JetStream refused to open {what}: {message} (is JetStream enabled on the server, with -js?)"
    )]
    JetStream {
        /// The bucket or stream.
        what: String,
        /// What the server said.
        message: String,
    },
    /// A configuration field is out of range.
    #[error("invalid cluster configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The field, with its section.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}
