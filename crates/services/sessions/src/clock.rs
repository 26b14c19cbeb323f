//! [`Clock`]: the time of the backends that keep their own (memory, SQLite).

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, read from Tokio's clock: the wall clock when
/// the backend was made, plus the Tokio time since.
#[derive(Debug)]
pub(crate) struct Clock {
    epoch_ms: u64,
    started: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            epoch_ms,
            started: Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        let since = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.epoch_ms.saturating_add(since)
    }
}
