//! The exact sliding window: a log of admission times.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::{Origin, nanos};

#[derive(Debug)]
pub(super) struct SlidingLog {
    limit: usize,
    window: u64,
    origin: Origin,
    log: Mutex<VecDeque<u64>>,
}

impl SlidingLog {
    pub(super) fn new(limit: u32, window: Duration, origin: Origin) -> Self {
        Self {
            limit: limit as usize,
            window: nanos(window),
            origin,
            log: Mutex::new(VecDeque::new()),
        }
    }

    /// Admits a call now, or returns the wait until one would be admitted.
    pub(super) fn check(&self) -> Result<(), Duration> {
        let now = self.origin.now_nanos();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        while log
            .front()
            .is_some_and(|&t| t.saturating_add(self.window) <= now)
        {
            log.pop_front();
        }
        if log.len() < self.limit {
            log.push_back(now);
            return Ok(());
        }
        let oldest = log.front().copied().unwrap_or(now);
        Err(Duration::from_nanos(
            oldest.saturating_add(self.window).saturating_sub(now),
        ))
    }
}
