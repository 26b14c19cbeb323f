//! The latency record a hedge reads its percentile from: the last full period of
//! answered calls, at millisecond resolution, in an HDR histogram that rotates.

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::time::Instant;

/// Recent latencies: the period being filled and the last full one, which is read.
pub(super) struct Latencies {
    period: Duration,
    inner: Mutex<Rotating>,
}

struct Rotating {
    filling: Histogram<u64>,
    read: Histogram<u64>,
    since: Instant,
}

/// The longest latency recorded, in milliseconds (one hour); longer ones count as it.
const HIGHEST_MS: u64 = 3_600_000;

fn histogram() -> Histogram<u64> {
    // Two significant figures over 1 ms ..= 1 h; the bounds are constants, so this
    // cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, HIGHEST_MS, 2).expect("valid constant histogram bounds")
}

impl Latencies {
    pub(super) fn new(period: Duration) -> Self {
        Self {
            period,
            inner: Mutex::new(Rotating {
                filling: histogram(),
                read: histogram(),
                since: Instant::now(),
            }),
        }
    }

    /// Records one answered call.
    pub(super) fn record(&self, took: Duration) {
        let ms = u64::try_from(took.as_millis())
            .unwrap_or(HIGHEST_MS)
            .clamp(1, HIGHEST_MS);
        let mut inner = self.inner.lock();
        self.rotate(&mut inner);
        inner.filling.saturating_record(ms);
    }

    /// The `percentile` of the last full period, once it holds `min` calls.
    pub(super) fn percentile(&self, percentile: f64, min: u64) -> Option<Duration> {
        let mut inner = self.inner.lock();
        self.rotate(&mut inner);
        (inner.read.len() >= min)
            .then(|| Duration::from_millis(inner.read.value_at_quantile(percentile / 100.0)))
    }

    fn rotate(&self, inner: &mut Rotating) {
        let elapsed = inner.since.elapsed();
        if elapsed < self.period {
            return;
        }
        if elapsed >= self.period * 2 {
            // Nothing was recorded in the last full period.
            inner.filling.reset();
        }
        std::mem::swap(&mut inner.read, &mut inner.filling);
        inner.filling.reset();
        inner.since = Instant::now();
    }
}
