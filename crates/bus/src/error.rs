//! The bus's typed errors.

use std::time::Duration;

use plexus_core::{Topic, TopicError};

use crate::SubscriptionId;

/// Why a subscriber refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Its lane was full and its policy is [`crate::Overflow::Reject`].
    Full,
    /// Its lane stayed full for the whole wait of [`crate::Overflow::Block`].
    BlockTimeout(Duration),
    /// It was closed (unsubscribed or shut down) while the publisher waited.
    Closed,
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::Full => f.write_str("its queue is full"),
            RejectReason::BlockTimeout(d) => write!(f, "its queue stayed full for {d:?}"),
            RejectReason::Closed => f.write_str("it was closed"),
        }
    }
}

/// Everything the bus can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A subscription pattern is malformed.
    #[error("subscription pattern {pattern:?} {source}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        source: TopicError,
    },
    /// An option is out of its allowed range.
    #[error("option `{field}` {reason}")]
    InvalidOption {
        /// The option's name.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The payload is larger than [`crate::BusConfig::max_payload_bytes`].
    #[error(
        "payload on {topic} is {size} bytes; the limit is {limit} (raise BusConfig::max_payload_bytes or send a reference)"
    )]
    PayloadTooLarge {
        /// The topic it was published on.
        topic: Topic,
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The headers are larger than [`crate::BusConfig::max_header_bytes`].
    #[error("headers on {topic} are {size} bytes; the limit is {limit}")]
    HeadersTooLarge {
        /// The topic it was published on.
        topic: Topic,
        /// Their size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A subscriber refused the event. Others may have taken it: `enqueued` says how many.
    #[error(
        "subscription {subscription} ({pattern}) refused an event on {topic}: {reason}; {enqueued} other subscriber(s) took it"
    )]
    Rejected {
        /// The subscriber that refused.
        subscription: SubscriptionId,
        /// Its pattern.
        pattern: String,
        /// The event's topic.
        topic: Topic,
        /// Why.
        reason: RejectReason,
        /// How many subscribers did queue the event.
        enqueued: usize,
    },
    /// The bus is shutting down and accepts nothing new.
    #[error("the bus is shutting down and accepts no new events")]
    ShuttingDown,
    /// [`crate::Overflow::DeadLetter`] was asked for but no dead-letter topic is configured.
    #[error("overflow policy DeadLetter needs BusConfig::dead_letter_topic to be set")]
    DeadLetterNotConfigured,
    /// A request matched no subscriber.
    #[error("no subscriber answers requests on {topic}")]
    NoResponders {
        /// The request's topic.
        topic: Topic,
    },
    /// A request got no reply before its deadline.
    #[error("request on {topic} got no reply within {after:?}")]
    RequestTimeout {
        /// The request's topic.
        topic: Topic,
        /// The deadline it was given.
        after: Duration,
    },
    /// The handler of a request failed or panicked.
    #[error("the handler of {topic} failed: {message}")]
    HandlerFailed {
        /// The request's topic.
        topic: Topic,
        /// What the handler reported.
        message: String,
    },
    /// A reply was sent for a request nobody waits for (it timed out or was answered).
    #[error("no request {0} is waiting for a reply (it timed out, was answered, or never asked)")]
    NoPendingRequest(plexus_core::EventId),
    /// Too many requests are waiting for replies.
    #[error(
        "{limit} requests are already waiting for replies; raise BusConfig::max_pending_requests"
    )]
    TooManyPendingRequests {
        /// The limit.
        limit: usize,
    },
}
