//! [`Pace`]: how this node shares its workers between queues. Two rules:
//!
//! - **rate limits**: a queue with a rate in `jobs.rates` starts at most that many
//!   jobs per second **across every node** sharing the backend. Its tokens live
//!   in the backend, a bucket holding a second's worth, full at first, refilled by
//!   the queue's clock ([`JobBackend::take_tokens`](crate::JobBackend::take_tokens));
//!   the dispatcher takes tokens before it claims the queue's jobs and gives back
//!   what it did not use. A rated queue is therefore never taken by the general
//!   claim: it has a path of its own, once a round. What the pace keeps here is
//!   only when a queue out of tokens may have one again, so the dispatcher wakes
//!   then.
//! - **fairness**: the queues take turns. Once a queue has had its turn (its best
//!   due job and up to `batch − 1` more), it is left out until every other queue
//!   with a due job has had one too (a round); when no other queue has one, a new
//!   round begins. Inside a round, priority, then `run_at`, then arrival decide.

use std::collections::{BTreeMap, HashMap, HashSet};

use parking_lot::Mutex;

/// The node's view of rates and turns.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    rates: BTreeMap<String, u32>,
    /// When each queue found out of tokens may have one again (ms).
    refills: Mutex<HashMap<String, i64>>,
    served: Mutex<HashSet<String>>,
}

impl Pace {
    /// Rates per queue (jobs started per second, on all nodes together).
    pub(crate) fn new(rates: BTreeMap<String, u32>) -> Self {
        Self {
            rates,
            ..Self::default()
        }
    }

    /// The queues with a rate, and their rates.
    pub(crate) fn rates(&self) -> impl Iterator<Item = (&str, u32)> {
        self.rates.iter().map(|(q, r)| (q.as_str(), *r))
    }

    /// The queues the general claim leaves out: every rated queue (claimed on its
    /// own path), and the queues that had their turn in this round.
    pub(crate) fn left_out(&self) -> Vec<String> {
        let mut out: Vec<String> = self.served.lock().iter().cloned().collect();
        out.extend(self.rates.keys().cloned());
        out
    }

    /// Whether `queue` had its turn in this round.
    pub(crate) fn served(&self, queue: &str) -> bool {
        self.served.lock().contains(queue)
    }

    /// `queue` (with `rate`) was granted no token at `now`, `left` being in its
    /// bucket: it may have one again in `(1 − left) / rate` seconds.
    pub(crate) fn out_of_tokens(&self, queue: &str, rate: u32, left: f64, now: i64) {
        let wait = ((1.0 - left).max(0.0) * 1_000.0 / f64::from(rate.max(1))).ceil();
        // At most a second: a bucket refills whole in one.
        let at = now.saturating_add((wait as i64).clamp(1, 1_000));
        self.refills.lock().insert(queue.to_owned(), at);
    }

    /// How long from `now` until a queue out of tokens may have one again, in
    /// milliseconds.
    pub(crate) fn next_token_ms(&self, now: i64) -> Option<u64> {
        let mut refills = self.refills.lock();
        refills.retain(|_, at| *at > now);
        refills
            .values()
            .min()
            .map(|at| u64::try_from(at.saturating_sub(now)).unwrap_or(0))
    }

    /// `queue` started jobs: its turn is taken.
    pub(crate) fn started(&self, queue: &str) {
        self.refills.lock().remove(queue);
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
    fn a_rated_queue_is_left_to_its_own_path_and_its_refill_is_waited_for() {
        let pace = Pace::new(BTreeMap::from([("r".to_owned(), 2)]));
        assert_eq!(pace.left_out(), ["r"]);
        assert_eq!(pace.next_token_ms(0), None);
        pace.out_of_tokens("r", 2, 0.25, 0);
        assert_eq!(pace.next_token_ms(0), Some(375));
        assert_eq!(pace.next_token_ms(374), Some(1));
        assert_eq!(pace.next_token_ms(375), None, "due: forgotten");
        pace.out_of_tokens("r", 2, 0.0, 1_000);
        pace.started("r");
        assert_eq!(pace.next_token_ms(1_000), None, "a start clears it");
    }

    #[test]
    fn a_queue_waits_for_the_others_turns() {
        let pace = Pace::new(BTreeMap::new());
        pace.started("a");
        assert!(pace.served("a"));
        assert_eq!(pace.left_out(), ["a"]);
        assert!(pace.new_round());
        assert!(pace.left_out().is_empty());
        assert!(!pace.new_round());
    }
}
