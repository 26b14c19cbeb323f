//! System health: each aggregation rule on its own, then the seed scenarios through a
//! running monitor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plexus_bus::Bus;
use plexus_core::{HealthReport, Timestamp};
use plexus_registry::health::{
    CheckError, CheckPolicy, ComponentHealth, ComponentKind, ComponentSpec, ComponentStatus,
    Criticality, HealAction, HealthEvent, HealthMonitor, MonitorConfig, SystemHealth, SystemStatus,
    check_fn,
};
use tokio::time::Instant;

use crate::support::{Scripted, Step, wait_for, wait_for_check};

const SECOND: Duration = Duration::from_secs(1);

fn component(name: &str, status: ComponentStatus, criticality: Criticality) -> ComponentHealth {
    ComponentHealth {
        component: name.to_owned(),
        kind: ComponentKind::Service,
        criticality,
        instance: None,
        status,
        detail: "disk full".to_owned(),
        latency: None,
        checks: u64::from(status != ComponentStatus::Unknown),
        check_failures: 0,
        unhealthy_reports: 0,
        consecutive_failures: 0,
        consecutive_successes: 0,
        last_outcome: None,
        last_checked: None,
        status_since: Timestamp::from_micros(0),
        healing: false,
        heal_action: Some("restart".to_owned()),
        heal_attempts: 0,
        heal_failures: 0,
        heals_since_recovery: 0,
        heal_exhausted: false,
        recoveries_healed: 0,
        recoveries_unaided: 0,
        last_recovery: None,
    }
}

fn aggregate(components: &[ComponentHealth]) -> SystemHealth {
    SystemHealth::aggregate(components, Timestamp::from_micros(0))
}

/// Asserts the status `components` aggregate to and the reason given for one of them.
fn assert_verdict(
    components: &[ComponentHealth],
    status: SystemStatus,
    (name, reason): (&str, &str),
) {
    let health = aggregate(components);
    assert_eq!(health.status, status);
    assert_eq!(health.component(name).unwrap().reason, reason);
}

use ComponentStatus::{Degraded, Healthy, Unhealthy, Unknown};
use Criticality::{Critical, Optional};

#[test]
fn nothing_to_aggregate_or_nothing_checked_is_unknown() {
    assert_eq!(aggregate(&[]).status, SystemStatus::Unknown);
    let fresh = [
        component("a", Unknown, Critical),
        component("b", Unknown, Optional),
    ];
    assert_verdict(&fresh, SystemStatus::Unknown, ("a", "not checked yet"));
}

#[test]
fn all_healthy_is_healthy() {
    let health = aggregate(&[
        component("a", Healthy, Critical),
        component("b", Healthy, Optional),
    ]);
    assert_eq!(health.status, SystemStatus::Healthy);
    assert!(health.components.iter().all(|v| v.reason == "healthy"));
}

#[test]
fn a_critical_component_unhealthy_is_critical_and_outweighs_everything() {
    let mut healing = component("c", Unhealthy, Optional);
    healing.healing = true;
    let health = aggregate(&[
        component("a", Unhealthy, Critical),
        component("b", Degraded, Optional),
        healing,
        component("d", Unknown, Optional),
    ]);
    assert_eq!(health.status, SystemStatus::Critical);
    let a = health.component("a").unwrap();
    assert_eq!(a.verdict, SystemStatus::Critical);
    assert_eq!(a.reason, "critical component unhealthy: disk full");
}

#[test]
fn an_optional_component_unhealthy_or_any_degraded_is_degraded() {
    let optional_down = [
        component("a", Healthy, Critical),
        component("b", Unhealthy, Optional),
    ];
    let reason = ("b", "optional component unhealthy: disk full");
    assert_verdict(&optional_down, SystemStatus::Degraded, reason);
    let critical_degraded = [
        component("a", Degraded, Critical),
        component("b", Healthy, Optional),
    ];
    let reason = ("a", "degraded: disk full");
    assert_verdict(&critical_degraded, SystemStatus::Degraded, reason);
}

#[test]
fn a_component_being_healed_or_still_starting_is_transitioning() {
    let mut healing = component("a", Unhealthy, Critical);
    healing.healing = true;
    healing.heals_since_recovery = 1;
    let reason = ("a", "being healed by `restart` (attempt 2)");
    let components = [healing, component("b", Degraded, Optional)];
    assert_verdict(&components, SystemStatus::Transitioning, reason);

    let mut starting = component("s", Unknown, Optional);
    starting.checks = 2;
    let reason = ("s", "starting: 2 checks, no threshold reached yet");
    let components = [component("a", Healthy, Critical), starting];
    assert_verdict(&components, SystemStatus::Transitioning, reason);
    let health = aggregate(&[
        component("a", Healthy, Critical),
        component("n", Unknown, Critical),
    ]);
    assert_eq!(health.status, SystemStatus::Transitioning);
}

#[test]
fn system_health_serializes_for_the_health_endpoint() {
    let health = aggregate(&[
        component("b", Healthy, Critical),
        component("a", Unhealthy, Optional),
    ]);
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["components"][0]["component"], "a");
    assert_eq!(json["components"][0]["verdict"], "degraded");
    assert_eq!(json["components"][0]["criticality"], "optional");
    let back: SystemHealth = serde_json::from_value(json).unwrap();
    assert_eq!(back, health);
}

/// Collects system status changes until `last` is reached.
async fn system_changes_until(
    events: &mut plexus_registry::health::HealthWatch,
    last: SystemStatus,
) -> Vec<SystemStatus> {
    let mut seen = Vec::new();
    loop {
        let to = wait_for(events, |e| match e {
            HealthEvent::SystemChanged { to, .. } => Some(*to),
            _ => None,
        })
        .await;
        seen.push(to);
        if to == last {
            return seen;
        }
    }
}

/// A module that crashes, and a restart that brings it back after 500 ms.
struct Module {
    up: AtomicBool,
}

#[tokio::test(start_paused = true)]
async fn a_crashing_optional_module_is_restarted_and_the_system_passes_degraded_back_to_healthy() {
    let monitor = HealthMonitor::new(MonitorConfig::default(), Bus::new(), None).unwrap();
    let mut events = monitor.watch();
    let module = Arc::new(Module {
        up: AtomicBool::new(true),
    });
    let (m1, m2) = (module.clone(), module.clone());
    let check = check_fn(move || {
        let module = m1.clone();
        async move {
            if module.up.load(Ordering::SeqCst) {
                Ok(HealthReport::healthy())
            } else {
                Ok::<_, CheckError>(HealthReport::unhealthy("process exited"))
            }
        }
    });
    let restart = HealAction::restart("restart-capture", move || {
        let module = m2.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            module.up.store(true, Ordering::SeqCst);
            Ok(())
        }
    });
    let policy = CheckPolicy::default()
        .with_interval(SECOND)
        .with_thresholds(2, 1)
        .optional();
    monitor
        .add(
            ComponentSpec::new("capture", ComponentKind::Service, check)
                .with_policy(policy.clone())
                .with_heal(restart),
        )
        .unwrap();
    monitor
        .add(
            ComponentSpec::new(
                "storage",
                ComponentKind::Service,
                Scripted::new(Step::Healthy),
            )
            .with_policy(policy.critical()),
        )
        .unwrap();
    let start = system_changes_until(&mut events, SystemStatus::Healthy).await;
    assert_eq!(start.last(), Some(&SystemStatus::Healthy));
    let t0 = Instant::now();

    module.up.store(false, Ordering::SeqCst);
    let seen = system_changes_until(&mut events, SystemStatus::Healthy).await;
    assert_eq!(
        seen,
        [
            SystemStatus::Degraded,
            SystemStatus::Transitioning,
            SystemStatus::Degraded,
            SystemStatus::Healthy,
        ]
    );
    // Unhealthy at the 2nd failing check (2 s), restarted by 2.5 s, healthy at 3 s.
    assert_eq!(t0.elapsed(), 3 * SECOND);
    let capture = monitor.component("capture").unwrap();
    assert_eq!(capture.status, ComponentStatus::Healthy);
    assert_eq!(capture.heal_attempts, 1);
    let history = monitor.heal_history();
    assert_eq!(history.len(), 1);
    assert!(history[0].outcome.succeeded());
    assert_eq!(history[0].duration, Duration::from_millis(500));
    assert_eq!(monitor.system().status, SystemStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_critical_dependency_that_degrades_and_recovers_takes_the_system_through_critical() {
    let monitor = HealthMonitor::new(MonitorConfig::default(), Bus::new(), None).unwrap();
    let mut events = monitor.watch();
    let db = Scripted::new(Step::Healthy);
    let policy = CheckPolicy::default()
        .with_interval(SECOND)
        .with_thresholds(3, 2)
        .critical();
    monitor
        .add(
            ComponentSpec::new("postgres", ComponentKind::Dependency, db.clone())
                .with_policy(policy),
        )
        .unwrap();
    system_changes_until(&mut events, SystemStatus::Healthy).await;

    db.set(Step::Degraded);
    assert_eq!(
        system_changes_until(&mut events, SystemStatus::Degraded).await,
        [SystemStatus::Degraded]
    );
    db.set(Step::Error);
    assert_eq!(
        system_changes_until(&mut events, SystemStatus::Critical).await,
        [SystemStatus::Critical]
    );
    let verdict = monitor.system();
    assert_eq!(
        verdict.component("postgres").unwrap().reason,
        "critical component unhealthy: check failed: connection refused"
    );
    db.set(Step::Healthy);
    let checks_before = monitor.component("postgres").unwrap().checks;
    assert_eq!(
        system_changes_until(&mut events, SystemStatus::Healthy).await,
        [SystemStatus::Healthy]
    );
    // The success threshold of 2: healthy only at the second passing check.
    assert_eq!(
        monitor.component("postgres").unwrap().checks,
        checks_before + 2
    );
    wait_for_check(&mut events, "postgres", checks_before + 3).await;
}
