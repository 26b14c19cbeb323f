//! Property tests: the breaker against a reference model, and the sliding windows
//! against plain lists.

use std::collections::VecDeque;
use std::time::Duration;

use plexus_resilience::breaker::window::{CountWindow, TimeWindow, Totals};
use plexus_resilience::{CircuitBreaker, ErrorClass, State};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Success,
    Failure,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Success),
        4 => Just(Op::Failure),
        1 => (1u64..3_000).prop_map(Op::Advance),
    ]
}

/// The breaker as the documentation describes it, one call at a time.
struct Model {
    size: usize,
    minimum: usize,
    threshold: f64,
    wait_ms: u64,
    permitted: usize,
    state: State,
    window: VecDeque<bool>,
    open_until: u64,
    trials: Vec<bool>,
    now: u64,
}

impl Model {
    fn exceeded(&self, failed: usize, calls: usize, minimum: usize) -> bool {
        calls > 0 && calls >= minimum && failed as f64 * 100.0 >= self.threshold * calls as f64
    }

    /// Returns whether the call was admitted.
    fn call(&mut self, failed: bool) -> bool {
        if self.state == State::Open {
            if self.now < self.open_until {
                return false;
            }
            self.state = State::HalfOpen;
            self.trials.clear();
        }
        match self.state {
            State::Closed => {
                self.window.push_back(failed);
                if self.window.len() > self.size {
                    self.window.pop_front();
                }
                let f = self.window.iter().filter(|&&x| x).count();
                if self.exceeded(f, self.window.len(), self.minimum.min(self.size)) {
                    self.state = State::Open;
                    self.open_until = self.now + self.wait_ms;
                }
            }
            State::HalfOpen => {
                if self.trials.len() >= self.permitted {
                    return false;
                }
                self.trials.push(failed);
                if self.trials.len() == self.permitted {
                    let f = self.trials.iter().filter(|&&x| x).count();
                    if self.exceeded(f, self.permitted, 1) {
                        self.state = State::Open;
                        self.open_until = self.now + self.wait_ms;
                    } else {
                        self.state = State::Closed;
                        self.window.clear();
                    }
                }
            }
            _ => unreachable!("the model only uses closed, open and half-open"),
        }
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn breaker_follows_the_reference_model(
        size in 1u32..12,
        minimum in 1u32..12,
        threshold in prop_oneof![Just(25.0), Just(50.0), Just(66.0), Just(100.0)],
        wait_ms in 1u64..5_000,
        permitted in 1u32..4,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let breaker = CircuitBreaker::builder("model")
                .count_window(size)
                .minimum_calls(minimum)
                .failure_rate_threshold(threshold)
                .wait_in_open(Duration::from_millis(wait_ms))
                .permitted_calls_in_half_open(permitted)
                .build()
                .unwrap();
            let mut model = Model {
                size: size as usize,
                minimum: minimum as usize,
                threshold,
                wait_ms,
                permitted: permitted as usize,
                state: State::Closed,
                window: VecDeque::new(),
                open_until: 0,
                trials: Vec::new(),
                now: 0,
            };
            let (mut admitted, mut rejected) = (0u64, 0u64);
            for (i, op) in ops.iter().enumerate() {
                match *op {
                    Op::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(ms)).await;
                        model.now += ms;
                    }
                    Op::Success | Op::Failure => {
                        let failed = matches!(op, Op::Failure);
                        let expected = model.call(failed);
                        match breaker.try_acquire() {
                            Ok(permit) => {
                                prop_assert!(expected, "step {i}: admitted, model rejects");
                                admitted += 1;
                                permit.record_outcome(if failed { ErrorClass::Failure } else { ErrorClass::Success });
                            }
                            Err(open) => {
                                prop_assert!(!expected, "step {i}: rejected ({open}), model admits");
                                rejected += 1;
                            }
                        }
                    }
                }
                prop_assert_eq!(breaker.state(), model.state, "step {}", i);
            }
            let m = breaker.metrics();
            prop_assert_eq!(m.successful_calls_total + m.failed_calls_total, admitted);
            prop_assert_eq!(m.rejected_calls_total, rejected);
            Ok(())
        })?;
    }

    #[test]
    fn count_window_totals_match_the_last_n_calls(
        size in 1u32..50,
        calls in prop::collection::vec((any::<bool>(), any::<bool>()), 0..300),
    ) {
        let window = CountWindow::new(size);
        let mut model: VecDeque<(bool, bool)> = VecDeque::new();
        for &(failed, slow) in &calls {
            let totals = window.record(failed, slow);
            model.push_back((failed, slow));
            if model.len() > size as usize {
                model.pop_front();
            }
            let expected = Totals {
                calls: model.len() as u64,
                failed: model.iter().filter(|c| c.0).count() as u64,
                slow: model.iter().filter(|c| c.1).count() as u64,
            };
            prop_assert_eq!(totals, expected);
        }
        window.reset();
        prop_assert_eq!(window.totals(), Totals::default());
    }

    #[test]
    fn time_window_totals_match_the_calls_of_the_last_n_seconds(
        seconds in 1u32..20,
        calls in prop::collection::vec((0u64..4_000, any::<bool>(), any::<bool>()), 0..200),
    ) {
        let window = TimeWindow::new(seconds);
        let mut now = 0u64;
        let mut model: Vec<(u64, bool, bool)> = Vec::new();
        for &(gap_ms, failed, slow) in &calls {
            now += gap_ms * 1_000_000;
            let totals = window.record(now, failed, slow);
            model.push((now / 1_000_000_000, failed, slow));
            let current = now / 1_000_000_000;
            let live: Vec<_> = model
                .iter()
                .filter(|c| c.0 + u64::from(seconds) > current)
                .collect();
            let expected = Totals {
                calls: live.len() as u64,
                failed: live.iter().filter(|c| c.1).count() as u64,
                slow: live.iter().filter(|c| c.2).count() as u64,
            };
            prop_assert_eq!(totals, expected);
        }
    }
}
