//! Wall-clock timestamps that follow tokio's clock, so paused time applies to them.
//!
//! Registrations and health records carry [`Timestamp`]s (they are serialized and
//! shown to people), but every decision (is a heartbeat older than the TTL, is a heal
//! due) must follow `tokio::time::Instant` so tests can run under paused time. A
//! [`Clock`] reads the wall clock once, at creation, and from then on adds the
//! elapsed tokio time to it.

use std::time::Duration;

use plexus_core::Timestamp;
use tokio::time::Instant;

/// A wall-clock reading anchored to a tokio instant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: Timestamp,
    tokio: Instant,
}

impl Clock {
    /// A clock anchored now.
    pub(crate) fn new() -> Self {
        Self {
            wall: Timestamp::now(),
            tokio: Instant::now(),
        }
    }

    /// The wall-clock time now, advanced by tokio time since the anchor.
    pub(crate) fn now(&self) -> Timestamp {
        self.wall.saturating_add(self.tokio.elapsed())
    }
}

/// The time from `earlier` to `later`, zero if `later` is not later.
pub(crate) fn between(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::from_micros(later.as_micros().saturating_sub(earlier.as_micros()))
}

/// Serializes a [`Duration`] as whole microseconds (an integer in JSON).
pub(crate) mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }

    /// The same for an `Option<Duration>`.
    pub(crate) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<u64>::deserialize(d).map(|v| v.map(Duration::from_micros))
        }
    }
}
