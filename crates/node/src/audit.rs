//! The hook through which every mutating call is recorded (the audit trail).
//!
//! A call is *mutating* when its method is not declared idempotent. After such a call
//! ends, successfully or not, the node hands a [`CallRecord`] to the
//! [`CallObserver`] given to [`NodeBuilder::audit`](crate::NodeBuilder::audit) and
//! waits for it to be accepted, so an observer with a bounded queue slows mutating
//! calls down rather than losing records. Idempotent calls are not recorded.

use std::time::Duration;

use plexus_core::{CorrelationId, Timestamp, async_trait};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One mutating call, as the audit trail keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// `service.method`.
    pub method: String,
    /// Who called (the token's name at the gateway), if known.
    pub caller: Option<String>,
    /// The call's correlation id.
    pub correlation_id: CorrelationId,
    /// The params as the caller sent them.
    pub params: Value,
    /// When the call entered the call path.
    pub at: Timestamp,
    /// How long it took.
    pub duration: Duration,
    /// `ok`, or the error's outcome label (`invalid_params`, `unavailable`, …).
    pub outcome: String,
    /// The JSON-RPC error code and message when it failed.
    pub error: Option<(i64, String)>,
}

/// Receives every mutating call's record.
#[async_trait]
pub trait CallObserver: Send + Sync + 'static {
    /// Takes one record; returns once it is accepted (queued or written).
    async fn record(&self, record: CallRecord);
}
