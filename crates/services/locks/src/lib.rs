//! The Locks family: leased locks with fencing tokens, held in process, on
//! Redis/Valkey or in PostgreSQL, offered to the node as the `lock` service.
//!
//! Every grant carries a **fencing token** greater than every earlier grant's of
//! the same lock. A lease alone cannot stop a holder that was paused past it (a GC
//! pause, a stalled VM) from acting as if it still held the lock; the data the
//! lock guards can, by refusing a write whose token is lower than one it has
//! already seen. The DataStore does this for writes that carry
//! `fence: {lock, token}` (`plexus_store::Fence`).
//!
//! - `config`: the `[locks]` section ([`LocksConfig`]): the backend and the bounds.
//! - [`LockBackend`]: what a backend does, one step per operation;
//!   [`MemoryBackend`] (this process, `tokio::time` leases), [`RedisBackend`] (Lua
//!   scripts, one round trip each; single-instance Redis, not Redlock: see there),
//!   [`PostgresBackend`] (a table and a sequence, one statement each).
//! - [`Locks`]: what every backend is used through: input checks naming the field,
//!   waiting for a busy lock with backoff bounded by the caller's wait, typed
//!   refusals, counters; [`Locks::acquire`] gives a [`Guard`] whose watchdog
//!   extends the lease and which reports the lock lost.
//! - [`LockService`]: the `lock.*` methods (acquire, extend, release, status).
//! - [`LocksFamily`]: the [`Family`](plexus_node::family::Family) door.
//! - [`LockMetrics`]: its counters, named `plexus_locks_*`.
//! - `conformance` (feature `test-util`): the suite every backend passes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), plexus_locks::LockError> {
//! use std::time::Duration;
//! use plexus_locks::{Locks, LocksConfig};
//!
//! let locks = Locks::in_memory(LocksConfig::default());
//! let guard = locks
//!     .acquire("nightly-report", Duration::from_secs(30), Duration::ZERO, "worker-1")
//!     .await?;
//! // … work, passing guard.token() to fenced writes; stop if guard.lost() completes.
//! let first = guard.token();
//! guard.release().await?;
//! let again = locks.grant("nightly-report", Duration::from_secs(30), Duration::ZERO, "").await?;
//! assert!(again.token > first);
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! - `test-util`: the conformance suite ([`conformance`]) and its macro
//!   [`locks_conformance!`].

mod backend;
pub mod config;
mod error;
mod family;
mod guard;
mod locks;
mod memory;
mod metrics;
mod postgres;
mod redis;
mod service;

#[cfg(feature = "test-util")]
pub mod conformance;

pub use backend::{Attempt, Held, LockBackend};
pub use config::{Backend, LocksConfig};
pub use error::LockError;
pub use family::LocksFamily;
pub use guard::Guard;
pub use locks::{Grant, Locks, Status};
pub use memory::MemoryBackend;
pub use metrics::{Counts, LockMetrics, TokenOp};
pub use postgres::PostgresBackend;
pub use redis::RedisBackend;
pub use service::LockService;
