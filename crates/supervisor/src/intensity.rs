//! Restart intensity: how many restarts a supervisor allows within a window.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// At most `max_restarts` restarts within any `within` window; one more and the
/// supervisor gives up (OTP's `intensity` and `period`). The supervisor remembers the
/// time of at most `max_restarts + 1` restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within the window. Zero means the first restart is refused.
    pub max_restarts: u32,
    /// The window. Must not be zero.
    pub within: Duration,
}

impl Default for Intensity {
    /// OTP's defaults: one restart in five seconds.
    fn default() -> Self {
        Self {
            max_restarts: 1,
            within: Duration::from_secs(5),
        }
    }
}

/// The times of recent restarts, never more than `max_restarts + 1` of them.
#[derive(Debug)]
pub(crate) struct RestartWindow {
    intensity: Intensity,
    stamps: VecDeque<Instant>,
}

impl RestartWindow {
    pub(crate) fn new(intensity: Intensity) -> Self {
        Self {
            intensity,
            stamps: VecDeque::new(),
        }
    }

    /// Records a restart at `now`. `Err(count)` when that makes more than the
    /// intensity allows: `count` restarts fall within the window ending at `now`.
    /// A restart exactly `within` ago still counts, as in OTP.
    pub(crate) fn record(&mut self, now: Instant) -> Result<(), u32> {
        if let Some(threshold) = now.checked_sub(self.intensity.within) {
            while self.stamps.front().is_some_and(|&t| t < threshold) {
                self.stamps.pop_front();
            }
        }
        self.stamps.push_back(now);
        let count = u32::try_from(self.stamps.len()).unwrap_or(u32::MAX);
        if count > self.intensity.max_restarts {
            Err(count)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(max_restarts: u32, secs: u64) -> RestartWindow {
        RestartWindow::new(Intensity {
            max_restarts,
            within: Duration::from_secs(secs),
        })
    }

    #[test]
    fn more_than_max_within_the_window_is_refused() {
        let start = Instant::now();
        let mut w = window(2, 10);
        assert_eq!(w.record(start), Ok(()));
        assert_eq!(w.record(start + Duration::from_secs(4)), Ok(()));
        assert_eq!(w.record(start + Duration::from_secs(9)), Err(3));
    }

    #[test]
    fn restarts_older_than_the_window_are_forgotten() {
        let start = Instant::now();
        let mut w = window(2, 10);
        for i in 0..10 {
            assert_eq!(w.record(start + Duration::from_secs(6 * i)), Ok(()), "{i}");
        }
        assert!(w.stamps.len() <= 3);
    }

    #[test]
    fn the_edge_of_the_window_counts() {
        let start = Instant::now();
        let mut w = window(1, 5);
        assert_eq!(w.record(start), Ok(()));
        assert_eq!(w.record(start + Duration::from_secs(5)), Err(2));
        let mut w = window(1, 5);
        assert_eq!(w.record(start), Ok(()));
        assert_eq!(
            w.record(start + Duration::from_secs(5) + Duration::from_millis(1)),
            Ok(())
        );
    }

    #[test]
    fn zero_allows_no_restart() {
        assert_eq!(window(0, 5).record(Instant::now()), Err(1));
    }
}
