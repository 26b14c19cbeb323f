//! The audit trail: [`AuditObserver`] writes every mutating call the node makes to
//! the store's [`AuditLog`], and [`AuditService`] reads it back as the Plexus
//! service `audit`, with one idempotent method, `audit.query`.

use std::sync::LazyLock;

use plexus_core::methods::{Effect, MethodTable, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError, async_trait};
use plexus_node::{CallObserver, CallRecord};
use plexus_store::{
    AuditEntry, AuditError, AuditLog, AuditOutcome, AuditPage, AuditQuery, StoreError,
};

use crate::service_error;

/// Hands each mutating call the node makes to the audit log; a record that cannot
/// be written is logged, never failing the call.
#[derive(Debug, Clone)]
pub struct AuditObserver {
    log: AuditLog,
}

impl AuditObserver {
    /// The observer writing to `log`.
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

#[async_trait]
impl CallObserver for AuditObserver {
    async fn record(&self, record: CallRecord) {
        let outcome = match &record.error {
            None => AuditOutcome::Ok,
            Some((_, message)) => AuditOutcome::Error {
                code: record.outcome.clone(),
                message: message.clone(),
            },
        };
        let entry = AuditEntry {
            at: record.at,
            who: record.caller,
            method: record.method,
            params: record.params,
            correlation_id: record.correlation_id,
            outcome,
            duration: record.duration,
        };
        if let Err(error) = self.log.record(&entry).await {
            tracing::error!(%error, method = %entry.method, "audit record not written");
        }
    }
}

/// The audit trail behind the `audit` service.
#[derive(Debug, Clone)]
pub struct AuditService {
    log: AuditLog,
    descriptor: ServiceDescriptor,
}

impl AuditService {
    /// The service over `log`, instance `audit-1`.
    pub fn new(log: AuditLog) -> Self {
        Self {
            log,
            descriptor: descriptor(),
        }
    }

    /// Sets the instance id.
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.descriptor = self.descriptor.with_instance(instance);
        self
    }

    /// The log underneath.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }
}

/// The `audit.*` methods, built once: params are an [`AuditQuery`], the result an
/// [`AuditPage`].
static METHODS: LazyLock<MethodTable<AuditLog>> = LazyLock::new(|| {
    MethodTable::new().method::<AuditQuery, AuditPage, _>(
        "query",
        "One page of audit entries, oldest first unless newest_first, filtered by caller, method, time, correlation id or outcome",
        Effect::Idempotent,
        query,
    )
});

fn descriptor() -> ServiceDescriptor {
    METHODS.describe(
        ServiceDescriptor::new("audit", "audit")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_description("The audit trail: who called which mutating method, when, with which correlation id, and how it ended"),
    )
}

async fn query(log: &AuditLog, _: CallContext, q: AuditQuery) -> Result<AuditPage, ServiceError> {
    log.query(&q).await.map_err(audit_error)
}

fn audit_error(e: AuditError) -> ServiceError {
    match e {
        AuditError::InvalidArgument { field, reason } => {
            ServiceError::invalid_params(format!("/{field}"), reason)
        }
        AuditError::Store(e) => service_error(&e, "", ""),
        // A corrupt entry, and whatever else the log may fail with: the store's fault.
        e => service_error(
            &StoreError::Backend {
                reason: e.to_string(),
            },
            "",
            "",
        ),
    }
}

#[async_trait]
impl TableService for AuditService {
    type State = AuditLog;

    fn parts(&self) -> TableParts<'_, AuditLog> {
        (&METHODS, &self.log, &self.descriptor)
    }

    /// Healthy when the trail's database answers.
    async fn check_health(&self) -> Result<plexus_core::HealthReport, ServiceError> {
        Ok(self.log.store().health().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_validates_and_query_is_idempotent() {
        let d = descriptor();
        d.validate().unwrap();
        assert!(d.method("query").unwrap().idempotent);
    }

    #[test]
    fn the_derived_schema_accepts_and_refuses_what_the_hand_written_one_did() {
        let d = descriptor();
        let m = d.method("query").unwrap();
        let v = jsonschema::validator_for(&m.params).unwrap();
        for ok in [
            serde_json::json!({}),
            serde_json::json!({"who": "ana", "method": "a.b", "since": 1, "until": 2,
                "correlation_id": "0190a0a0-0000-7000-8000-000000000000", "ok": true,
                "limit": 5, "cursor": null, "newest_first": true}),
        ] {
            assert!(v.is_valid(&ok), "{ok}");
        }
        for bad in [
            serde_json::json!({"since": "yesterday"}),
            serde_json::json!({"since": -1}),
            serde_json::json!({"limit": 0}),
            serde_json::json!({"who": "x".repeat(257)}),
            serde_json::json!({"ok": "yes"}),
            serde_json::json!({"colour": "red"}),
        ] {
            assert!(!v.is_valid(&bad), "{bad}");
        }
        let entry = &m.result["properties"]["entries"]["items"];
        for field in [
            "seq",
            "at",
            "method",
            "correlation_id",
            "outcome",
            "duration_us",
        ] {
            assert!(
                entry["required"]
                    .as_array()
                    .unwrap()
                    .contains(&serde_json::json!(field)),
                "{field}: {entry}"
            );
        }
    }
}
