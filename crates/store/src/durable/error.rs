//! The typed errors of the outbox and the audit trail.

use crate::StoreError;

/// Why an outbox operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The event's topic matches no pattern declared durable.
    #[error(
        "topic `{topic}` is not declared durable: publish it on the bus directly, or declare a pattern that matches it"
    )]
    NotDurable {
        /// The topic.
        topic: String,
    },
    /// A topic pattern is malformed.
    #[error("durable topic pattern `{pattern}` is invalid: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The envelope could not be encoded as JSON.
    #[error("event {id} on `{topic}` cannot be encoded: {reason}")]
    Encode {
        /// The event id.
        id: String,
        /// Its topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// The encoded envelope is over [`crate::OutboxConfig::max_event_bytes`].
    #[error(
        "event {id} on `{topic}` is {size} bytes encoded, over the limit of {limit} (OutboxConfig::max_event_bytes)"
    )]
    TooLarge {
        /// The event id.
        id: String,
        /// Its topic.
        topic: String,
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More events in one transaction than
    /// [`crate::OutboxConfig::max_events_per_transaction`].
    #[error(
        "{count} events in one transaction, more than {limit} (OutboxConfig::max_events_per_transaction)"
    )]
    TooManyEvents {
        /// How many were given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An event with this id is already in the outbox.
    #[error("event {id} is already in the outbox")]
    Duplicate {
        /// The event id.
        id: String,
    },
    /// The outbox holds [`crate::OutboxConfig::max_pending`] undelivered events.
    #[error(
        "the outbox holds {pending} undelivered events; {adding} more would pass its limit of {limit} (OutboxConfig::max_pending)"
    )]
    Full {
        /// Undelivered events now (the relay's estimate).
        pending: u64,
        /// Events the refused call tried to add.
        adding: usize,
        /// The limit.
        limit: u64,
    },
    /// A replay or option argument is out of range.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument {
        /// The argument.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A stored row could not be read back.
    #[error("outbox row at offset {offset} is unreadable: {reason}")]
    Corrupt {
        /// Its offset.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// The database failed (see [`StoreError::kind`]); a transaction's data change
    /// and its events were rolled back together.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OutboxError {
    /// Whether the same call may succeed if tried again unchanged.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Full { .. } => true,
            _ => false,
        }
    }

    /// The store error underneath, if the database failed.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A query or entry argument is out of range.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument {
        /// The argument.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A stored row could not be read back.
    #[error("audit row {seq} is unreadable: {reason}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
