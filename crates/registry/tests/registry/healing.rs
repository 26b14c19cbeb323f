//! Heal actions: when they run, how often, what is recorded, and what is published.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use plexus_bus::{Bus, SubscribeOptions};
use plexus_core::HealthReport;
use plexus_registry::health::{
    COMPONENT_HEADER, CheckError, CheckPolicy, ComponentKind, ComponentSpec, ComponentStatus,
    HealAction, HealAttempt, HealKind, HealOutcome, HealPolicy, HealthEvent, HealthMonitor,
    MonitorConfig, check_fn,
};
use tokio::time::Instant;

use crate::support::{Scripted, Step, wait_for, wait_for_check};

const SECOND: Duration = Duration::from_secs(1);

fn monitor() -> HealthMonitor {
    HealthMonitor::new(MonitorConfig::default(), Bus::new(), None).unwrap()
}

async fn next_attempt(events: &mut plexus_registry::health::HealthWatch) -> HealAttempt {
    wait_for(events, |e| match e {
        HealthEvent::HealAttempted { attempt } => Some(attempt.clone()),
        _ => None,
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn heal_attempts_back_off_stop_at_the_limit_and_start_afresh_after_recovery() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let check = Scripted::new(Step::Unhealthy);
    let policy = CheckPolicy::default()
        .with_interval(SECOND)
        .with_thresholds(1, 1)
        .with_heal(HealPolicy {
            max_attempts: 3,
            backoff: 2 * SECOND,
            max_backoff: 8 * SECOND,
            timeout: 10 * SECOND,
        });
    let heal = HealAction::restart("restart-worker", || async {
        Err("still broken".to_owned())
    });
    let start = Instant::now();
    monitor
        .add(
            ComponentSpec::new("worker", ComponentKind::Service, check.clone())
                .with_policy(policy)
                .with_heal(heal),
        )
        .unwrap();

    // Checks every second, all failing: attempts at 0 s, then 2 s and 4 s after
    // the one before (the next check at or after the backoff).
    let mut instants = Vec::new();
    for n in 1..=3 {
        let attempt = next_attempt(&mut events).await;
        assert_eq!(attempt.attempt, n);
        assert_eq!(attempt.kind, HealKind::Restart);
        assert_eq!(attempt.action, "restart-worker");
        assert_eq!(
            attempt.outcome,
            HealOutcome::Failed {
                error: "still broken".into()
            }
        );
        instants.push(start.elapsed());
    }
    assert_eq!(instants, [Duration::ZERO, 2 * SECOND, 6 * SECOND]);

    // Twenty more failing checks: no fourth attempt.
    wait_for_check(&mut events, "worker", 27).await;
    let h = monitor.component("worker").unwrap();
    assert_eq!((h.heal_attempts, h.heal_failures), (3, 3));
    assert!(h.heal_exhausted);
    assert_eq!(h.status, ComponentStatus::Unhealthy);
    assert_eq!(monitor.heal_history().len(), 3);
    let at: Vec<u64> = monitor
        .heal_history()
        .iter()
        .map(|a| a.at.as_micros())
        .collect();
    assert_eq!((at[1] - at[0], at[2] - at[1]), (2_000_000, 4_000_000));

    // Recovery resets the count: the next failure heals again at once.
    check.set(Step::Healthy);
    wait_for_check(&mut events, "worker", 28).await;
    let h = monitor.component("worker").unwrap();
    assert_eq!(h.status, ComponentStatus::Healthy);
    assert_eq!((h.heals_since_recovery, h.heal_exhausted), (0, false));
    check.set(Step::Unhealthy);
    let fourth = next_attempt(&mut events).await;
    assert_eq!(fourth.attempt, 1);
    assert_eq!(start.elapsed(), 28 * SECOND);
    assert_eq!(monitor.component("worker").unwrap().heal_attempts, 4);
}

/// A client whose connection drops; reconnecting fails `refusals` times first.
struct FlakyClient {
    connected: AtomicBool,
    refusals: AtomicU32,
    reconnects: AtomicU32,
}

impl FlakyClient {
    async fn ping(&self) -> Result<HealthReport, CheckError> {
        if self.connected.load(Ordering::SeqCst) {
            Ok(HealthReport::healthy())
        } else {
            Err(CheckError::new("connection reset by peer"))
        }
    }

    async fn reconnect(&self) -> Result<(), String> {
        self.reconnects.fetch_add(1, Ordering::SeqCst);
        // Dialing takes time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if self.refusals.load(Ordering::SeqCst) > 0 {
            self.refusals.fetch_sub(1, Ordering::SeqCst);
            return Err("connection refused".into());
        }
        self.connected.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_loses_its_connection_is_reconnected_by_its_heal_action() {
    let client = Arc::new(FlakyClient {
        connected: AtomicBool::new(true),
        refusals: AtomicU32::new(1),
        reconnects: AtomicU32::new(0),
    });
    let monitor = monitor();
    let mut events = monitor.watch();
    let (c1, c2) = (client.clone(), client.clone());
    let check = check_fn(move || {
        let client = c1.clone();
        async move { client.ping().await }
    });
    let reconnect = HealAction::reconnect("reconnect-db", move || {
        let client = c2.clone();
        async move { client.reconnect().await }
    });
    let policy = CheckPolicy::default()
        .with_interval(SECOND)
        .with_thresholds(2, 1)
        .with_heal(HealPolicy {
            backoff: SECOND,
            ..HealPolicy::default()
        });
    monitor
        .add(
            ComponentSpec::new("db", ComponentKind::Client, check)
                .with_policy(policy)
                .with_heal(reconnect),
        )
        .unwrap();
    wait_for_check(&mut events, "db", 1).await;
    assert_eq!(
        monitor.component("db").unwrap().status,
        ComponentStatus::Healthy
    );

    client.connected.store(false, Ordering::SeqCst);
    let first = next_attempt(&mut events).await;
    assert_eq!(first.kind, HealKind::Reconnect);
    assert_eq!(first.duration, Duration::from_millis(300));
    assert_eq!(
        first.outcome,
        HealOutcome::Failed {
            error: "connection refused".into()
        }
    );
    let second = next_attempt(&mut events).await;
    assert_eq!(second.outcome, HealOutcome::Succeeded);
    assert_eq!(second.attempt, 2);

    let to = wait_for(&mut events, |e| match e {
        HealthEvent::StatusChanged { component, to, .. } if component == "db" => Some(*to),
        _ => None,
    })
    .await;
    assert_eq!(to, ComponentStatus::Healthy);
    let h = monitor.component("db").unwrap();
    assert_eq!((h.heal_attempts, h.heal_failures), (2, 1));
    // Failing checks at 1 s and 2 s (the threshold; the refused reconnect ends at
    // 2.3 s), 3 s (inside the 1 s backoff), 4 s (the second reconnect); 5 s passes.
    assert_eq!(h.check_failures, 4);
    assert_eq!(h.checks, 6);
    assert_eq!(client.reconnects.load(Ordering::SeqCst), 2);
    let outcomes: Vec<bool> = monitor
        .heal_history()
        .iter()
        .map(|a| a.outcome.succeeded())
        .collect();
    assert_eq!(outcomes, [false, true]);
}

#[tokio::test(start_paused = true)]
async fn a_heal_that_hangs_is_abandoned_at_its_timeout_and_one_that_panics_is_a_failure() {
    let monitor = monitor();
    let mut events = monitor.watch();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let heal = HealAction::custom("flush", move || {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            panic!("bug in the heal action");
        }
    });
    let policy = CheckPolicy::default()
        .with_interval(SECOND)
        .with_thresholds(1, 1)
        .with_heal(HealPolicy {
            timeout: 5 * SECOND,
            backoff: SECOND,
            ..HealPolicy::default()
        });
    let start = Instant::now();
    monitor
        .add(
            ComponentSpec::new(
                "queue",
                ComponentKind::Custom,
                Scripted::new(Step::Unhealthy),
            )
            .with_policy(policy)
            .with_heal(heal),
        )
        .unwrap();
    let hung = next_attempt(&mut events).await;
    assert_eq!(hung.outcome, HealOutcome::TimedOut);
    assert_eq!(hung.duration, 5 * SECOND);
    assert_eq!(start.elapsed(), 5 * SECOND);
    let panicked = next_attempt(&mut events).await;
    assert_eq!(
        panicked.outcome,
        HealOutcome::Failed {
            error: "the heal action panicked".into()
        }
    );
    // Checks waited while the heal ran: the second ran when the hung heal was
    // abandoned (5 s), inside the 1 s backoff; the third, at 6 s, healed again.
    assert_eq!(start.elapsed(), 6 * SECOND);
    assert_eq!(monitor.component("queue").unwrap().checks, 3);
}

#[tokio::test(start_paused = true)]
async fn the_heal_history_keeps_the_most_recent_attempts() {
    let monitor = HealthMonitor::new(
        MonitorConfig {
            heal_history: 2,
            ..MonitorConfig::default()
        },
        Bus::new(),
        None,
    )
    .unwrap();
    let mut events = monitor.watch();
    let policy = CheckPolicy::default()
        .with_interval(SECOND)
        .with_thresholds(1, 1)
        .with_heal(HealPolicy {
            backoff: SECOND,
            max_backoff: SECOND,
            ..HealPolicy::default()
        });
    monitor
        .add(
            ComponentSpec::new("w", ComponentKind::Custom, Scripted::new(Step::Unhealthy))
                .with_policy(policy)
                .with_heal(HealAction::custom("noop", || async { Ok(()) })),
        )
        .unwrap();
    for _ in 0..4 {
        next_attempt(&mut events).await;
    }
    let kept: Vec<u32> = monitor.heal_history().iter().map(|a| a.attempt).collect();
    assert_eq!(kept, [3, 4]);
    assert_eq!(monitor.component("w").unwrap().heal_attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn health_changes_and_heal_attempts_are_published_on_the_bus() {
    let bus = Bus::new();
    let mut sub = bus
        .subscribe("plexus.health.>", SubscribeOptions::new())
        .unwrap();
    let monitor = HealthMonitor::new(MonitorConfig::default(), bus, None).unwrap();
    let mut events = monitor.watch();
    let check = Scripted::new(Step::Healthy);
    let policy = CheckPolicy::default()
        .with_interval(SECOND)
        .with_thresholds(1, 1)
        .optional();
    monitor
        .add(
            ComponentSpec::new("cache", ComponentKind::Client, check.clone())
                .with_policy(policy)
                .with_heal(HealAction::reconnect("reconnect", || async { Ok(()) })),
        )
        .unwrap();
    wait_for_check(&mut events, "cache", 1).await;
    check.set(Step::Error);
    next_attempt(&mut events).await;

    let mut seen = Vec::new();
    while let Some(envelope) = sub.try_recv() {
        let event = envelope.payload().get::<HealthEvent>().unwrap().clone();
        let json: serde_json::Value =
            serde_json::from_slice(&envelope.payload().encode().unwrap()).unwrap();
        let component = envelope.headers().get(COMPONENT_HEADER).map(str::to_owned);
        let summary = match &event {
            HealthEvent::StatusChanged { to, .. } => format!("status {to}"),
            HealthEvent::HealStarted { attempt, .. } => format!("heal started {attempt}"),
            HealthEvent::HealAttempted { attempt } => {
                assert_eq!(json["attempt"]["outcome"]["result"], "succeeded");
                format!("heal {}", attempt.attempt)
            }
            HealthEvent::SystemChanged { to, .. } => format!("system {to}"),
            HealthEvent::Recovered { recovery, .. } => {
                format!("recovered {}", recovery.cause.as_str())
            }
            HealthEvent::CheckCompleted { .. } => panic!("check results stay off the bus"),
        };
        seen.push((envelope.topic().as_str().to_owned(), summary, component));
    }
    let topic =
        |t: &str, s: &str, c: Option<&str>| (t.to_owned(), s.to_owned(), c.map(str::to_owned));
    assert_eq!(
        seen,
        [
            topic("plexus.health.status", "status healthy", Some("cache")),
            topic("plexus.health.system", "system healthy", None),
            topic("plexus.health.status", "status unhealthy", Some("cache")),
            topic("plexus.health.system", "system degraded", None),
            topic(
                "plexus.health.heal_started",
                "heal started 1",
                Some("cache")
            ),
            topic("plexus.health.system", "system transitioning", None),
            topic("plexus.health.heal", "heal 1", Some("cache")),
            topic("plexus.health.system", "system degraded", None),
        ]
    );
    let stats = monitor.stats();
    assert_eq!((stats.published, stats.publish_failures), (8, 0));
}
