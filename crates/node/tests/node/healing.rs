//! End to end, read back from the metrics exposition: a dependency fails, the breaker
//! opens, the health check marks the instance Unhealthy, the heal action restarts it,
//! it recovers and the breaker closes. Also: a client that loses its connection is
//! reconnected by its heal action, and a supervised child process killed with SIGKILL
//! is started again.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plexus_core::{CallContext, HealthReport};
use plexus_node::metrics::{Format, sample};
use plexus_node::{Node, ServiceOptions};
use plexus_registry::health::{
    CheckError, CheckPolicy, ComponentKind, ComponentSpec, ComponentStatus, HealAction,
    HealthEvent, check_fn,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn failure_breaker_health_heal_recovery_all_show_in_the_metrics() {
    let db = Module::new("db", "db-1");
    let policy = calls(json!({"default": {
        "breaker": {"window": {"kind": "count", "size": 4}, "minimum_calls": 4,
                    "failure_rate_threshold": 50, "wait_in_open_ms": 20000,
                    "max_wait_in_open_ms": 20000, "permitted_calls_in_half_open": 1},
        "retry": {"max_attempts": 1}
    }}));
    let node = Node::builder("e2e")
        .calls(policy)
        .service_with(
            db.clone(),
            ServiceOptions::default().with_health(
                CheckPolicy::default()
                    .with_interval(Duration::from_secs(5))
                    .with_thresholds(2, 1),
            ),
        )
        .start()
        .await
        .unwrap();
    let mut health = node.health().watch();
    let work = || node.call("db.work", json!({"n": 1}), CallContext::new());
    let labels =
        |outcome: &'static str| [("service", "db"), ("method", "work"), ("outcome", outcome)];
    let state = |s: &'static str| [("service", "db"), ("instance", "db-1"), ("state", s)];

    // 1. Serving.
    for _ in 0..3 {
        work().await.unwrap();
    }
    assert_eq!(metric(&node, "plexus_calls_total", &labels("ok")), 3.0);
    assert_eq!(metric(&node, "plexus_breaker_state", &state("closed")), 1.0);

    // 2. Its dependency fails: two failures make half of the 4-call window and
    // open the breaker, which then refuses calls without reaching the instance.
    db.crash();
    for _ in 0..4 {
        assert!(work().await.is_err());
    }
    assert_eq!(
        metric(&node, "plexus_calls_total", &labels("unavailable")),
        2.0
    );
    assert_eq!(
        metric(&node, "plexus_calls_total", &labels("circuit_open")),
        2.0
    );
    assert_eq!(metric(&node, "plexus_breaker_state", &state("open")), 1.0);
    assert_eq!(db.calls(), 5);

    // 3. Its health check fails twice: Unhealthy. 4. The heal action restarts it.
    component_becomes(&node, &mut health, "db-1", ComponentStatus::Unhealthy).await;
    component_becomes(&node, &mut health, "db-1", ComponentStatus::Healthy).await;
    let component = [("component", "db-1")];
    assert_eq!(
        metric(&node, "plexus_health_heal_attempts_total", &component),
        1.0
    );
    assert_eq!(
        metric(
            &node,
            "plexus_health_status",
            &[("component", "db-1"), ("status", "healthy")]
        ),
        1.0
    );
    assert!(metric(&node, "plexus_health_checks_total", &component) >= 3.0);
    // db-1 and the node's own services (`node`, `plexus`).
    assert_eq!(
        metric(&node, "plexus_registry_instances", &[("status", "healthy")]),
        3.0
    );

    // 5. Once the breaker's wait is over, a trial call succeeds and it closes.
    tokio::time::advance(Duration::from_secs(21)).await;
    work().await.unwrap();
    assert_eq!(metric(&node, "plexus_breaker_state", &state("closed")), 1.0);
    assert_eq!(metric(&node, "plexus_calls_total", &labels("ok")), 4.0);
    // The breaker's own counters: 3 + 1 successes, 2 failures recorded.
    let by = |o: &'static str| [("instance", "db-1"), ("outcome", o)];
    assert_eq!(
        metric(&node, "plexus_breaker_calls_total", &by("success")),
        4.0
    );
    assert_eq!(
        metric(&node, "plexus_breaker_calls_total", &by("failure")),
        2.0
    );
    // The same figures in OpenMetrics.
    let open = node.metrics().render(Format::OpenMetrics);
    assert_eq!(
        sample(&open, "plexus_calls_total", &labels("ok")),
        Some(4.0)
    );
    assert!(open.ends_with("# EOF\n"));
}

/// A client of a line-echo server: `ping` writes a line and reads it back.
struct Client {
    addr: std::net::SocketAddr,
    stream: tokio::sync::Mutex<Option<TcpStream>>,
    connects: Mutex<u32>,
}

impl Client {
    async fn connect(&self) -> Result<(), String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        *self.stream.lock().await = Some(stream);
        *self.connects.lock() += 1;
        Ok(())
    }

    async fn ping(&self) -> Result<(), String> {
        let mut guard = self.stream.lock().await;
        let stream = guard.as_mut().ok_or("not connected")?;
        stream
            .write_all(b"ping\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        if &buf != b"ping\n" {
            return Err("garbled".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_client_that_lost_its_connection_is_reconnected_by_its_heal_action() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The server echoes; the first connection is cut after one exchange.
    let (cut_tx, cut_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut cut = Some(cut_rx);
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let cut = cut.take();
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                if let Some(cut) = cut {
                    socket.read_exact(&mut buf).await.unwrap();
                    socket.write_all(&buf).await.unwrap();
                    let _ = cut.await;
                    return; // drop: the connection is gone
                }
                while socket.read_exact(&mut buf).await.is_ok() {
                    if socket.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let client = Arc::new(Client {
        addr,
        stream: tokio::sync::Mutex::new(None),
        connects: Mutex::new(0),
    });
    client.connect().await.unwrap();
    let check = {
        let client = client.clone();
        check_fn(move || {
            let client = client.clone();
            async move {
                client.ping().await.map_err(CheckError::new)?;
                Ok(HealthReport::healthy())
            }
        })
    };
    let heal = {
        let client = client.clone();
        HealAction::reconnect("reconnect", move || {
            let client = client.clone();
            async move { client.connect().await }
        })
    };
    let node = Node::builder("client")
        .component(
            ComponentSpec::new("db-client", ComponentKind::Client, check)
                .with_policy(
                    CheckPolicy::default()
                        .with_interval(Duration::from_millis(50))
                        .with_thresholds(1, 1),
                )
                .with_heal(heal),
        )
        .start()
        .await
        .unwrap();
    let mut watch = node.health().watch();
    let healthy = |e: &HealthEvent| match e {
        HealthEvent::StatusChanged {
            to: ComponentStatus::Healthy,
            ..
        } => Some(()),
        _ => None,
    };
    wait_for(&mut watch, "first healthy check", healthy).await;
    cut_tx.send(()).unwrap();
    wait_for(&mut watch, "reconnect attempt", |e| match e {
        HealthEvent::HealAttempted { attempt } if attempt.outcome.succeeded() => Some(()),
        _ => None,
    })
    .await;
    wait_for(&mut watch, "healthy again", healthy).await;
    assert_eq!(*client.connects.lock(), 2);
    client.ping().await.unwrap();
    let c = node.health().component("db-client").unwrap();
    assert!(c.check_failures >= 1, "{c:?}");
    assert_eq!(c.heal_attempts, 1);
}

#[tokio::test]
async fn a_supervised_child_process_killed_with_sigkill_is_started_again() {
    let spec = plexus_supervisor::ProcessSpec::new("/bin/sh")
        .arg("-c")
        .arg("echo figurine driver up; exec tail -f /dev/null");
    let node = Node::builder("children")
        .process(
            "figurine-driver",
            spec,
            plexus_supervisor::Restart::Permanent,
        )
        .start()
        .await
        .unwrap();
    let mut events = node.supervisor().events();
    let first = node
        .supervisor()
        .child("figurine-driver")
        .unwrap()
        .pid
        .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let restarted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.unwrap() {
                plexus_supervisor::SupervisorEvent::ChildRestarted { child, pid, .. }
                    if child == "figurine-driver" =>
                {
                    return pid.unwrap();
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the child was not restarted within 10 s");
    assert_ne!(restarted, first);
    let info = node.supervisor().child("figurine-driver").unwrap();
    assert_eq!((info.restarts, info.pid), (1, Some(restarted)));
    let report = node.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.services.order(), ["figurine-driver"]);
}

#[tokio::test(start_paused = true)]
async fn a_check_that_errors_and_a_component_that_reports_unhealthy_follow_their_own_policies() {
    use plexus_registry::health::{CheckOutcome, FailureResponse};
    // `probe` cannot be asked (its check errors): the policy only degrades it.
    // `sick` answers that it is unhealthy: the policy heals it.
    let probe = Module::new("probe", "probe-1");
    let sick = Module::new("sick", "sick-1");
    let policy = CheckPolicy::default()
        .with_interval(Duration::from_secs(10))
        .with_thresholds(3, 1)
        .on_check_error(FailureResponse::MarkDegraded)
        .on_unhealthy(FailureResponse::Heal)
        .optional();
    let node = Node::builder("policies")
        .service_with(
            probe.clone(),
            ServiceOptions::default().with_health(policy.clone()),
        )
        .service_with(sick.clone(), ServiceOptions::default().with_health(policy))
        .start()
        .await
        .unwrap();
    let mut watch = node.health().watch();
    wait_for(&mut watch, "both healthy", |_| {
        let all = node.health().components();
        all.iter()
            .all(|c| c.status == ComponentStatus::Healthy)
            .then_some(())
    })
    .await;
    probe.set_health(Health::CheckErrors);
    sick.cured_by_restart
        .store(false, std::sync::atomic::Ordering::SeqCst);
    sick.set_health(Health::Unhealthy("disk full"));
    // Three more intervals: exactly three more checks each, reaching both thresholds.
    // (Each check is awaited by its number, so waiting never lets time run on.)
    let before = [
        node.health().component("probe-1").unwrap().checks,
        node.health().component("sick-1").unwrap().checks,
    ];
    let mut counts = before;
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(10)).await;
        for (i, name) in ["probe-1", "sick-1"].into_iter().enumerate() {
            counts[i] += 1;
            let target = counts[i];
            wait_for(&mut watch, "a check", |e| match e {
                HealthEvent::CheckCompleted {
                    component, checks, ..
                } if component == name && *checks == target => Some(()),
                _ => None,
            })
            .await;
        }
    }
    let probe_h = node.health().component("probe-1").unwrap();
    let sick_h = node.health().component("sick-1").unwrap();
    assert_eq!(
        [probe_h.checks, sick_h.checks],
        [before[0] + 3, before[1] + 3]
    );
    assert!(
        matches!(probe_h.last_outcome, Some(CheckOutcome::CheckFailed { .. })),
        "{probe_h:?}"
    );
    assert_eq!(probe_h.status, ComponentStatus::Degraded);
    assert_eq!(
        (
            probe_h.check_failures,
            probe_h.unhealthy_reports,
            probe_h.heal_attempts
        ),
        (3, 0, 0)
    );
    assert!(
        matches!(sick_h.last_outcome, Some(CheckOutcome::Reported { .. })),
        "{sick_h:?}"
    );
    assert_eq!(sick_h.status, ComponentStatus::Unhealthy);
    assert_eq!((sick_h.check_failures, sick_h.unhealthy_reports), (0, 3));
    assert!(sick_h.heal_attempts >= 1);
    assert_eq!(
        node.supervisor().child("sick-1").unwrap().restarts as u64,
        sick_h.heal_attempts
    );
    assert_eq!(node.supervisor().child("probe-1").unwrap().restarts, 0);
}
