//! The Pub/Sub family's tests: the conformance suite on the bus, on Redis and on NATS, what
//! only the Redis bridge does (local topics stay local, bad messages are counted and
//! ignored, oversized events stay home), and a private Redis killed and restarted
//! (resubscription, the gap counted).

#![allow(clippy::unwrap_used)]

mod bus;
mod faults;
mod nats;
mod redis;
mod support;
