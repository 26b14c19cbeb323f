//! The vocabulary every Plexus part speaks.
//!
//! `plexus-core` is small and meant to change rarely: the other crates (the bus, the
//! resilience layers, the registry, the gateway) depend on it and on nothing of each
//! other's for these types.
//!
//! - [`Envelope`]: one event or request on the bus: a UUID v7 id, a [`Topic`], an
//!   optional source [`Member`], a [`Target`], a [`Priority`], correlation and
//!   causation ids, a [`Timestamp`], [`Headers`], a [`Payload`] and an optional expiry.
//! - [`Topic`] and [`TopicPattern`]: dot-separated names and NATS-style patterns
//!   (`a.*` matches one token, `a.>` one or more trailing tokens).
//! - [`Target`]: who an envelope is for: one instance, a service, a service type,
//!   everyone, or several of those.
//! - [`Event`]: a Rust type bound to a topic. In process its value travels as an
//!   `Arc<T>` and comes back as the same type with no serialization; it is encoded to
//!   JSON only when it leaves the process.
//! - [`ServiceDescriptor`] and [`Service`]: what a service declares (methods with
//!   JSON Schemas, topics, tags) and the trait an in-process service implements.
//! - [`methods`]: the template of a built-in service: typed params and results whose
//!   JSON Schemas are derived with `schemars`, and a [`methods::MethodTable`] that
//!   describes the methods and dispatches calls to typed handlers.
//! - [`Envelope::follow_up`]: the event a handler emits in reaction to another keeps
//!   the correlation id and points its causation id at the cause.
//!
//! ```
//! use plexus_core::{Envelope, Event, Priority, Topic};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, PartialEq)]
//! struct Captured { window: String }
//! impl Event for Captured {
//!     const TOPIC: Topic = Topic::from_static("assistant.captured");
//! }
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Stored { row: u64 }
//! impl Event for Stored {
//!     const TOPIC: Topic = Topic::from_static("assistant.stored");
//! }
//!
//! let cause = Envelope::event(Captured { window: "editor".into() }).with_priority(Priority::High);
//! assert_eq!(cause.payload().get::<Captured>().unwrap().window, "editor");
//!
//! let effect = cause.follow_up_event(Stored { row: 7 });
//! assert_eq!(effect.correlation_id(), cause.correlation_id());
//! assert_eq!(effect.causation_id(), Some(cause.id()));
//! ```

mod descriptor;
mod envelope;
pub mod handled;
mod headers;
mod id;
mod json;
mod member;
pub mod methods;
mod payload;
mod priority;
pub mod scope;
mod service;
mod target;
mod text;
mod time;
mod topic;

/// Re-exported so service implementations use the same `async_trait` as [`Service`].
pub use async_trait::async_trait;
pub use descriptor::{
    DescriptorError, MAX_METHODS, MAX_NAME_LEN, MAX_SCHEMA_BYTES, MethodDescriptor,
    ServiceDescriptor, ServiceStatus,
};
pub use envelope::{Envelope, WireError};
pub use handled::Handled;
pub use headers::Headers;
pub use id::{CorrelationId, EventId};
pub use json::json_len;
pub use member::{InstanceId, Member, ServiceName, ServiceType};
pub use payload::{Event, Payload, PayloadError};
pub use priority::{ParsePriorityError, Priority};
pub use service::{CallContext, CallResult, HealthReport, HealthState, Service, ServiceError};
pub use target::Target;
pub use text::clip;
pub use time::Timestamp;
pub use topic::{MAX_TOPIC_LEN, Topic, TopicError, TopicPattern};
