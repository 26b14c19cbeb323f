//! Events: every receiver sees every event, and a slow bus never holds the
//! supervisor up.

use std::time::Duration;

use plexus_bus::{Bus, Overflow, SubscribeOptions};
use plexus_supervisor::{Supervisor, SupervisorConfig};

use crate::support::{Log, Recorder};

#[tokio::test]
async fn a_bus_subscriber_that_does_not_read_does_not_hold_the_supervisor_up() {
    let bus = Bus::new();
    // One slot, and a publisher that finds it full waits an hour.
    let _stuck = bus
        .subscribe(
            "plexus.supervisor.>",
            SubscribeOptions::new()
                .capacity(1)
                .overflow(Overflow::Block {
                    timeout: Duration::from_secs(3600),
                }),
        )
        .unwrap();
    let log = Log::default();
    let services = Recorder::many(&["a", "b", "c"], &log);
    let sup = Supervisor::builder("root")
        .intensity(10, Duration::from_secs(60))
        .children(services.iter().map(|s| s.spec()))
        .bus(bus)
        .config(SupervisorConfig {
            bus_queue_capacity: 1,
            ..SupervisorConfig::default()
        })
        .build()
        .unwrap();
    let mut events = sup.events();
    let handle = sup.start().await.unwrap();
    for _ in 0..5 {
        let info = tokio::time::timeout(
            Duration::from_secs(10),
            handle.report_failure("b", "unhealthy"),
        )
        .await
        .expect("the supervisor answered without waiting for the bus")
        .unwrap();
        assert_eq!(info.state, plexus_supervisor::ChildState::Running);
    }
    assert_eq!(handle.child("b").unwrap().restarts, 5);

    // 3 starts and 5 × (exit, restart): 13 events. At most one reached the
    // subscriber, one waits in the blocked publish and one in the queue.
    let mut seen = 0;
    while let Ok(event) = events.try_recv() {
        assert_eq!(event.supervisor(), "root");
        seen += 1;
    }
    assert_eq!(seen, 13);
    let unpublished = handle.unpublished_events();
    assert!((10..=12).contains(&unpublished), "{unpublished}");
}
