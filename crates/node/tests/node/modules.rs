//! The assistant's eight modules on one node: registration, discovery, system health,
//! a crash healed by a restart, a silent module detected as stale, a saturated queue
//! that stalls nobody else, several failures at once that do not cascade.

use std::sync::Arc;
use std::time::Duration;

use plexus_bus::{Overflow, SubscribeOptions};
use plexus_core::{CallContext, Envelope, Payload, ServiceStatus, Topic};
use plexus_node::{Node, ServiceOptions};
use plexus_registry::health::{CheckPolicy, ComponentStatus, HealthEvent, SystemStatus};
use plexus_registry::{Query, RegistryChange, RegistryConfig};
use serde_json::json;

use crate::support::*;

const MODULES: [(&str, &str); 8] = [
    ("event_bus", "infrastructure"),
    ("orchestrator", "control"),
    ("storage", "persistence"),
    ("data_capture", "sensor"),
    ("analysis_engine", "analysis"),
    ("gamification", "engagement"),
    ("ai", "inference"),
    ("cute_figurine", "device"),
];

/// Checks every second; two failures make a module Unhealthy; modules are optional so
/// one down degrades the system rather than making it critical.
fn policy() -> CheckPolicy {
    CheckPolicy::default()
        .with_interval(Duration::from_secs(1))
        .with_timeout(Duration::from_millis(500))
        .with_thresholds(2, 1)
        .optional()
}

async fn assistant() -> (Node, Vec<Arc<Module>>) {
    let modules: Vec<Arc<Module>> = MODULES
        .iter()
        .map(|(name, kind)| Module::typed(name, kind, &format!("{name}-1")))
        .collect();
    let mut builder = Node::builder("assistant").registry_config(RegistryConfig {
        heartbeat_ttl: Duration::from_secs(3),
        deregister_after: Duration::from_secs(10),
        sweep_interval: Duration::from_secs(1),
        ..RegistryConfig::default()
    });
    for module in &modules {
        builder = builder.service_with(
            module.clone(),
            ServiceOptions::default().with_health(policy()),
        );
    }
    (builder.start().await.unwrap(), modules)
}

async fn system_becomes(
    node: &Node,
    watch: &mut plexus_registry::health::HealthWatch,
    want: SystemStatus,
) {
    if node.system_health().status == want {
        return;
    }
    wait_for(watch, &format!("system {want:?}"), |e| match e {
        HealthEvent::SystemChanged { to, .. } if *to == want => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn eight_modules_register_are_discoverable_and_healthy() {
    let (node, _modules) = assistant().await;
    let mut watch = node.health().watch();
    system_becomes(&node, &mut watch, SystemStatus::Healthy).await;

    let all = node.registry().discover(&Query::new().tag("assistant"));
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(|r| r.status == ServiceStatus::Healthy));
    for (name, kind) in MODULES {
        let by_name = node.registry().discover(&Query::new().name(name));
        assert_eq!(by_name.len(), 1, "{name}");
        let by_type = node.registry().discover(&Query::new().service_type(kind));
        assert_eq!(by_type[0].descriptor.name.as_str(), name);
        let answer = node
            .call(&format!("{name}.work"), json!({"n": 1}), CallContext::new())
            .await
            .unwrap();
        assert_eq!(answer["instance"], format!("{name}-1"));
    }
    let capable = node
        .registry()
        .discover(&Query::new().method("work").status(ServiceStatus::Healthy));
    assert_eq!(capable.len(), 8);
    let health = node.system_health();
    assert_eq!(health.components.len(), 8);
    assert!(
        health
            .components
            .iter()
            .all(|c| c.status == ComponentStatus::Healthy)
    );
}

#[tokio::test(start_paused = true)]
async fn a_crashed_module_is_restarted_and_the_system_recovers() {
    let (node, modules) = assistant().await;
    let mut watch = node.health().watch();
    system_becomes(&node, &mut watch, SystemStatus::Healthy).await;
    let ai = &modules[6];
    let mut registry = node.registry().watch();

    ai.crash();
    let mut seen = Vec::new();
    let mut system = Vec::new();
    wait_for(&mut watch, "ai healthy again", |e| {
        match e {
            HealthEvent::StatusChanged { component, to, .. } if component == "ai-1" => {
                seen.push(*to);
                return (*to == ComponentStatus::Healthy).then_some(());
            }
            HealthEvent::SystemChanged { to, .. } => system.push(*to),
            _ => {}
        }
        None
    })
    .await;
    assert_eq!(seen, [ComponentStatus::Unhealthy, ComponentStatus::Healthy]);
    assert!(system.contains(&SystemStatus::Degraded), "{system:?}");
    system_becomes(&node, &mut watch, SystemStatus::Healthy).await;

    // Restarted once by the supervisor (start counted at boot and at the restart).
    assert_eq!(ai.starts.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(ai.stops.load(std::sync::atomic::Ordering::SeqCst), 1);
    let attempts = node.health().heal_history();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].outcome.succeeded());
    assert_eq!(node.supervisor().child("ai-1").unwrap().restarts, 1);

    // The registry saw the instance go Unhealthy and come back.
    let mut statuses = Vec::new();
    while let Ok(Some(Ok(change))) =
        tokio::time::timeout(Duration::ZERO, futures::StreamExt::next(&mut registry)).await
    {
        if let RegistryChange::StatusChanged { instance, to, .. } = change
            && instance.as_str() == "ai-1"
        {
            statuses.push(to);
        }
    }
    assert!(statuses.contains(&ServiceStatus::Unhealthy), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&ServiceStatus::Healthy));
    node.call("ai.work", json!({"n": 2}), CallContext::new())
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_module_that_stops_heartbeating_is_detected_as_stale() {
    let (node, _modules) = assistant().await;
    // A figurine driver that lives outside the node, heartbeating on its own.
    let driver = Module::typed("figurine_driver", "device", "figurine-driver-1");
    let id = attach_healthy(&node, &driver).await;
    let mut changes = node.registry().watch();
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(2)).await;
        node.registry().heartbeat(&id).await.unwrap();
    }
    assert_eq!(
        node.registry().get(&id).unwrap().status,
        ServiceStatus::Healthy
    );
    // It goes silent: after the TTL the sweeper marks it stale, then deregisters it.
    let stale_at = tokio::time::Instant::now();
    let stale = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(change)) = futures::StreamExt::next(&mut changes).await {
            if let RegistryChange::Stale { instance, .. } = &change
                && *instance == id
            {
                return tokio::time::Instant::now();
            }
        }
        panic!("watch ended")
    })
    .await
    .unwrap();
    let after = stale - stale_at;
    assert!(
        after >= Duration::from_secs(3) && after <= Duration::from_secs(4),
        "{after:?}"
    );
    assert_eq!(
        node.registry().get(&id).unwrap().status,
        ServiceStatus::Unhealthy
    );
    // The in-process modules kept heartbeating through all of it.
    let healthy = node
        .registry()
        .discover(&Query::new().tag("assistant").status(ServiceStatus::Healthy));
    assert_eq!(healthy.len(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_saturated_module_queue_stalls_no_other_module() {
    let (node, _modules) = assistant().await;
    let bus = node.bus();
    // Gamification never reads its queue; it sheds the oldest events when full.
    let stuck = bus
        .subscribe(
            "assistant.>",
            SubscribeOptions::new()
                .capacity(16)
                .overflow(Overflow::DropOldest)
                .name("gamification"),
        )
        .unwrap();
    let mut analysis = bus
        .subscribe(
            "assistant.>",
            SubscribeOptions::new().capacity(4096).name("analysis"),
        )
        .unwrap();
    let topic = Topic::new("assistant.captured").unwrap();
    for i in 0..1000u32 {
        bus.publish(Envelope::new(
            topic.clone(),
            Payload::json(&json!({"i": i})).unwrap(),
        ))
        .await
        .unwrap();
    }
    let mut got = 0;
    while analysis.try_recv().is_some() {
        got += 1;
    }
    assert_eq!(got, 1000);
    let stats = stuck.stats();
    assert_eq!((stats.queued, stats.dropped), (16, 984));
    for (name, _) in MODULES {
        node.call(&format!("{name}.work"), json!({"n": 1}), CallContext::new())
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn several_modules_failing_at_once_do_not_cascade() {
    let (node, modules) = assistant().await;
    let mut watch = node.health().watch();
    system_becomes(&node, &mut watch, SystemStatus::Healthy).await;
    let failing = [2usize, 4, 7];
    for &i in &failing {
        modules[i].crash();
    }
    // While they are down, the five others answer every call.
    for (i, (name, _)) in MODULES.iter().enumerate() {
        let result = node
            .call(&format!("{name}.work"), json!({"n": 1}), CallContext::new())
            .await;
        assert_eq!(result.is_ok(), !failing.contains(&i), "{name}: {result:?}");
    }
    let mut healed = std::collections::BTreeSet::new();
    wait_for(&mut watch, "all three healed", |e| {
        if let HealthEvent::StatusChanged {
            component,
            to: ComponentStatus::Healthy,
            ..
        } = e
        {
            healed.insert(component.clone());
        }
        (healed.len() == 3).then_some(())
    })
    .await;
    system_becomes(&node, &mut watch, SystemStatus::Healthy).await;
    for (i, module) in modules.iter().enumerate() {
        let restarts = node
            .supervisor()
            .child(&format!("{}-1", MODULES[i].0))
            .unwrap()
            .restarts;
        assert_eq!(
            restarts,
            u32::from(failing.contains(&i)),
            "{}",
            MODULES[i].0
        );
        let _ = module;
    }
    for (name, _) in MODULES {
        node.call(&format!("{name}.work"), json!({"n": 1}), CallContext::new())
            .await
            .unwrap();
    }
}
