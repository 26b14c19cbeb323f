//! Load balancing: spread, health, breakers, a changing set, explanations.

use std::collections::HashMap;
use std::time::Duration;

use plexus_core::InstanceId;
use plexus_resilience::balance::{Balancer, Instance, InstanceInfo, Strategy, Unavailable};
use plexus_resilience::{BoxError, CircuitBreaker, NoInstanceAvailable, State};
use tower::util::BoxCloneSyncService;
use tower::{ServiceExt, service_fn};

use crate::support::{MockError, call};

type Svc = BoxCloneSyncService<u64, &'static str, BoxError>;

fn named(name: &'static str) -> Svc {
    BoxCloneSyncService::new(service_fn(
        move |_: u64| async move { Ok::<_, BoxError>(name) },
    ))
}

fn failing() -> Svc {
    BoxCloneSyncService::new(service_fn(|_: u64| async {
        Err::<&'static str, BoxError>(MockError("down").into())
    }))
}

fn balancer(strategy: Strategy, names: &[(&'static str, u32)]) -> Balancer<Svc> {
    let b = Balancer::new("storage", strategy);
    for &(name, weight) in names {
        b.insert(Instance::new(name, named(name)).weight(weight));
    }
    b
}

async fn spread(b: &Balancer<Svc>, calls: u64) -> HashMap<&'static str, u64> {
    let mut counts = HashMap::new();
    let mut service = b.clone();
    for i in 0..calls {
        *counts
            .entry(
                call(&mut service, i)
                    .await
                    .expect("a healthy instance answers"),
            )
            .or_insert(0) += 1;
    }
    counts
}

fn within(count: u64, expected: f64, tolerance: f64) -> bool {
    (count as f64 - expected).abs() <= expected * tolerance
}

#[tokio::test]
async fn round_robin_is_exact() {
    let b = balancer(Strategy::RoundRobin, &[("a", 1), ("b", 1), ("c", 1)]);
    let mut service = b.clone();
    let mut order = Vec::new();
    for i in 0..6 {
        order.push(call(&mut service, i).await.unwrap());
    }
    assert_eq!(order, ["a", "b", "c", "a", "b", "c"]);
    let counts = spread(&b, 300).await;
    assert_eq!((counts["a"], counts["b"], counts["c"]), (100, 100, 100));
}

#[tokio::test]
async fn weighted_follows_the_weights_within_ten_percent() {
    let b = balancer(Strategy::Weighted, &[("a", 1), ("b", 2), ("c", 3)]);
    let counts = spread(&b, 12_000).await;
    assert!(within(counts["a"], 2_000.0, 0.1), "{counts:?}");
    assert!(within(counts["b"], 4_000.0, 0.1), "{counts:?}");
    assert!(within(counts["c"], 6_000.0, 0.1), "{counts:?}");
}

#[tokio::test]
async fn least_outstanding_and_two_choices_spread_evenly() {
    for strategy in [Strategy::LeastOutstanding, Strategy::PowerOfTwoChoices] {
        let b = balancer(strategy, &[("a", 1), ("b", 1), ("c", 1)]);
        let counts = spread(&b, 6_000).await;
        for name in ["a", "b", "c"] {
            assert!(
                within(counts[name], 2_000.0, 0.15),
                "{strategy:?}: {counts:?}"
            );
        }
    }
}

#[tokio::test]
async fn least_outstanding_and_two_choices_avoid_the_busy_instance() {
    for strategy in [Strategy::LeastOutstanding, Strategy::PowerOfTwoChoices] {
        let b = balancer(strategy, &[("a", 1), ("b", 1)]);
        // Hold three calls on whichever instances they land on, then check the
        // next choices go to the less loaded one until the loads are level.
        let held: Vec<_> = (0..3).map(|_| b.pick().unwrap()).collect();
        let load = |id: &str| {
            b.instances()
                .iter()
                .find(|i| i.id.as_str() == id)
                .map_or(0, |i| i.outstanding)
        };
        let (busy, idle) = if load("a") > load("b") {
            ("a", "b")
        } else {
            ("b", "a")
        };
        assert_eq!((load(busy), load(idle)), (2, 1), "{strategy:?}");
        let next = b.pick().unwrap();
        assert_eq!(next.id.as_str(), idle, "{strategy:?}");
        drop(held);
        drop(next);
        assert_eq!(load("a") + load("b"), 0, "in-flight counts return to zero");
    }
}

#[tokio::test]
async fn consistent_hash_keeps_keys_on_their_instance_and_moves_few() {
    let b: Balancer<Svc> = Balancer::consistent_hash("storage", |key: &u64| *key);
    for name in ["a", "b", "c"] {
        b.insert(Instance::new(name, named(name)));
    }
    let mut service = b.clone();
    let mut owner = HashMap::new();
    for key in 0..3_000u64 {
        owner.insert(key, call(&mut service, key).await.unwrap());
    }
    for key in 0..100u64 {
        assert_eq!(
            call(&mut service, key).await.unwrap(),
            owner[&key],
            "stable"
        );
    }
    let mut per = HashMap::new();
    for name in owner.values() {
        *per.entry(*name).or_insert(0u64) += 1;
    }
    for name in ["a", "b", "c"] {
        assert!(within(per[name], 1_000.0, 0.35), "{per:?}");
    }
    assert!(b.remove(&InstanceId::new("b")));
    for key in 0..3_000u64 {
        let now = call(&mut service, key).await.unwrap();
        if owner[&key] != "b" {
            assert_eq!(
                now, owner[&key],
                "key {key} moved though its instance stayed"
            );
        } else {
            assert_ne!(now, "b");
        }
    }
}

#[tokio::test]
async fn an_unhealthy_instance_is_skipped_and_comes_back() {
    let b = balancer(Strategy::RoundRobin, &[("a", 1), ("b", 1), ("c", 1)]);
    assert!(b.set_healthy(&"b".into(), false));
    let counts = spread(&b, 90).await;
    assert_eq!(counts.get("b"), None);
    assert_eq!(counts["a"] + counts["c"], 90);
    b.set_healthy(&"b".into(), true);
    let counts = spread(&b, 90).await;
    assert_eq!(counts["b"], 30);
}

/// Concurrent callers share the turn counter: each call must still look at every
/// instance once, so a call never fails while one instance is available (it did
/// when turns interleaved and a call probed the unavailable one twice).
#[test]
fn concurrent_calls_always_find_the_available_instance() {
    let b = balancer(Strategy::RoundRobin, &[("down", 1), ("up", 1)]);
    assert!(b.set_healthy(&"down".into(), false));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let mut failed = 0;
                    for i in 0..20_000u64 {
                        if b.clone().oneshot(i).await.is_err() {
                            failed += 1;
                        }
                    }
                    failed
                })
            })
        })
        .collect();
    let failed: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(failed, 0, "calls failed with an available instance");
}

#[tokio::test(start_paused = true)]
async fn an_instance_whose_breaker_opened_is_no_longer_chosen() {
    let breaker = CircuitBreaker::builder("storage-b")
        .count_window(3)
        .minimum_calls(3)
        .permitted_calls_in_half_open(1)
        .wait_in_open(Duration::from_secs(30))
        .build()
        .unwrap();
    let b: Balancer<_> = Balancer::new("storage", Strategy::RoundRobin);
    b.insert(Instance::guarded(
        "a",
        named("a"),
        &CircuitBreaker::builder("storage-a").build().unwrap(),
    ));
    b.insert(Instance::guarded("b", failing(), &breaker));
    let mut service = b.clone();
    let mut b_calls = 0;
    for i in 0..60 {
        if call(&mut service, i).await.is_err() {
            b_calls += 1;
        }
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        b_calls, 3,
        "b was chosen until its breaker opened, then never"
    );

    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(
        breaker.is_call_permitted(),
        "after the wait b is tried again"
    );
    let tried: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..2 {
            v.push(call(&mut service, i).await.is_err());
        }
        v
    };
    assert!(tried.contains(&true), "a trial went to b");
    assert_eq!(breaker.state(), State::Open, "the failed trial reopened it");
}

#[tokio::test(start_paused = true)]
async fn when_none_is_left_the_error_says_why() {
    let b: Balancer<Svc> = Balancer::new("storage", Strategy::PowerOfTwoChoices);
    let err = b.clone().oneshot(1).await.unwrap_err();
    let none = err.downcast_ref::<NoInstanceAvailable>().unwrap();
    assert!(none.reasons.is_empty());
    assert_eq!(
        err.to_string(),
        "no instance available for storage: none registered"
    );

    let breaker = CircuitBreaker::builder("b")
        .count_window(1)
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(5))
        .build()
        .unwrap();
    b.insert(Instance::new("a", named("a")));
    b.insert(
        Instance::new("b", BoxCloneSyncService::new(breaker.layer(failing())))
            .watch_breaker(&breaker),
    );
    b.set_healthy(&"a".into(), false);
    let _ = breaker.call(async { Err::<(), _>(MockError("x")) }).await;
    let err = b.clone().oneshot(1).await.unwrap_err();
    let none = err.downcast_ref::<NoInstanceAvailable>().unwrap();
    assert_eq!(
        none.reasons,
        vec![
            (InstanceId::new("a"), Unavailable::Unhealthy),
            (
                InstanceId::new("b"),
                Unavailable::BreakerOpen {
                    retry_after: Some(Duration::from_secs(5))
                }
            ),
        ]
    );
    assert_eq!(
        err.to_string(),
        "no instance available for storage: a unhealthy, b breaker open (trial in 5s)"
    );
}

#[tokio::test]
async fn the_set_changes_while_calls_run() {
    let b = balancer(Strategy::RoundRobin, &[("a", 1)]);
    b.insert(Instance::new("b", named("b")));
    let counts = spread(&b, 10).await;
    assert_eq!((counts["a"], counts["b"]), (5, 5));
    b.insert(Instance::new("a", named("b")).weight(3));
    let info: Vec<InstanceInfo> = b.instances();
    assert_eq!(info.len(), 2, "an insert with a known id replaces");
    assert!(b.remove(&"a".into()));
    assert!(!b.remove(&"a".into()));
    assert_eq!(spread(&b, 4).await["b"], 4);
}

/// A standby takes calls only while no other instance is available, with every
/// strategy: the others share the calls, the standby gets them all when they are
/// out, and none once one is back.
#[tokio::test]
async fn a_standby_takes_calls_only_while_no_other_instance_is_available() {
    for strategy in [
        Strategy::RoundRobin,
        Strategy::Weighted,
        Strategy::LeastOutstanding,
        Strategy::PowerOfTwoChoices,
    ] {
        let b = balancer(strategy, &[("a", 1), ("b", 1)]);
        b.insert(Instance::new("remote", named("remote")).standby());
        let counts = spread(&b, 40).await;
        assert_eq!(counts.get("remote"), None, "{strategy:?}: {counts:?}");
        assert_eq!(counts.len(), 2, "{strategy:?}: {counts:?}");

        b.set_healthy(&"a".into(), false);
        b.set_healthy(&"b".into(), false);
        assert_eq!(spread(&b, 10).await, HashMap::from([("remote", 10)]));

        b.set_healthy(&"b".into(), true);
        assert_eq!(spread(&b, 10).await, HashMap::from([("b", 10)]));
    }
    // Consistent hashing keeps a key on the ring's first instance that is not a
    // standby, and moves it to a standby only when none is left.
    let b = Balancer::<Svc>::consistent_hash("storage", |k: &u64| *k);
    b.insert(Instance::new("a", named("a")));
    b.insert(Instance::new("remote", named("remote")).standby());
    for key in 0..20u64 {
        assert_eq!(b.pick_for(key).unwrap().id.as_str(), "a");
    }
    b.set_healthy(&"a".into(), false);
    assert_eq!(b.pick_for(7u64).unwrap().id.as_str(), "remote");
}
