//! Checks: exact counts, thresholds both ways, timeouts, and check errors told apart
//! from components that report themselves unhealthy.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use plexus_bus::Bus;
use plexus_core::{
    CallContext, HealthReport, HealthState, ServiceDescriptor, ServiceError, ServiceStatus,
    async_trait,
};
use plexus_registry::RegistryChange;
use plexus_registry::health::{
    CheckError, CheckFailure, CheckOutcome, CheckPolicy, ComponentHealth, ComponentKind,
    ComponentSpec, ComponentStatus, FailureResponse, HealAction, HealthError, HealthEvent,
    HealthMonitor, HealthWatch, MonitorConfig, check_fn,
};
use serde_json::Value;
use tokio::time::Instant;

use crate::support::{
    Scripted, Step, descriptor, next_change, register, registry, wait_for, wait_for_check, within,
};

const SECOND: Duration = Duration::from_secs(1);

fn monitor() -> HealthMonitor {
    HealthMonitor::new(MonitorConfig::default(), Bus::new(), None).unwrap()
}

/// A policy checking every second, thresholds as given.
fn every_second(failures: u32, successes: u32) -> CheckPolicy {
    CheckPolicy::default()
        .with_interval(SECOND)
        .with_timeout(SECOND / 2)
        .with_thresholds(failures, successes)
}

/// Adds component `name` with a scripted check, healthy at first and afterwards run
/// only on demand (the interval is an hour); check errors and Unhealthy reports get
/// the given responses. Waits for the first check.
async fn add_on_demand(
    (monitor, events): (&HealthMonitor, &mut HealthWatch),
    (name, kind): (&str, ComponentKind),
    (on_check_error, on_unhealthy): (FailureResponse, FailureResponse),
    heal: HealAction,
) -> Scripted {
    let check = Scripted::new(Step::Healthy);
    let policy = every_second(2, 1)
        .with_interval(Duration::from_secs(3600))
        .on_check_error(on_check_error)
        .on_unhealthy(on_unhealthy);
    monitor
        .add(
            ComponentSpec::new(name, kind, check.clone())
                .with_policy(policy)
                .with_heal(heal),
        )
        .unwrap();
    wait_for_check(events, name, 1).await;
    check
}

/// Checks `name` twice, now, and returns its health after the second.
async fn check_twice(monitor: &HealthMonitor, name: &str) -> ComponentHealth {
    monitor.check_now(name).await.unwrap();
    monitor.check_now(name).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn checks_run_at_once_then_exactly_once_per_interval() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let check = Scripted::new(Step::Healthy);
    let start = Instant::now();
    monitor
        .add(
            ComponentSpec::new("db", ComponentKind::Client, check.clone())
                .with_policy(every_second(3, 1)),
        )
        .unwrap();
    for n in 1..=5u32 {
        wait_for_check(&mut events, "db", u64::from(n)).await;
        assert_eq!(
            start.elapsed(),
            (n - 1) * SECOND,
            "check {n} ran at the wrong instant"
        );
        assert_eq!(check.calls(), u64::from(n));
        assert_eq!(monitor.component("db").unwrap().checks, u64::from(n));
    }
    // Exactly 5 checks in the first 4 intervals, none more before the 5th interval ends.
    tokio::time::advance(SECOND / 2).await;
    assert_eq!(check.calls(), 5);
    let db = monitor.component("db").unwrap();
    assert_eq!(db.status, ComponentStatus::Healthy);
    assert_eq!((db.check_failures, db.unhealthy_reports), (0, 0));
    assert_eq!(db.latency, Some(Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn status_changes_only_after_the_thresholds_both_ways() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let check = Scripted::new(Step::Healthy);
    monitor
        .add(
            ComponentSpec::new("api", ComponentKind::Dependency, check.clone())
                .with_policy(every_second(3, 2).with_interval(Duration::from_secs(3600))),
        )
        .unwrap();
    wait_for_check(&mut events, "api", 1).await;
    // One success of the two needed: still unknown.
    assert_eq!(
        monitor.component("api").unwrap().status,
        ComponentStatus::Unknown
    );
    let second = monitor.check_now("api").await.unwrap();
    assert_eq!(second.status, ComponentStatus::Healthy);

    check.set(Step::Unhealthy);
    for n in 1..=2 {
        let h = monitor.check_now("api").await.unwrap();
        assert_eq!(h.status, ComponentStatus::Healthy, "after {n} failures");
        assert_eq!(h.consecutive_failures, n);
    }
    let third = monitor.check_now("api").await.unwrap();
    assert_eq!(third.status, ComponentStatus::Unhealthy);
    assert_eq!(third.detail, "reports itself down");

    check.set(Step::Healthy);
    let once = monitor.check_now("api").await.unwrap();
    assert_eq!(once.status, ComponentStatus::Unhealthy);
    assert_eq!(
        (once.consecutive_successes, once.consecutive_failures),
        (1, 0)
    );
    let twice = monitor.check_now("api").await.unwrap();
    assert_eq!(twice.status, ComponentStatus::Healthy);
    assert_eq!(twice.checks, 7);

    // A success in the middle of failures starts the count again.
    check.set(Step::Unhealthy);
    monitor.check_now("api").await.unwrap();
    monitor.check_now("api").await.unwrap();
    check.set(Step::Healthy);
    monitor.check_now("api").await.unwrap();
    check.set(Step::Unhealthy);
    monitor.check_now("api").await.unwrap();
    let h = monitor.check_now("api").await.unwrap();
    assert_eq!(h.status, ComponentStatus::Healthy);
    assert_eq!(h.consecutive_failures, 2);

    // Status changes were announced, once each.
    let mut changes = Vec::new();
    while let Some(Ok(event)) = events.next().now_or_never_flat() {
        if let HealthEvent::StatusChanged { from, to, .. } = event {
            changes.push((from, to));
        }
    }
    assert_eq!(
        changes,
        [
            (ComponentStatus::Unknown, ComponentStatus::Healthy),
            (ComponentStatus::Healthy, ComponentStatus::Unhealthy),
            (ComponentStatus::Unhealthy, ComponentStatus::Healthy),
        ]
    );
}

/// `next()` if an item is ready now, `None` if not.
trait NowOrNever {
    type Item;
    fn now_or_never_flat(self) -> Option<Self::Item>;
}

impl<F: std::future::Future<Output = Option<T>>, T> NowOrNever for F {
    type Item = T;
    fn now_or_never_flat(self) -> Option<T> {
        futures::FutureExt::now_or_never(self).flatten()
    }
}

#[tokio::test(start_paused = true)]
async fn a_degraded_report_passes_but_sets_degraded() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let check = Scripted::new(Step::Degraded);
    monitor
        .add(
            ComponentSpec::new("disk", ComponentKind::Dependency, check.clone())
                .with_policy(every_second(2, 1)),
        )
        .unwrap();
    wait_for_check(&mut events, "disk", 1).await;
    let h = monitor.component("disk").unwrap();
    assert_eq!(h.status, ComponentStatus::Degraded);
    assert_eq!(h.detail, "slow disk");
    assert_eq!(h.consecutive_successes, 1);
    check.set(Step::Healthy);
    wait_for_check(&mut events, "disk", 2).await;
    assert_eq!(
        monitor.component("disk").unwrap().status,
        ComponentStatus::Healthy
    );
}

#[tokio::test(start_paused = true)]
async fn a_check_that_runs_past_its_timeout_is_a_check_failure() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let check = Scripted::new(Step::Slow(Duration::from_secs(5)));
    let policy = CheckPolicy::default()
        .with_interval(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(2))
        .with_thresholds(1, 1)
        .on_check_error(FailureResponse::MarkUnhealthy);
    let start = Instant::now();
    monitor
        .add(ComponentSpec::new("slow", ComponentKind::Dependency, check).with_policy(policy))
        .unwrap();
    let (outcome, latency) = wait_for(&mut events, |e| match e {
        HealthEvent::CheckCompleted {
            outcome, latency, ..
        } => Some((outcome.clone(), *latency)),
        _ => None,
    })
    .await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(latency, Duration::from_secs(2));
    assert_eq!(
        outcome,
        CheckOutcome::CheckFailed {
            failure: CheckFailure::Timeout {
                after: Duration::from_secs(2)
            }
        }
    );
    let h = monitor.component("slow").unwrap();
    assert!(h.last_outcome.unwrap().is_check_failure());
    assert_eq!((h.check_failures, h.unhealthy_reports), (1, 0));
    assert_eq!(h.status, ComponentStatus::Unhealthy);
    assert_eq!(h.detail, "check timed out after 2s");
    // The next check starts one interval after the first began, not after it ended.
    wait_for_check(&mut events, "slow", 2).await;
    assert_eq!(start.elapsed(), Duration::from_secs(12));
}

#[tokio::test(start_paused = true)]
async fn a_check_error_and_an_unhealthy_report_follow_their_own_policies() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let heals = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = heals.clone();
    let heal = HealAction::custom("reset", move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    });
    // Check errors say nothing about the component; an Unhealthy report heals.
    let check = add_on_demand(
        (&monitor, &mut events),
        ("worker", ComponentKind::Custom),
        (FailureResponse::Ignore, FailureResponse::Heal),
        heal,
    )
    .await;

    check.set(Step::Error);
    for _ in 0..5 {
        monitor.check_now("worker").await.unwrap();
    }
    let h = monitor.component("worker").unwrap();
    assert_eq!(
        h.status,
        ComponentStatus::Healthy,
        "ignored errors change nothing"
    );
    assert_eq!((h.check_failures, h.consecutive_failures), (5, 0));
    assert_eq!(h.detail, "check failed: connection refused");
    assert_eq!(
        h.last_outcome,
        Some(CheckOutcome::CheckFailed {
            failure: CheckFailure::Error {
                message: "connection refused".into()
            }
        })
    );
    assert_eq!(heals.load(std::sync::atomic::Ordering::SeqCst), 0);

    check.set(Step::Unhealthy);
    let h = check_twice(&monitor, "worker").await;
    assert_eq!(h.status, ComponentStatus::Unhealthy);
    assert_eq!(h.unhealthy_reports, 2);
    assert_eq!(
        h.last_outcome,
        Some(CheckOutcome::Reported {
            state: HealthState::Unhealthy
        })
    );
    assert_eq!(heals.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(h.heal_attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn the_opposite_policies_degrade_on_errors_and_never_heal_reports() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let check = add_on_demand(
        (&monitor, &mut events),
        ("cache", ComponentKind::Client),
        (
            FailureResponse::MarkDegraded,
            FailureResponse::MarkUnhealthy,
        ),
        HealAction::restart("restart", || async { Ok(()) }),
    )
    .await;

    check.set(Step::Error);
    let h = check_twice(&monitor, "cache").await;
    assert_eq!(h.status, ComponentStatus::Degraded);

    check.set(Step::Unhealthy);
    let h = check_twice(&monitor, "cache").await;
    assert_eq!(h.status, ComponentStatus::Unhealthy);

    // Errors do not make an unhealthy component look better.
    check.set(Step::Error);
    let h = check_twice(&monitor, "cache").await;
    assert_eq!(h.status, ComponentStatus::Unhealthy);
    assert_eq!((h.check_failures, h.unhealthy_reports), (4, 2));
    assert_eq!(h.heal_attempts, 0, "neither policy heals");
    assert!(monitor.heal_history().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_check_that_panics_is_a_check_failure_and_the_monitor_goes_on() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let check = check_fn(move || {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if n == 0 {
                panic!("bug in the check");
            }
            Ok::<_, CheckError>(HealthReport::healthy())
        }
    });
    monitor
        .add(
            ComponentSpec::new("buggy", ComponentKind::Custom, check)
                .with_policy(every_second(3, 1)),
        )
        .unwrap();
    wait_for_check(&mut events, "buggy", 2).await;
    let h = monitor.component("buggy").unwrap();
    assert_eq!(h.check_failures, 1);
    assert_eq!(h.status, ComponentStatus::Healthy);
}

/// A service whose health the test switches.
struct Switchable {
    healthy: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl plexus_core::Service for Switchable {
    fn descriptor(&self) -> ServiceDescriptor {
        descriptor("storage", "storage-1")
    }

    async fn call(&self, _: &str, _: Value, _: CallContext) -> Result<Value, ServiceError> {
        Ok(Value::Null)
    }

    async fn health(&self) -> Result<HealthReport, ServiceError> {
        if self.healthy.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(HealthReport::healthy())
        } else {
            Err(ServiceError::unavailable("disk gone"))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_service_component_writes_its_status_into_the_registry() {
    let (registry, bus) = registry();
    register(&registry, "storage", "storage-1").await;
    let mut changes = registry.watch();
    let monitor =
        HealthMonitor::new(MonitorConfig::default(), bus, Some(registry.clone())).unwrap();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let service = Arc::new(Switchable {
        healthy: healthy.clone(),
    });
    monitor
        .add(ComponentSpec::service(service).with_policy(every_second(2, 1)))
        .unwrap();
    let status = |change: RegistryChange| match change {
        RegistryChange::StatusChanged {
            from, to, reason, ..
        } => (from, to, reason),
        other => panic!("expected StatusChanged, got {other:?}"),
    };
    let start = Instant::now();
    assert_eq!(
        status(next_change(&mut changes).await),
        (ServiceStatus::Starting, ServiceStatus::Healthy, None)
    );
    let component = monitor.component("storage-1").unwrap();
    assert_eq!(component.kind, ComponentKind::Service);
    assert_eq!(component.instance, Some("storage-1".into()));

    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    let (from, to, reason) = status(next_change(&mut changes).await);
    assert_eq!(
        (from, to),
        (ServiceStatus::Healthy, ServiceStatus::Unhealthy)
    );
    assert_eq!(
        reason.as_deref(),
        Some("check failed: unavailable: disk gone")
    );
    // Checks at 0 s (healthy), then failures at 1 s and 2 s: the threshold of 2.
    assert_eq!(start.elapsed(), 2 * SECOND);
    assert!(registry.routable(&"storage".into()).is_empty());

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, to, _) = status(next_change(&mut changes).await);
    assert_eq!(to, ServiceStatus::Healthy);
    assert_eq!(registry.routable(&"storage".into()).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn bad_components_and_configuration_are_refused_with_the_reason() {
    let monitor = monitor();
    let ok = || ComponentSpec::new("db", ComponentKind::Client, Scripted::new(Step::Healthy));
    monitor.add(ok()).unwrap();
    assert_eq!(
        monitor.add(ok()).unwrap_err(),
        HealthError::DuplicateComponent {
            component: "db".into()
        }
    );
    let zero = ComponentSpec::new("x", ComponentKind::Client, Scripted::new(Step::Healthy))
        .with_policy(CheckPolicy::default().with_thresholds(0, 1));
    match monitor.add(zero).unwrap_err() {
        HealthError::InvalidPolicy {
            component, field, ..
        } => assert_eq!((component.as_str(), field), ("x", "failure_threshold")),
        other => panic!("expected InvalidPolicy, got {other:?}"),
    }
    let no_interval = ComponentSpec::new("y", ComponentKind::Client, Scripted::new(Step::Healthy))
        .with_policy(CheckPolicy::default().with_interval(Duration::ZERO));
    assert!(matches!(
        monitor.add(no_interval).unwrap_err(),
        HealthError::InvalidPolicy {
            field: "interval",
            ..
        }
    ));
    assert_eq!(
        monitor.check_now("nope").await.unwrap_err(),
        HealthError::UnknownComponent {
            component: "nope".into()
        }
    );

    let small = HealthMonitor::new(
        MonitorConfig {
            max_components: 1,
            ..MonitorConfig::default()
        },
        Bus::new(),
        None,
    )
    .unwrap();
    small.add(ok()).unwrap();
    assert_eq!(
        small
            .add(ComponentSpec::new(
                "z",
                ComponentKind::Client,
                Scripted::new(Step::Healthy)
            ))
            .unwrap_err(),
        HealthError::TooManyComponents { limit: 1 }
    );
    let bad_config = MonitorConfig {
        event_capacity: 0,
        ..MonitorConfig::default()
    };
    assert!(matches!(
        HealthMonitor::new(bad_config, Bus::new(), None).unwrap_err(),
        HealthError::InvalidConfig {
            field: "event_capacity",
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn removing_a_component_or_dropping_the_monitor_stops_its_checks() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let kept = Scripted::new(Step::Healthy);
    let removed = Scripted::new(Step::Healthy);
    monitor
        .add(
            ComponentSpec::new("kept", ComponentKind::Client, kept.clone())
                .with_policy(every_second(1, 1)),
        )
        .unwrap();
    monitor
        .add(
            ComponentSpec::new("gone", ComponentKind::Client, removed.clone())
                .with_policy(every_second(1, 1)),
        )
        .unwrap();
    wait_for_check(&mut events, "gone", 2).await;
    let last = monitor.remove("gone").unwrap();
    assert_eq!(last.checks, 2);
    wait_for_check(&mut events, "kept", 6).await;
    assert_eq!(removed.calls(), 2);
    assert!(monitor.component("gone").is_none());

    drop(monitor);
    assert!(
        within(events.next()).await.is_none(),
        "the event stream ends with the monitor"
    );
    let calls = kept.calls();
    let quiet = tokio::time::timeout(10 * SECOND, std::future::pending::<()>()).await;
    assert!(quiet.is_err());
    assert_eq!(
        kept.calls(),
        calls,
        "no check ran after the monitor was dropped"
    );
}
