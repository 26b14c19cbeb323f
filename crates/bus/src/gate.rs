//! The publish gate: lets shutdown stop new publishes and wait out those in flight.
//!
//! Every publish enters the gate by bumping a counter and checking that the bus still
//! accepts; shutdown clears the flag and waits for the counters to reach zero. The
//! counters are sharded per thread on separate cache lines so that concurrent
//! publishers do not contend on one atomic.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

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

pub(crate) struct Gate {
    accepting: AtomicBool,
    in_flight: [CachePadded<AtomicIsize>; SHARDS],
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
            in_flight: std::array::from_fn(|_| CachePadded::new(AtomicIsize::new(0))),
        }
    }

    pub(crate) fn enter(&self) -> Result<Pass<'_>, BusError> {
        let shard = my_shard();
        self.in_flight[shard].fetch_add(1, Ordering::SeqCst);
        if !self.accepting.load(Ordering::SeqCst) {
            self.in_flight[shard].fetch_sub(1, Ordering::SeqCst);
            return Err(BusError::ShuttingDown);
        }
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
        self.in_flight
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum::<isize>()
            == 0
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.in_flight[self.shard].fetch_sub(1, Ordering::SeqCst);
    }
}
