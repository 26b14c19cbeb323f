//! Durability on top of the store: the durable outbox and its relay, replay, the
//! audit trail, persisted configuration history, and the store's own health check.
//!
//! - [`Outbox`]: topics declared durable ([`Outbox::declare_durable`]) have their
//!   events written to the `plexus_outbox` table, in the same transaction as the data
//!   change that caused them when there is one ([`Outbox::transaction`]), and
//!   delivered to the bus after commit by a relay ([`Outbox::spawn_relay`]) that
//!   marks an event delivered only once the bus acknowledged it and retries with
//!   backoff until it does. After a crash or restart the relay delivers whatever was
//!   left undelivered: delivery is at least once, and a duplicate carries the same
//!   event id. [`Outbox::replay`] reads a durable topic back from an offset or a time.
//! - [`AuditLog`] and [`Auditor`]: who called what, when, with which correlation id,
//!   and how it ended, for every mutating call; read back with [`AuditLog::query`]
//!   (the `audit.query` method of the DataStore family).
//! - [`StoreHistory`]: a [`plexus_config::HistoryStore`] on the `plexus_config_history`
//!   table, so configuration versions (and rollback to them) survive a restart.
//! - [`Store::ping`] and [`Store::reconnect`]: the health check and the reconnect
//!   heal action of the database connection.

mod audit;
mod error;
mod health;
mod history;
mod outbox;
mod relay;
mod rows;

pub use audit::{
    AuditConfig, AuditEntry, AuditLog, AuditOutcome, AuditPage, AuditQuery, AuditRecord, Auditor,
    REDACTED,
};
pub use error::{AuditError, OutboxError};
pub use history::{DEFAULT_SCOPE, StoreHistory};
pub use outbox::{Appended, DeliveryState, Outbox, OutboxConfig, ReplayFrom, ReplayPage, Replayed};
pub use relay::{Delivery, RelayConfig, RelayHandle, RelaySink, RelayStats};

#[cfg(doc)]
use crate::Store;
