//! [`Pace`]: how this node shares its workers between queues. Two rules, both
//! applied by leaving queues out of the next claim:
//!
//! - **rate limits**: a queue with a rate in `jobs.rates` starts at most that many
//!   jobs per second on this node (a token bucket holding a second's worth, full
//!   at first, refilled by the queue's clock);
//! - **fairness**: the queues take turns. Once a queue has started a job, it is
//!   left out until every other queue with a due job has started one too (a round);
//!   when no other queue has one, a new round begins. Inside a round, priority,
//!   then `run_at`, then arrival decide as always.

use std::collections::{BTreeMap, HashMap, HashSet};

use parking_lot::Mutex;

/// One queue's tokens.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: i64,
}

/// The node's rate limits and turns.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    rates: BTreeMap<String, u32>,
    buckets: Mutex<HashMap<String, Bucket>>,
    served: Mutex<HashSet<String>>,
}

impl Pace {
    /// Rates per queue (jobs started per second).
    pub(crate) fn new(rates: BTreeMap<String, u32>) -> Self {
        Self {
            rates,
            ..Self::default()
        }
    }

    /// The bucket of `queue` (with rate `rate`) refilled to `now`.
    fn refilled(
        &self,
        buckets: &mut HashMap<String, Bucket>,
        queue: &str,
        rate: u32,
        now: i64,
    ) -> Bucket {
        let full = f64::from(rate);
        let b = buckets.entry(queue.to_owned()).or_insert(Bucket {
            tokens: full,
            at: now,
        });
        let elapsed = now.saturating_sub(b.at).max(0) as f64;
        b.tokens = (b.tokens + elapsed * full / 1_000.0).min(full);
        b.at = now;
        *b
    }

    /// The queues out of tokens at `now`, and the queues that had their turn in
    /// this round: the ones the next claim leaves out.
    pub(crate) fn left_out(&self, now: i64) -> Vec<String> {
        let mut out: Vec<String> = self.served.lock().iter().cloned().collect();
        let mut buckets = self.buckets.lock();
        for (queue, rate) in &self.rates {
            if self.refilled(&mut buckets, queue, *rate, now).tokens < 1.0 {
                out.push(queue.clone());
            }
        }
        out
    }

    /// How long until a queue out of tokens has one again, in milliseconds.
    pub(crate) fn next_token_ms(&self, now: i64) -> Option<u64> {
        let mut buckets = self.buckets.lock();
        self.rates
            .iter()
            .filter_map(|(queue, rate)| {
                let b = self.refilled(&mut buckets, queue, *rate, now);
                (b.tokens < 1.0)
                    .then(|| ((1.0 - b.tokens) * 1_000.0 / f64::from(*rate)).ceil() as u64)
            })
            .min()
    }

    /// How many jobs of `queue` its rate lets start at `now` (unbounded without
    /// a rate).
    pub(crate) fn tokens(&self, queue: &str, now: i64) -> usize {
        let Some(rate) = self.rates.get(queue) else {
            return usize::MAX;
        };
        let mut buckets = self.buckets.lock();
        let tokens = self.refilled(&mut buckets, queue, *rate, now).tokens;
        // A bucket holds at most a second's worth: a `u32`.
        tokens.max(0.0).floor() as usize
    }

    /// `queue` started a job at `now`: a token spent, its turn taken.
    pub(crate) fn started(&self, queue: &str, now: i64) {
        if let Some(rate) = self.rates.get(queue) {
            let mut buckets = self.buckets.lock();
            self.refilled(&mut buckets, queue, *rate, now);
            if let Some(b) = buckets.get_mut(queue) {
                b.tokens -= 1.0;
            }
        }
        self.served.lock().insert(queue.to_owned());
    }

    /// Begins a new round; false when no queue had its turn (nothing to retry).
    pub(crate) fn new_round(&self) -> bool {
        let mut served = self.served.lock();
        let had = !served.is_empty();
        served.clear();
        had
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_a_second_and_refills_with_time() {
        let pace = Pace::new(BTreeMap::from([("r".to_owned(), 2)]));
        assert!(pace.left_out(0).is_empty());
        pace.started("r", 0);
        pace.started("r", 0);
        assert!(pace.new_round());
        assert_eq!(pace.left_out(0), ["r"]);
        assert_eq!(pace.tokens("r", 0), 0);
        assert_eq!(pace.tokens("other", 0), usize::MAX);
        assert_eq!(pace.next_token_ms(0), Some(500));
        assert_eq!(pace.left_out(499), ["r"]);
        assert!(pace.left_out(500).is_empty());
        assert_eq!(pace.tokens("r", 1_000), 2);
        // Idle for long: never more than a second's worth.
        assert!(pace.left_out(60_000).is_empty());
        for _ in 0..2 {
            pace.started("r", 60_000);
        }
        pace.new_round();
        assert_eq!(pace.left_out(60_000), ["r"]);
    }

    #[test]
    fn a_queue_waits_for_the_others_turns() {
        let pace = Pace::new(BTreeMap::new());
        pace.started("a", 0);
        assert_eq!(pace.left_out(0), ["a"]);
        assert!(pace.new_round());
        assert!(pace.left_out(0).is_empty());
        assert!(!pace.new_round());
    }
}
