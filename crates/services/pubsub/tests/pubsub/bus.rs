//! The embedded backend is the bus itself: the suite with one bus for both ends.

use plexus_bus::Bus;
use plexus_pubsub::conformance::Ends;

plexus_pubsub::pubsub_conformance!(|_topics: Vec<String>| async move {
    let bus = Bus::new();
    Ends {
        a: bus.clone(),
        b: bus,
        keep: Vec::new(),
    }
});
