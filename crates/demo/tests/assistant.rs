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

    assert!(
        shutdown.undelivered.is_empty(),
        "{:?}",
        shutdown.undelivered.len()
    );
    assert_eq!(bus.stats().handler_failures, 0);
    assert_complete_run(CAPTURED, &seen, &report);
}

/// What a complete run of `captured` activities shows, in process or split
/// across nodes: what the observer saw, stage by stage, and what the modules
/// measured themselves.
fn assert_complete_run(
    captured: u64,
    seen: &HashMap<String, Vec<StageRecord>>,
    report: &PipelineReport,
) {
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
        assert_eq!(log.len() as u64, captured, "{topic}");
    }
    assert_eq!(check_chain(captured, &logs), ChainCheck::default());

    // What the modules measured themselves.
    assert_eq!(report.captured, captured);
    for (stage, count) in &report.stages.0 {
        assert_eq!(*count, captured, "stage {stage}");
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
    assert_eq!(report.achievements, captured / 10_000);
    assert_eq!(seen[&topic_of::<ModuleStopped>()].len(), 8);

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

/// The topics the three nodes share through NATS: all but the health pings,
/// which each node answers for its own modules.
const SHARED: [&str; 9] = [
    "assistant.capture.>",
    "assistant.storage.>",
    "assistant.analysis.>",
    "assistant.gamification.>",
    "assistant.ai.>",
    "assistant.figurine.>",
    "assistant.lifecycle.>",
    "assistant.config.>",
    "assistant.system.>",
];

/// The pipeline split across three nodes ([`three_nodes`]: every step of the flow
/// crosses from one node to another), whose buses share the assistant's topics
/// only through NATS (the test server, under a subject prefix of this test's
/// own). The observer on node 0 sees what it sees in process: every stage's
/// every event once, one correlation id per journey, each causation id the
/// previous stage's event, the control traffic complete; no bridge drops
/// anything or counts a gap. `PLEXUS_TEST_SPLIT_CAPTURED` sets the count
/// (10,000 by default: one achievement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_across_three_nodes_on_nats_the_counts_and_chains_are_those_in_process() {
    use plexus_pubsub::{Backend, Bridge, NatsConnection, PubSubConfig, PubSubMetrics};

    let captured: u64 = std::env::var("PLEXUS_TEST_SPLIT_CAPTURED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let url = std::env::var("PLEXUS_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let shared = PubSubConfig {
        backend: Backend::Nats,
        topics: SHARED.iter().map(|t| (*t).to_owned()).collect(),
        nats_url: Some(url.clone()),
        // Four publishers at full speed outrun one NATS connection: with the
        // default 4,096 the bridge drops the oldest (counted) and the run is
        // incomplete. A run that must lose nothing sizes the queue for its burst.
        queue: 1 << 16,
        subject_prefix: format!(
            "plexus.test.split{}",
            plexus_core::EventId::new().to_string().replace('-', "")
        ),
        ..PubSubConfig::default()
    };
    let mut nodes = Vec::new();
    let mut bridges = Vec::new();
    for n in 0..3 {
        let bus = Bus::with_config(bus_config()).unwrap();
        let nats = NatsConnection::connect(&url, &format!("assistant node {n}"))
            .await
            .unwrap();
        let bridge = Bridge::nats(nats, &shared, PubSubMetrics::new());
        bridge.start(&bus).unwrap();
        nodes.push(bus);
        bridges.push(bridge);
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut every = tokio::time::interval(Duration::from_millis(10));
        while !bridges.iter().all(Bridge::live) {
            every.tick().await;
        }
    })
    .await
    .expect("the three bridges subscribe");

    let observer = observe(&nodes[0]).await;
    let config = PipelineConfig {
        captured,
        publishers: 4,
        ..PipelineConfig::default()
    };
    let assistant = Assistant::start_on(&nodes, three_nodes, &config)
        .await
        .unwrap();
    let elapsed = match assistant.capture(captured, config.publishers, |_| {}).await {
        Ok(elapsed) => elapsed,
        Err(error) => {
            let counts: Vec<_> = bridges.iter().map(|b| b.metrics().snapshot()).collect();
            let report = assistant.report(Duration::from_secs(1), config.publishers);
            panic!("{error}; stages {:?}; bridges {counts:?}", report.stages);
        }
    };
    let report = assistant.report(elapsed, config.publishers);
    assistant.stop().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(60), observer)
        .await
        .unwrap()
        .unwrap();

    println!(
        "split across three nodes: {captured} journeys in {elapsed:?} ({:.0} events/s)",
        report.events_per_s
    );
    assert_complete_run(captured, &seen, &report);
    for (n, (bus, bridge)) in nodes.iter().zip(&bridges).enumerate() {
        assert_eq!(bus.stats().handler_failures, 0, "node {n}");
        let counts = bridge.metrics().snapshot();
        assert!(
            counts.published > 0 && counts.received > 0,
            "node {n}: {counts:?}"
        );
        assert_eq!(
            (
                counts.gap_messages,
                counts.dropped_overflow,
                counts.dropped_publish_failed,
                counts.dropped_bus_refused
            ),
            (0, 0, 0, 0),
            "node {n}: {counts:?}"
        );
    }
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
