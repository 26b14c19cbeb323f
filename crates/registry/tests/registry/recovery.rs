//! Recoveries recorded truthfully: a database checked every 10 s that comes back
//! between checks is healed by a heal retried on its backoff (not at the next
//! check), and the recovery is recorded as the heal's; one that comes back after
//! the heals ran out is recorded as having passed a check on its own. Both show in
//! the component's record, the heal history, the events and on the bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plexus_bus::{Bus, SubscribeOptions};
use plexus_core::HealthReport;
use plexus_registry::health::{
    COMPONENT_HEADER, CheckError, CheckPolicy, ComponentKind, ComponentSpec, ComponentStatus,
    HealAction, HealOutcome, HealPolicy, HealthEvent, HealthMonitor, HealthWatch, MonitorConfig,
    Recovery, RecoveryCause, check_fn,
};
use tokio::time::Instant;

use crate::support::{wait_for, wait_for_check};

const SECOND: Duration = Duration::from_secs(1);

/// A database that is up or down, checked by a ping and healed by a reconnect that
/// works only when it is up (or never, when `heal_helps` is false).
struct Database {
    up: AtomicBool,
    heal_helps: bool,
}

fn database_component(db: &Arc<Database>, heal: HealPolicy) -> ComponentSpec {
    let (c, h) = (db.clone(), db.clone());
    let check = check_fn(move || {
        let db = c.clone();
        async move {
            if db.up.load(Ordering::SeqCst) {
                Ok(HealthReport::healthy())
            } else {
                Err(CheckError::new("connection refused"))
            }
        }
    });
    let reconnect = HealAction::reconnect("reconnect", move || {
        let db = h.clone();
        async move {
            if db.heal_helps && db.up.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("connection refused".to_owned())
            }
        }
    });
    // The node's defaults: a check every 10 s, Unhealthy after 3 failures.
    ComponentSpec::new("database", ComponentKind::Dependency, check)
        .with_policy(CheckPolicy::default().with_heal(heal))
        .with_heal(reconnect)
}

/// Waits for heal attempt `n` to end; returns when (since `start`) and how.
async fn attempt(events: &mut HealthWatch, start: Instant, n: u32) -> (Duration, HealOutcome) {
    wait_for(events, |e| match e {
        HealthEvent::HealAttempted { attempt } if attempt.attempt == n => {
            Some((start.elapsed(), attempt.outcome.clone()))
        }
        _ => None,
    })
    .await
}

async fn recovered(events: &mut HealthWatch) -> Recovery {
    wait_for(events, |e| match e {
        HealthEvent::Recovered {
            component,
            recovery,
        } if component == "database" => Some(recovery.clone()),
        _ => None,
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_heal_retried_on_its_backoff_brings_the_database_back_and_is_recorded_as_the_cause() {
    let bus = Bus::new();
    let mut sub = bus
        .subscribe("plexus.health.recovered", SubscribeOptions::new())
        .unwrap();
    let monitor = HealthMonitor::new(MonitorConfig::default(), bus, None).unwrap();
    let mut events = monitor.watch();
    let db = Arc::new(Database {
        up: AtomicBool::new(true),
        heal_helps: true,
    });
    let start = Instant::now();
    // The default heal policy: 5 attempts, 1 s backoff doubling.
    monitor
        .add(database_component(&db, HealPolicy::default()))
        .unwrap();
    wait_for_check(&mut events, "database", 1).await;
    db.up.store(false, Ordering::SeqCst);

    // Failing checks at 10, 20 and 30 s: Unhealthy, the first reconnect at once,
    // then retries 1 s and 2 s after the one before, without waiting for a check.
    let refused = HealOutcome::Failed {
        error: "connection refused".into(),
    };
    assert_eq!(
        attempt(&mut events, start, 1).await,
        (30 * SECOND, refused.clone())
    );
    assert_eq!(
        attempt(&mut events, start, 2).await,
        (31 * SECOND, refused.clone())
    );
    assert_eq!(attempt(&mut events, start, 3).await, (33 * SECOND, refused));
    assert_eq!(monitor.component("database").unwrap().checks, 4);

    // The database comes back at 33 s: the retry at 37 s (4 s later) reconnects,
    // and the check that follows it at once passes, before the 40 s check.
    db.up.store(true, Ordering::SeqCst);
    assert_eq!(
        attempt(&mut events, start, 4).await,
        (37 * SECOND, HealOutcome::Succeeded)
    );
    let recovery = recovered(&mut events).await;
    assert_eq!(start.elapsed(), 37 * SECOND);
    assert_eq!(
        recovery.cause,
        RecoveryCause::Healed {
            action: "reconnect".into(),
            attempt: 4
        }
    );
    assert_eq!((recovery.down_for, recovery.heal_attempts), (7 * SECOND, 4));

    let h = monitor.component("database").unwrap();
    assert_eq!(h.status, ComponentStatus::Healthy);
    assert_eq!((h.recoveries_healed, h.recoveries_unaided), (1, 0));
    assert_eq!(h.last_recovery.as_ref(), Some(&recovery));
    assert_eq!((h.heal_attempts, h.heal_failures), (4, 3));
    assert_eq!((h.checks, h.check_failures), (5, 3));
    assert_eq!((h.heals_since_recovery, h.heal_exhausted), (0, false));
    // The heal history says which attempt brought it back.
    let history: Vec<(u32, bool, bool)> = monitor
        .heal_history()
        .iter()
        .map(|a| (a.attempt, a.outcome.succeeded(), a.recovered))
        .collect();
    assert_eq!(
        history,
        [
            (1, false, false),
            (2, false, false),
            (3, false, false),
            (4, true, true)
        ]
    );

    // On the bus, with the component named, and in JSON for `node.health`.
    let envelope = sub.try_recv().expect("the recovery is published");
    assert_eq!(envelope.headers().get(COMPONENT_HEADER), Some("database"));
    let json: serde_json::Value =
        serde_json::from_slice(&envelope.payload().encode().unwrap()).unwrap();
    assert_eq!(json["event"], "recovered");
    assert_eq!(json["recovery"]["cause"], "healed");
    assert_eq!(json["recovery"]["attempt"], 4);
    assert_eq!(json["recovery"]["down_for_us"], 7_000_000);
    let record = serde_json::to_value(&h).unwrap();
    assert_eq!(record["last_recovery"]["cause"], "healed");
    assert_eq!(record["recoveries_healed"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_database_back_after_the_heals_ran_out_is_recorded_as_passing_a_check() {
    let monitor = HealthMonitor::new(MonitorConfig::default(), Bus::new(), None).unwrap();
    let mut events = monitor.watch();
    let db = Arc::new(Database {
        up: AtomicBool::new(true),
        heal_helps: false,
    });
    let start = Instant::now();
    let heal = HealPolicy {
        max_attempts: 5,
        backoff: SECOND,
        max_backoff: 2 * SECOND,
        timeout: 5 * SECOND,
    };
    monitor.add(database_component(&db, heal)).unwrap();
    wait_for_check(&mut events, "database", 1).await;
    db.up.store(false, Ordering::SeqCst);

    // Retries on the backoff, doubling and capped at 2 s, five in all.
    let mut at = Vec::new();
    for n in 1..=5 {
        at.push(attempt(&mut events, start, n).await.0);
    }
    assert_eq!(
        at,
        [30, 31, 33, 35, 37].map(|s| s * SECOND),
        "1 s, then 2 s (capped) apart"
    );
    assert!(monitor.component("database").unwrap().heal_exhausted);

    // Back at 37 s; no heal helps, and none is left: the 40 s check finds it.
    db.up.store(true, Ordering::SeqCst);
    let recovery = recovered(&mut events).await;
    assert_eq!(start.elapsed(), 40 * SECOND);
    assert_eq!(recovery.cause, RecoveryCause::CheckPassed);
    assert_eq!(
        (recovery.down_for, recovery.heal_attempts),
        (10 * SECOND, 5)
    );
    let h = monitor.component("database").unwrap();
    assert_eq!((h.recoveries_healed, h.recoveries_unaided), (0, 1));
    assert_eq!((h.heal_attempts, h.heal_failures), (5, 5));
    assert!(monitor.heal_history().iter().all(|a| !a.recovered));
    assert_eq!(monitor.heal_history().len(), 5);
}
