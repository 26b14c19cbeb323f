//! The in-process event bus of Plexus.
//!
//! - **Topics and targets.** Subscribe with NATS-style patterns (`orders.*` matches
//!   one token, `orders.>` the rest); an envelope's [`plexus_core::Target`] narrows
//!   delivery to an instance, a service, a service type or several; header filters
//!   narrow it further ([`HeaderFilter`]).
//! - **Priority lanes.** Every subscription has four bounded lanes and takes from the
//!   highest non-empty one, so a `Critical` event overtakes a full `Normal` lane.
//! - **Backpressure, chosen per subscription.** When a lane is full, [`Overflow`]
//!   decides: block the publisher up to a timeout, reject with a typed error, drop
//!   the oldest (counted), or dead-letter. Counters per subscription
//!   ([`SubscriptionStats`]) and per bus ([`BusStats`]) account for every event.
//! - **Expiry and dead letters.** Expired events are not delivered and are counted;
//!   events nobody subscribed to, overflowed into a dead-letter policy, or failed by
//!   a handler go to [`BusConfig::dead_letter_topic`] when one is set.
//! - **Request/reply** with a deadline ([`Bus::request`]); **handlers**
//!   ([`Bus::handle`], [`Bus::handle_event`]) whose errors and panics are counted and
//!   dead-lettered without taking anything else down.
//! - **Order.** Events from one publisher reach each subscriber in publish order,
//!   per priority lane.
//! - **Graceful shutdown** ([`Bus::shutdown`]): stop accepting, drain within a
//!   deadline, and report every accepted event that was not delivered.
//!
//! In process, payloads are never serialized: a typed event travels as an `Arc`
//! and a subscriber gets the same value back ([`plexus_core::Payload::get`]).
//!
//! Every bound (payload and header size, lane capacity, pending requests) is a field
//! of [`BusConfig`] with its default documented there.

mod bus;
mod config;
mod error;
mod gate;
mod handler;
mod queue;
mod request;
mod router;
mod shutdown;
mod subscription;

pub use bus::{
    Bus, BusStats, DEAD_LETTER_ERROR, DEAD_LETTER_REASON, DEAD_LETTER_SUBSCRIPTION,
    DEAD_LETTER_TOPIC, Receipt, SubscriptionInfo,
};
pub use config::{BusConfig, HeaderFilter, Overflow, SubscribeOptions};
pub use error::{BusError, RejectReason};
pub use handler::{HandlerHandle, IntoReply};
pub use request::{REPLY_EXPECTED, expects_reply};
pub use shutdown::{ShutdownReport, Undelivered};
pub use subscription::{Subscription, SubscriptionId, SubscriptionStats};
