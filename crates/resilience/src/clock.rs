//! Time as the layers read it: tokio's clock, so paused test time drives everything.

use std::time::Duration;

use tokio::time::Instant;

/// A fixed origin; instants are kept as nanoseconds since it in atomics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin(Instant);

impl Origin {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }

    /// Nanoseconds from the origin to now.
    pub(crate) fn now_nanos(&self) -> u64 {
        self.nanos_at(Instant::now())
    }

    /// Nanoseconds from the origin to `at` (zero before it).
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.0).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `nanos` after the origin.
    pub(crate) fn instant(&self, nanos: u64) -> Instant {
        self.0 + Duration::from_nanos(nanos)
    }
}

/// A duration in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
