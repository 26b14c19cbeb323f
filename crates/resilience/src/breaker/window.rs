//! Sliding windows of call outcomes, lock-free on the recording path.
//!
//! A count window is a ring of one byte per call; a time window is a ring of
//! one-second buckets. Both keep running totals so a snapshot costs three loads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

const FAILED: u8 = 1;
const SLOW: u8 = 2;
const PRESENT: u8 = 4;

/// Totals over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Calls recorded.
    pub calls: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which slow.
    pub slow: u64,
}

#[derive(Debug, Default)]
struct Counts {
    calls: AtomicI64,
    failed: AtomicI64,
    slow: AtomicI64,
}

impl Counts {
    fn add(&self, calls: i64, failed: i64, slow: i64) {
        if failed != 0 {
            self.failed.fetch_add(failed, Ordering::AcqRel);
        }
        if slow != 0 {
            self.slow.fetch_add(slow, Ordering::AcqRel);
        }
        if calls != 0 {
            self.calls.fetch_add(calls, Ordering::AcqRel);
        }
    }

    fn totals(&self) -> Totals {
        let get = |a: &AtomicI64| a.load(Ordering::Acquire).max(0) as u64;
        Totals {
            calls: get(&self.calls),
            failed: get(&self.failed),
            slow: get(&self.slow),
        }
    }

    fn take(&self) -> (i64, i64, i64) {
        (
            self.calls.swap(0, Ordering::AcqRel),
            self.failed.swap(0, Ordering::AcqRel),
            self.slow.swap(0, Ordering::AcqRel),
        )
    }
}

/// The last N outcomes: one byte per call in a ring.
#[derive(Debug)]
pub struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    totals: Counts,
}

impl CountWindow {
    /// A window over the last `size` calls (`size >= 1`).
    pub fn new(size: u32) -> Self {
        Self {
            slots: (0..size.max(1)).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            totals: Counts::default(),
        }
    }

    /// Records one call and returns the totals just after it.
    pub fn record(&self, failed: bool, slow: bool) -> Totals {
        let code = PRESENT | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let slot = &self.slots[at as usize];
        if slot.load(Ordering::Acquire) == code {
            // Same outcome as the call it replaces: nothing to write, totals unchanged.
            return self.totals.totals();
        }
        let old = slot.swap(code, Ordering::AcqRel);
        if old != code {
            let bit = |c: u8, b: u8| i64::from(c & b != 0);
            self.totals.add(
                bit(code, PRESENT) - bit(old, PRESENT),
                bit(code, FAILED) - bit(old, FAILED),
                bit(code, SLOW) - bit(old, SLOW),
            );
        }
        self.totals.totals()
    }

    /// The current totals.
    pub fn totals(&self) -> Totals {
        self.totals.totals()
    }

    /// Calls recorded since the window was built (resets included).
    pub fn records(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Forgets every call.
    pub fn reset(&self) {
        for slot in self.slots.iter() {
            let old = slot.swap(0, Ordering::AcqRel);
            if old != 0 {
                let bit = |b: u8| i64::from(old & b != 0);
                self.totals.add(-1, -bit(FAILED), -bit(SLOW));
            }
        }
    }
}

/// The outcomes of the last N seconds: a ring of one-second buckets.
#[derive(Debug)]
pub struct TimeWindow {
    buckets: Box<[Counts]>,
    /// The second the newest bucket stands for.
    head: AtomicU64,
    totals: Counts,
    roll: Mutex<()>,
}

const NANOS_PER_SEC: u64 = 1_000_000_000;

impl TimeWindow {
    /// A window over the last `seconds` seconds (`seconds >= 1`).
    pub fn new(seconds: u32) -> Self {
        Self {
            buckets: (0..seconds.max(1)).map(|_| Counts::default()).collect(),
            head: AtomicU64::new(0),
            totals: Counts::default(),
            roll: Mutex::new(()),
        }
    }

    /// Records one call at `now_nanos` and returns the totals just after it.
    pub fn record(&self, now_nanos: u64, failed: bool, slow: bool) -> Totals {
        let second = now_nanos / NANOS_PER_SEC;
        self.advance(second);
        let bucket = &self.buckets[(second % self.buckets.len() as u64) as usize];
        let (failed, slow) = (i64::from(failed), i64::from(slow));
        bucket.add(1, failed, slow);
        self.totals.add(1, failed, slow);
        self.totals.totals()
    }

    /// The totals as of `now_nanos` (older buckets expire).
    pub fn totals(&self, now_nanos: u64) -> Totals {
        self.advance(now_nanos / NANOS_PER_SEC);
        self.totals.totals()
    }

    /// Forgets every call.
    pub fn reset(&self) {
        let _guard = self.roll.lock();
        for bucket in self.buckets.iter() {
            let (c, f, s) = bucket.take();
            self.totals.add(-c, -f, -s);
        }
    }

    fn advance(&self, second: u64) {
        if second <= self.head.load(Ordering::Acquire) {
            return;
        }
        // Only when the second rolls over: one writer clears the expired buckets.
        let _guard = self.roll.lock();
        let head = self.head.load(Ordering::Acquire);
        if second <= head {
            return;
        }
        let len = self.buckets.len() as u64;
        let first = head + 1;
        let last = second.min(head + len);
        for s in first..=last {
            let (c, f, sl) = self.buckets[(s % len) as usize].take();
            self.totals.add(-c, -f, -sl);
        }
        self.head.store(second, Ordering::Release);
    }
}
