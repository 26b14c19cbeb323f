//! Bus-wide settings and per-subscription options, with every bound they impose.

use std::time::Duration;

use plexus_core::{Member, Topic};

use crate::BusError;

/// Bus-wide settings. Every bound is here, with its default.
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// The largest JSON or bytes payload accepted, in bytes (default 1 MiB). Typed
    /// in-process payloads are never copied and are not measured.
    pub max_payload_bytes: usize,
    /// The largest total of header keys and values, in bytes (default 16 KiB).
    pub max_header_bytes: usize,
    /// Where dead letters go: events a subscriber overflowed with policy
    /// [`Overflow::DeadLetter`], events whose handler failed, and events that matched
    /// no subscriber. `None` (the default) counts them instead.
    pub dead_letter_topic: Option<Topic>,
    /// Each lane's capacity when a subscription does not choose (default 1024).
    pub default_capacity: usize,
    /// The largest lane capacity a subscription may ask for (default 1,048,576).
    pub max_capacity: usize,
    /// The overflow policy when a subscription does not choose (default: block the
    /// publisher for up to 5 s, then reject).
    pub default_overflow: Overflow,
    /// How many requests may wait for replies at once (default 65,536).
    pub max_pending_requests: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1 << 20,
            max_header_bytes: 16 << 10,
            dead_letter_topic: None,
            default_capacity: 1024,
            max_capacity: 1 << 20,
            default_overflow: Overflow::Block {
                timeout: Duration::from_secs(5),
            },
            max_pending_requests: 1 << 16,
        }
    }
}

impl BusConfig {
    /// Sets the dead-letter topic.
    pub fn with_dead_letter_topic(mut self, topic: Topic) -> Self {
        self.dead_letter_topic = Some(topic);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), BusError> {
        if self.default_capacity == 0 || self.default_capacity > self.max_capacity {
            return Err(BusError::InvalidOption {
                field: "default_capacity",
                reason: format!(
                    "is {}; it must be between 1 and max_capacity ({})",
                    self.default_capacity, self.max_capacity
                ),
            });
        }
        Ok(())
    }
}

/// What happens when a subscriber's lane is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// The publisher waits for room, up to `timeout`, then gets
    /// [`BusError::Rejected`] with [`crate::RejectReason::BlockTimeout`].
    Block {
        /// The longest wait.
        timeout: Duration,
    },
    /// The publisher gets [`BusError::Rejected`] at once.
    Reject,
    /// The oldest event of that lane is dropped to make room, and counted.
    DropOldest,
    /// The new event goes to the dead-letter topic, and is counted.
    DeadLetter,
}

/// A condition on headers that an event must meet to reach a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderFilter {
    /// The header is set to exactly this value.
    Equals(String, String),
    /// The header is set.
    Present(String),
    /// The header is not set.
    Absent(String),
}

impl HeaderFilter {
    pub(crate) fn admits(&self, headers: &plexus_core::Headers) -> bool {
        match self {
            HeaderFilter::Equals(k, v) => headers.get(k) == Some(v.as_str()),
            HeaderFilter::Present(k) => headers.contains(k),
            HeaderFilter::Absent(k) => !headers.contains(k),
        }
    }
}

/// How one subscription wants to receive: capacity, overflow policy, identity, filters.
#[derive(Clone, Debug, Default)]
pub struct SubscribeOptions {
    pub(crate) capacity: Option<usize>,
    pub(crate) overflow: Option<Overflow>,
    pub(crate) member: Option<Member>,
    pub(crate) filters: Vec<HeaderFilter>,
    pub(crate) name: Option<String>,
}

impl SubscribeOptions {
    /// The bus defaults, broadcast-only, no filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Each of the four lanes holds up to `capacity` events.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// What to do when a lane is full.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = Some(overflow);
        self
    }

    /// Receive events targeted at this member (its instance, service or service
    /// type) as well as broadcasts.
    pub fn member(mut self, member: Member) -> Self {
        self.member = Some(member);
        self
    }

    /// Receive only events whose headers meet `filter` (all filters must hold).
    pub fn filter(mut self, filter: HeaderFilter) -> Self {
        self.filters.push(filter);
        self
    }

    /// A name for stats and shutdown reports.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}
