//! Circuit breaker scenarios.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use plexus_core::{Envelope, Event};
use plexus_resilience::{
    BoxError, CircuitBreaker, CircuitOpen, Deadline, DeadlineExceeded, ErrorClass, State,
    StateTransition, TransitionReason,
};

use crate::support::{Mock, MockError, call, record_transitions, spawnable};

fn is_open(err: &BoxError) -> bool {
    err.downcast_ref::<CircuitOpen>().is_some()
}

#[tokio::test(start_paused = true)]
async fn consecutive_timeouts_open_exactly_at_threshold_then_fail_fast() {
    let breaker = CircuitBreaker::builder("storage")
        .count_window(10)
        .minimum_calls(5)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(30))
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service =
        breaker.layer(Deadline::new(Duration::from_millis(100)).layer(mock.hanging::<()>()));

    for i in 1..=4 {
        let err = call(&mut service, ()).await.unwrap_err();
        assert!(
            err.downcast_ref::<DeadlineExceeded>().is_some(),
            "call {i}: {err}"
        );
        assert_eq!(
            breaker.state(),
            State::Closed,
            "still closed after {i} timeouts"
        );
    }
    let err = call(&mut service, ()).await.unwrap_err();
    assert!(err.downcast_ref::<DeadlineExceeded>().is_some());
    assert_eq!(
        breaker.state(),
        State::Open,
        "open exactly at the fifth timeout"
    );

    let started = tokio::time::Instant::now();
    for _ in 0..20 {
        let err = call(&mut service, ()).await.unwrap_err();
        let open = err
            .downcast_ref::<CircuitOpen>()
            .expect("fails fast with CircuitOpen");
        assert_eq!(open.state, State::Open);
        assert_eq!(&*open.name, "storage");
    }
    assert_eq!(
        tokio::time::Instant::now(),
        started,
        "rejections take no time"
    );
    assert_eq!(mock.count(), 5, "no call reached the dependency once open");
    let m = breaker.metrics();
    assert_eq!((m.failed_calls_total, m.rejected_calls_total), (5, 20));
}

#[tokio::test(start_paused = true)]
async fn concurrent_timeouts_open_the_breaker_and_concurrent_calls_fail_fast() {
    let breaker = CircuitBreaker::builder("storage")
        .count_window(5)
        .minimum_calls(5)
        .failure_rate_threshold(100.0)
        .build()
        .unwrap();
    let mock = Mock::new();
    let service =
        breaker.layer(Deadline::new(Duration::from_millis(100)).layer(mock.hanging::<()>()));

    let first: Vec<_> = (0..5)
        .map(|_| tokio::spawn(spawnable(&service, ())))
        .collect();
    for handle in first {
        assert!(handle.await.unwrap().is_err());
    }
    assert_eq!(breaker.state(), State::Open);

    let second: Vec<_> = (0..50)
        .map(|_| tokio::spawn(spawnable(&service, ())))
        .collect();
    for handle in second {
        assert!(is_open(&handle.await.unwrap().unwrap_err()));
    }
    assert_eq!(mock.count(), 5);
    assert_eq!(breaker.metrics().rejected_calls_total, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_parallel_load_every_call_is_either_recorded_or_rejected() {
    let breaker = CircuitBreaker::builder("storage")
        .count_window(20)
        .minimum_calls(20)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mock = Mock::new();
    let service = breaker.layer(mock.failing::<()>());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let s = service.clone();
            tokio::spawn(async move {
                for _ in 0..250 {
                    let _ = spawnable(&s, ()).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let m = breaker.metrics();
    assert_eq!(m.state, State::Open);
    assert_eq!(m.failed_calls_total + m.rejected_calls_total, 1000);
    assert_eq!(m.failed_calls_total as usize, mock.count());
    // Only calls admitted before the opening (at most one per task) can pass the threshold.
    assert!(
        (20..=23).contains(&mock.count()),
        "{} calls reached the dependency",
        mock.count()
    );
}

#[tokio::test(start_paused = true)]
async fn dependency_down_then_back_half_opens_after_the_wait_and_closes_after_trials() {
    let breaker = CircuitBreaker::builder("storage")
        .count_window(4)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(10))
        .permitted_calls_in_half_open(3)
        .build()
        .unwrap();
    let seen = record_transitions(&breaker);
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mock = Mock::new();
    let flag = down.clone();
    let mut service = breaker.layer(mock.service::<()>(
        |_| Duration::ZERO,
        move |n| {
            if flag.load(Ordering::SeqCst) {
                Err(MockError("down"))
            } else {
                Ok(n)
            }
        },
    ));

    for _ in 0..4 {
        let _ = call(&mut service, ()).await;
    }
    assert_eq!(breaker.state(), State::Open);

    tokio::time::advance(Duration::from_secs(4)).await;
    let err = call(&mut service, ()).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(
        open.retry_after,
        Some(Duration::from_secs(6)),
        "says when the next trial is"
    );
    assert!(!breaker.is_call_permitted());

    down.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(breaker.is_call_permitted());
    call(&mut service, ()).await.unwrap();
    assert_eq!(breaker.state(), State::HalfOpen, "first trial let through");
    call(&mut service, ()).await.unwrap();
    assert_eq!(breaker.state(), State::HalfOpen);
    call(&mut service, ()).await.unwrap();
    assert_eq!(
        breaker.state(),
        State::Closed,
        "closed after the permitted trials"
    );

    let seen = seen.lock().unwrap();
    let path: Vec<_> = seen.iter().map(|t| (t.from, t.to, t.reason)).collect();
    assert_eq!(
        path,
        vec![
            (State::Closed, State::Open, TransitionReason::FailureRate),
            (State::Open, State::HalfOpen, TransitionReason::WaitElapsed),
            (
                State::HalfOpen,
                State::Closed,
                TransitionReason::TrialsSucceeded
            ),
        ]
    );
    assert_eq!(seen[0].failure_rate, Some(100.0));
    assert_eq!(
        breaker.metrics().buffered_calls,
        0,
        "closing forgets the old window"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_reopens_with_a_growing_wait() {
    let breaker = CircuitBreaker::builder("storage")
        .count_window(2)
        .minimum_calls(2)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(10))
        .growing_wait(2.0, Duration::from_secs(25))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = breaker.layer(mock.failing::<()>());
    for _ in 0..2 {
        let _ = call(&mut service, ()).await;
    }
    assert_eq!(breaker.retry_after(), Some(Duration::from_secs(10)));

    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(
        call(&mut service, ())
            .await
            .unwrap_err()
            .downcast_ref::<MockError>()
            .is_some()
    );
    assert_eq!(breaker.state(), State::Open, "the failed trial reopened it");
    assert_eq!(
        breaker.retry_after(),
        Some(Duration::from_secs(20)),
        "wait doubled"
    );

    tokio::time::advance(Duration::from_secs(20)).await;
    let _ = call(&mut service, ()).await;
    assert_eq!(
        breaker.retry_after(),
        Some(Duration::from_secs(25)),
        "capped"
    );
    assert_eq!(mock.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn automatic_transition_half_opens_without_a_call() {
    let breaker = CircuitBreaker::builder("storage")
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(5))
        .automatic_transition(true)
        .build()
        .unwrap();
    let _ = breaker
        .call(async { Err::<(), _>(MockError("down")) })
        .await;
    assert_eq!(breaker.state(), State::Open);
    tokio::time::sleep(Duration::from_millis(4999)).await;
    assert_eq!(breaker.state(), State::Open);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn half_failures_below_the_threshold_stay_closed_and_every_success_counts() {
    let breaker = CircuitBreaker::builder("storage")
        .count_window(100)
        .minimum_calls(10)
        .failure_rate_threshold(60.0)
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = breaker.layer(mock.service::<()>(
        |_| Duration::ZERO,
        |n| {
            if n % 2 == 0 {
                Ok(n)
            } else {
                Err(MockError("flaky"))
            }
        },
    ));
    let mut ok = 0;
    for _ in 0..100 {
        if call(&mut service, ()).await.is_ok() {
            ok += 1;
        }
    }
    let m = breaker.metrics();
    assert_eq!(m.state, State::Closed);
    assert_eq!(ok, 50);
    assert_eq!(m.successful_calls_total, 50);
    assert_eq!(m.failed_calls_total, 50);
    assert_eq!(m.failure_rate, Some(50.0));
    assert_eq!(m.rejected_calls_total, 0);
}

#[tokio::test(start_paused = true)]
async fn a_hundred_fast_calls_to_a_healthy_dependency_stay_closed() {
    let breaker = CircuitBreaker::builder("storage")
        .count_window(10)
        .minimum_calls(5)
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = breaker.layer(mock.healthy::<()>());
    for i in 0..100 {
        assert_eq!(call(&mut service, ()).await.unwrap(), i);
    }
    let m = breaker.metrics();
    assert_eq!(m.state, State::Closed);
    assert_eq!((m.successful_calls_total, m.buffered_calls), (100, 10));
    assert_eq!(m.failure_rate, Some(0.0));
    assert_eq!(m.transitions_total, 0);
}

#[tokio::test(start_paused = true)]
async fn metrics_and_events_are_exact() {
    let breaker = CircuitBreaker::builder("exact")
        .count_window(4)
        .minimum_calls(3)
        .failure_rate_threshold(75.0)
        .build()
        .unwrap();
    let seen = record_transitions(&breaker);
    let ok = || async { Ok::<_, MockError>(()) };
    let fail = || async { Err::<(), _>(MockError("x")) };
    breaker.call(ok()).await.unwrap();
    breaker.call(fail()).await.unwrap_err();
    let m = breaker.metrics();
    assert_eq!((m.buffered_calls, m.buffered_failed_calls), (2, 1));
    assert_eq!(
        m.failure_rate, None,
        "below minimum calls the rate does not count"
    );
    breaker.call(fail()).await.unwrap_err();
    let m = breaker.metrics();
    assert_eq!(m.state, State::Closed, "66.7% < 75%");
    assert!((m.failure_rate.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    breaker.call(fail()).await.unwrap_err();
    let m = breaker.metrics();
    assert_eq!(m.state, State::Open, "3 of 4 = 75%");
    assert_eq!((m.successful_calls_total, m.failed_calls_total), (1, 3));
    assert_eq!(m.transitions_total, 1);
    assert!(is_open(&breaker.call(ok()).await.unwrap_err()));
    assert!(is_open(&breaker.call(ok()).await.unwrap_err()));
    assert_eq!(breaker.metrics().rejected_calls_total, 2);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].breaker, "exact");
    assert_eq!(seen[0].failure_rate, Some(75.0));
    let envelope = Envelope::event(seen[0].clone());
    assert_eq!(envelope.topic(), &StateTransition::TOPIC);
    assert_eq!(envelope.payload().get::<StateTransition>(), Some(&seen[0]));
}

#[tokio::test(start_paused = true)]
async fn the_classifier_decides_what_counts() {
    let breaker = CircuitBreaker::builder("classified")
        .count_window(2)
        .minimum_calls(2)
        .classify(|e| match e.downcast_ref::<MockError>() {
            Some(MockError("not found")) => ErrorClass::Success,
            Some(MockError("cancelled")) => ErrorClass::Ignored,
            _ => ErrorClass::Failure,
        })
        .build()
        .unwrap();
    for what in ["not found", "cancelled", "not found", "cancelled"] {
        breaker
            .call(async { Err::<(), _>(MockError(what)) })
            .await
            .unwrap_err();
    }
    let m = breaker.metrics();
    assert_eq!(m.state, State::Closed);
    assert_eq!(
        (
            m.successful_calls_total,
            m.ignored_calls_total,
            m.failed_calls_total
        ),
        (2, 2, 0)
    );
    assert_eq!(m.buffered_calls, 2);
    for _ in 0..2 {
        breaker
            .call(async { Err::<(), _>(MockError("boom")) })
            .await
            .unwrap_err();
    }
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_breaker() {
    let breaker = CircuitBreaker::builder("slow")
        .count_window(4)
        .minimum_calls(4)
        .slow_calls(Duration::from_secs(1), 50.0)
        .build()
        .unwrap();
    let seen = record_transitions(&breaker);
    let mock = Mock::new();
    let mut service = breaker.layer(mock.service::<()>(
        |n| {
            if n % 2 == 0 {
                Duration::from_millis(10)
            } else {
                Duration::from_secs(2)
            }
        },
        Ok,
    ));
    for _ in 0..3 {
        call(&mut service, ()).await.unwrap();
    }
    assert_eq!(breaker.state(), State::Closed);
    call(&mut service, ()).await.unwrap();
    let m = breaker.metrics();
    assert_eq!(m.state, State::Open);
    assert_eq!((m.slow_calls_total, m.successful_calls_total), (2, 4));
    assert_eq!(
        seen.lock().unwrap()[0].reason,
        TransitionReason::SlowCallRate
    );
}

#[tokio::test(start_paused = true)]
async fn operator_states_force_open_disable_and_metrics_only() {
    let breaker = CircuitBreaker::builder("ops")
        .count_window(1)
        .minimum_calls(1)
        .build()
        .unwrap();
    let fail = || async { Err::<(), _>(MockError("x")) };

    breaker.force_open();
    let err = breaker
        .call(async { Ok::<_, MockError>(()) })
        .await
        .unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!((open.state, open.retry_after), (State::ForcedOpen, None));
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(
        breaker.state(),
        State::ForcedOpen,
        "only an operator closes it"
    );

    breaker.disable();
    for _ in 0..5 {
        breaker.call(fail()).await.unwrap_err();
    }
    assert_eq!(breaker.state(), State::Disabled);
    assert_eq!(
        breaker.metrics().failed_calls_total,
        0,
        "disabled records nothing"
    );

    breaker.metrics_only();
    for _ in 0..5 {
        breaker.call(fail()).await.unwrap_err();
    }
    let m = breaker.metrics();
    assert_eq!(
        (m.state, m.failed_calls_total, m.failure_rate),
        (State::MetricsOnly, 5, Some(100.0))
    );

    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
    breaker.call(fail()).await.unwrap_err();
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_time_window_forgets_old_calls() {
    let breaker = CircuitBreaker::builder("timed")
        .time_window(10)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    for _ in 0..3 {
        breaker
            .call(async { Err::<(), _>(MockError("x")) })
            .await
            .unwrap_err();
    }
    assert_eq!(breaker.metrics().buffered_calls, 3);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(breaker.metrics().buffered_calls, 0, "expired");
    breaker
        .call(async { Err::<(), _>(MockError("x")) })
        .await
        .unwrap_err();
    assert_eq!(
        breaker.state(),
        State::Closed,
        "one recent call is under the minimum"
    );
    for _ in 0..3 {
        breaker
            .call(async { Err::<(), _>(MockError("x")) })
            .await
            .unwrap_err();
    }
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_trial_gives_its_permit_back() {
    let breaker = CircuitBreaker::builder("trial")
        .count_window(1)
        .minimum_calls(1)
        .permitted_calls_in_half_open(1)
        .wait_in_open(Duration::from_secs(1))
        .build()
        .unwrap();
    breaker
        .call(async { Err::<(), _>(MockError("x")) })
        .await
        .unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;
    let permit = breaker.try_acquire().unwrap();
    assert_eq!(breaker.state(), State::HalfOpen);
    let err = breaker.try_acquire().unwrap_err();
    assert_eq!((err.state, err.retry_after), (State::HalfOpen, None));
    drop(permit);
    let permit = breaker.try_acquire().expect("the trial came back");
    permit.record_outcome(ErrorClass::Success);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn calls_admitted_before_a_transition_do_not_count_as_trials() {
    let breaker = CircuitBreaker::builder("stale")
        .count_window(1)
        .minimum_calls(1)
        .permitted_calls_in_half_open(1)
        .wait_in_open(Duration::from_secs(1))
        .build()
        .unwrap();
    let early = breaker.try_acquire().unwrap();
    breaker
        .call(async { Err::<(), _>(MockError("x")) })
        .await
        .unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;
    let trial = breaker.try_acquire().unwrap();
    early.record_outcome(ErrorClass::Success);
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "the early call is not a trial"
    );
    trial.record_outcome(ErrorClass::Failure);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn counts_from_many_threads_are_exact() {
    let breaker = CircuitBreaker::builder("threads")
        .count_window(1000)
        .minimum_calls(1000)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let done = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (breaker, done) = (breaker.clone(), done.clone());
            scope.spawn(move || {
                for i in 0..10_000 {
                    let permit = breaker.try_acquire().unwrap();
                    let class = if (i + t) % 4 == 0 {
                        ErrorClass::Failure
                    } else {
                        ErrorClass::Success
                    };
                    permit.record_outcome(class);
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let m = breaker.metrics();
    assert_eq!(done.load(Ordering::SeqCst), 4);
    assert_eq!(m.successful_calls_total + m.failed_calls_total, 40_000);
    assert_eq!(m.failed_calls_total, 10_000);
    assert_eq!(
        m.buffered_calls, 1000,
        "the window is full and its totals are consistent"
    );
    assert!(m.buffered_failed_calls <= 1000);
    assert_eq!(m.state, State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_trial_from_an_earlier_half_open_period_cannot_touch_the_next() {
    let breaker = CircuitBreaker::builder("periods")
        .count_window(1)
        .minimum_calls(1)
        .permitted_calls_in_half_open(1)
        .wait_in_open(Duration::from_secs(1))
        .build()
        .unwrap();
    breaker
        .call(async { Err::<(), _>(MockError("x")) })
        .await
        .unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;
    let old_trial = breaker.try_acquire().unwrap();
    breaker.open();
    tokio::time::advance(Duration::from_secs(1)).await;
    let new_trial = breaker.try_acquire().unwrap();
    assert_eq!(breaker.state(), State::HalfOpen);
    drop(old_trial);
    assert!(
        breaker.try_acquire().is_err(),
        "the old trial did not add a permit"
    );
    new_trial.record_outcome(ErrorClass::Success);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn hanging_trials_reopen_after_the_half_open_limit() {
    let breaker = CircuitBreaker::builder("hang")
        .count_window(1)
        .minimum_calls(1)
        .permitted_calls_in_half_open(1)
        .wait_in_open(Duration::from_secs(1))
        .max_wait_in_half_open(Duration::from_secs(5))
        .build()
        .unwrap();
    let seen = record_transitions(&breaker);
    breaker
        .call(async { Err::<(), _>(MockError("x")) })
        .await
        .unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;
    let _hanging = breaker.try_acquire().unwrap();
    tokio::time::advance(Duration::from_millis(4999)).await;
    assert_eq!(breaker.try_acquire().unwrap_err().state, State::HalfOpen);
    tokio::time::advance(Duration::from_millis(1)).await;
    let err = breaker.try_acquire().unwrap_err();
    assert_eq!(
        (err.state, err.retry_after),
        (State::Open, Some(Duration::from_secs(1)))
    );
    assert_eq!(
        seen.lock().unwrap().last().map(|t| t.reason),
        Some(TransitionReason::TrialsTimedOut)
    );
}
