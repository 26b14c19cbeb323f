//! The Sessions family: sessions with unguessable ids, TTLs with sliding renewal,
//! versioned data and a cap per subject, in process or on Redis/Valkey, offered to
//! the node as the `session` service, and announced on the bus when they end.
//!
//! The folder template every built-in family shares:
//!
//! - `config`: the `[sessions]` section ([`SessionsConfig`]): the backend, the
//!   bounds (TTLs, lifetime, data and subject sizes, the cap per subject and
//!   [`OnCap`], the count an embedded backend holds), the sweep.
//! - [`SessionBackend`]: what a backend does; [`MemoryBackend`] (in process, on
//!   Tokio's clock), [`SqliteBackend`] (a SQLite file: sessions survive a restart)
//!   and [`RedisBackend`] (one Lua script per operation, on the server's clock,
//!   shared by every node).
//! - [`Sessions`]: the sessions every backend is used through: ids, input checks
//!   naming the field, merges, counters, and the `session.revoked` /
//!   `session.expired` events (`{id, subject, reason}`) on the node's bus.
//! - [`SessionService`]: the `session.*` methods (create, get, touch, update,
//!   revoke, list) with JSON Schemas derived from their params.
//! - [`SessionsFamily`]: the [`Family`](plexus_node::family::Family) door.
//! - [`SessionMetrics`]: its counters, named `plexus_sessions_*`.
//! - `conformance` (feature `test-util`): the suite every backend passes.
//!
//! A session id is a bearer secret: 256 random bits; logs show its first 8
//! characters at most and metrics never carry it. The events do carry it (a
//! subscriber must know which session ended): `subscribe:session.*` is a scope to
//! grant with care.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), plexus_sessions::SessionError> {
//! use plexus_sessions::{Sessions, SessionsConfig, UpdateMode};
//! use serde_json::json;
//!
//! let sessions = Sessions::in_memory(SessionsConfig::default());
//! let session = sessions.create("user-7", Some(60_000), Some(json!({"cart": 1}))).await?;
//! sessions.touch(&session.id).await?;
//! let updated = sessions
//!     .update(&session.id, json!({"cart": 2}), UpdateMode::Merge, Some(1))
//!     .await?;
//! assert_eq!((updated.version, updated.data["cart"].clone()), (2, json!(2)));
//! assert!(sessions.revoke(&session.id).await?);
//! assert!(sessions.get(&session.id).await.is_err());
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! - `test-util`: the conformance suite ([`conformance`]) and its macro
//!   [`session_conformance!`].

mod backend;
mod clock;
pub mod config;
mod error;
mod family;
mod id;
mod memory;
mod metrics;
mod redis;
mod service;
mod sessions;
mod sqlite;

#[cfg(feature = "test-util")]
pub mod conformance;

pub use backend::{
    Cap, Created, Ended, Held, NewSession, Record, RecordPage, SessionBackend, expiry, plan_create,
};
pub use config::{Backend, OnCap, SessionsConfig};
pub use error::SessionError;
pub use family::SessionsFamily;
pub use id::{ID_LEN, is_id, new_id, short};
pub use memory::MemoryBackend;
pub use metrics::{Counted, SessionMetrics};
pub use redis::RedisBackend;
pub use service::SessionService;
pub use sessions::{EXPIRED, Page, REVOKED, Session, SessionEvent, Sessions, UpdateMode};
pub use sqlite::SqliteBackend;
