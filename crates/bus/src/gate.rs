//! The publish gate: lets shutdown stop new publishes and wait out those in flight.
//!
//! Every publish enters the gate by bumping a counter and checking that the bus still
//! accepts; shutdown clears the flag and waits for the counters to reach zero. The
//! counters are sharded per thread on separate cache lines so that concurrent
//! publishers do not contend on one atomic.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::BusError;

const SHARDS: usize = 16;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn my_shard() -> usize {
    SHARD.with(|s| {
        let mut shard = s.get();
        if shard == usize::MAX {
            shard = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(shard);
        }
        shard
    })
}

/// One shard's counters, on one cache line: publishes inside now, and ever admitted.
#[derive(Default)]
struct Shard {
    in_flight: AtomicIsize,
    admitted: AtomicU64,
}

pub(crate) struct Gate {
    accepting: AtomicBool,
    shards: [CachePadded<Shard>; SHARDS],
}

/// Proof of being inside the gate; leaving happens on drop.
pub(crate) struct Pass<'a> {
    gate: &'a Gate,
    shard: usize,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            accepting: AtomicBool::new(true),
            shards: std::array::from_fn(|_| CachePadded::new(Shard::default())),
        }
    }

    pub(crate) fn enter(&self) -> Result<Pass<'_>, BusError> {
        let shard = my_shard();
        let counters = &self.shards[shard];
        counters.in_flight.fetch_add(1, Ordering::SeqCst);
        if !self.accepting.load(Ordering::SeqCst) {
            counters.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(BusError::ShuttingDown);
        }
        counters.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(Pass { gate: self, shard })
    }

    /// Stops admitting; returns false if it was already stopped.
    pub(crate) fn close(&self) -> bool {
        self.accepting.swap(false, Ordering::SeqCst)
    }

    pub(crate) fn is_open(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// True when no publish is inside the gate.
    pub(crate) fn is_quiet(&self) -> bool {
        self.shards
            .iter()
            .map(|c| c.in_flight.load(Ordering::SeqCst))
            .sum::<isize>()
            == 0
    }

    /// Publishes ever admitted through the gate.
    pub(crate) fn admitted(&self) -> u64 {
        self.shards
            .iter()
            .map(|c| c.admitted.load(Ordering::Relaxed))
            .sum()
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.shards[self.shard]
            .in_flight
            .fetch_sub(1, Ordering::SeqCst);
    }
}
