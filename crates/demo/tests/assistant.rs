//! The seed scenario: the eight-module desktop assistant on the bus, checked from
//! the outside by an observer that records every event on `assistant.>`.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use plexus_bus::{Bus, Overflow, SubscribeOptions};
use plexus_core::{Envelope, Event, Priority, Topic};
use plexus_demo::assistant::*;

const CAPTURED: u64 = 100_000;

/// Events the observer saw, by topic, as stage records.
async fn observe(bus: &Bus) -> tokio::task::JoinHandle<HashMap<String, Vec<StageRecord>>> {
    let mut all = bus
        .subscribe(
            "assistant.>",
            SubscribeOptions::new()
                .name("observer")
                .capacity(4096)
                .overflow(Overflow::Block {
                    timeout: Duration::from_secs(60),
                }),
        )
        .unwrap();
    tokio::spawn(async move {
        let mut seen: HashMap<String, Vec<StageRecord>> = HashMap::new();
        while let Some(e) = all.recv().await {
            seen.entry(e.topic().to_string())
                .or_default()
                .push(StageRecord::of(&e));
        }
        seen
    })
}

fn topic_of<E: Event>() -> String {
    E::TOPIC.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_sees_every_event_once_with_an_unbroken_chain() {
    let bus = Bus::with_config(bus_config()).unwrap();
    let observer = observe(&bus).await;
    let config = PipelineConfig {
        captured: CAPTURED,
        publishers: 4,
        ..PipelineConfig::default()
    };
    let assistant = Assistant::start(&bus, &config).await.unwrap();
    let elapsed = assistant
        .capture(CAPTURED, config.publishers, |_| {})
        .await
        .unwrap();
    let report = assistant.report(elapsed, config.publishers);
    let shutdown = assistant.stop().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(60), observer)
        .await
        .unwrap()
        .unwrap();

    // What the observer saw, stage by stage, independently of the modules' own logs.
    let flow = [
        topic_of::<ActivityCaptured>(),
        topic_of::<ActivityStored>(),
        topic_of::<ActivityAnalyzed>(),
        topic_of::<PointsAwarded>(),
        topic_of::<AssistantReplied>(),
        topic_of::<FigureAnimated>(),
    ];
    let logs: Vec<Vec<StageRecord>> = flow.iter().map(|t| seen[t].clone()).collect();
    for (topic, log) in flow.iter().zip(&logs) {
        assert_eq!(log.len() as u64, CAPTURED, "{topic}");
    }
    assert_eq!(check_chain(CAPTURED, &logs), ChainCheck::default());

    // What the modules measured themselves.
    assert_eq!(report.captured, CAPTURED);
    for (stage, count) in &report.stages.0 {
        assert_eq!(*count, CAPTURED, "stage {stage}");
    }
    assert_eq!(
        report.stages.0.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        STAGES
    );
    assert_eq!(
        (report.lost, report.duplicated, report.chain_broken),
        (0, 0, 0)
    );
    assert!(report.events_per_s > 0.0);

    // The control traffic: all eight modules started, answered their own health
    // ping, and stopped; the figurine got the setting, the alert and every achievement.
    assert_eq!(report.modules_started, 8);
    assert_eq!(report.health_checks, 8);
    assert_eq!(report.config_changes, 1);
    assert_eq!(report.alerts, 1);
    assert_eq!(report.achievements, CAPTURED / 10_000);
    assert_eq!(seen[&topic_of::<ModuleStopped>()].len(), 8);
    assert!(
        shutdown.undelivered.is_empty(),
        "{:?}",
        shutdown.undelivered.len()
    );
    assert_eq!(bus.stats().handler_failures, 0);

    // Twelve message types reached the observer. HealthPing is addressed to one
    // service at a time, so an observer with no member identity must not see it (the
    // eight answered pings above show it reached each module), and HealthPong
    // travels as the replies to those requests.
    let topics: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    assert!(!topics.contains(topic_of::<HealthPing>().as_str()));
    for t in [
        topic_of::<ModuleStarted>(),
        topic_of::<ConfigChanged>(),
        topic_of::<AchievementUnlocked>(),
        topic_of::<SystemAlert>(),
        topic_of::<ShutdownRequested>(),
    ] {
        assert!(topics.contains(t.as_str()), "{t} not seen");
    }
    assert_eq!(topics.len(), 12, "{topics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_alert_overtakes_a_full_normal_lane() {
    let bus = Bus::with_config(bus_config()).unwrap();
    let config = PipelineConfig {
        captured: 500,
        publishers: 2,
        ..PipelineConfig::default()
    };
    let assistant = Assistant::start(&bus, &config).await.unwrap();
    // A second figurine instance that is busy elsewhere: its lanes hold 64 events and
    // it has not read any.
    let mut busy = bus
        .subscribe(
            "assistant.>",
            SubscribeOptions::new()
                .member(plexus_core::Member::new(
                    "cutefigurine-2",
                    "CuteFigurine",
                    "presentation",
                ))
                .capacity(64)
                .overflow(Overflow::DropOldest),
        )
        .unwrap();
    assistant.capture(500, 2, |_| {}).await.unwrap();
    let backlog = busy.stats();
    assert_eq!(backlog.queued_by_lane[1], 64, "the Normal lane is full");
    assert!(backlog.dropped > 0);

    let alert = Envelope::event(SystemAlert {
        reason: "overheating".into(),
    })
    .with_target(plexus_core::Target::Service("CuteFigurine".into()));
    let alert_id = alert.id();
    // The run's own "battery low" alert may already wait in the Critical lane.
    let critical_before = backlog.queued_by_lane[3];
    bus.publish(alert).await.unwrap();
    for _ in 0..critical_before {
        assert_eq!(busy.recv().await.unwrap().priority(), Priority::Critical);
    }
    let first = busy.recv().await.unwrap();
    assert_eq!(first.id(), alert_id, "ahead of all 64 queued Normal events");
    assert_eq!(first.topic(), &<SystemAlert as Event>::TOPIC);
    // Then the backlog: High (achievements) first, then the 64 Normal events.
    let rest: Vec<_> = std::iter::from_fn(|| busy.try_recv()).collect();
    let normal = rest
        .iter()
        .filter(|e| e.priority() == Priority::Normal)
        .count();
    assert_eq!(normal, 64);
    drop(busy);
    assistant.stop().await.unwrap();
}

#[tokio::test]
async fn run_pipeline_measures_a_small_run() {
    let config = PipelineConfig {
        captured: 1_003,
        publishers: 3,
        ..PipelineConfig::default()
    };
    let seen = std::sync::atomic::AtomicU64::new(0);
    let report = run_pipeline(&config, |done| {
        seen.fetch_max(done, std::sync::atomic::Ordering::Relaxed);
    })
    .await
    .unwrap();
    assert_eq!(report.captured, 1_003, "uneven shares still add up");
    assert_eq!(
        (report.lost, report.duplicated, report.chain_broken),
        (0, 0, 0)
    );
    assert_eq!(report.undelivered_at_shutdown, 0);
    assert_eq!(report.dead_letters, 0);
    assert_eq!(seen.into_inner(), 1_003, "progress reached the end");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["stages"]["CuteFigurine"], 1_003);
    assert_eq!(json["lost"], 0);
    // Each module is a registered service whose health check pings it over the bus.
    let modules = json["modules"].as_array().unwrap();
    let names: Vec<&str> = modules
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, plexus_demo::assistant::MODULES);
    assert!(
        modules.iter().all(|m| m["status"] == "healthy"),
        "{modules:?}"
    );
    assert_eq!(json["system_health"], "healthy");
    let _ = Topic::from_static("assistant.unused");
}
