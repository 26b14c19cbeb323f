//! [`AuditService`]: the audit trail as the Plexus service `audit`, with one
//! idempotent method, `audit.query`.

use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, async_trait,
};
use serde_json::{Value, json};

use super::audit::query_from_params;
use crate::{AuditError, AuditLog, StoreError, service_error};

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

fn descriptor() -> ServiceDescriptor {
    let entry = json!({"type": "object", "required": ["seq", "at", "method", "correlation_id", "outcome", "duration_us"],
        "properties": {
            "seq": {"type": "integer"},
            "at": {"type": "integer", "description": "Microseconds since the Unix epoch"},
            "who": {"type": ["string", "null"]},
            "method": {"type": "string"},
            "params": {},
            "correlation_id": {"type": "string"},
            "outcome": {"type": "object", "required": ["status"], "properties": {
                "status": {"enum": ["ok", "error"]},
                "code": {"type": "string"}, "message": {"type": "string"}}},
            "duration_us": {"type": "integer"}}});
    ServiceDescriptor::new("audit", "audit")
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_description("The audit trail: who called which mutating method, when, with which correlation id, and how it ended")
        .with_method(
            MethodDescriptor::new("query")
                .with_description("One page of audit entries, oldest first unless newest_first, filtered by caller, method, time, correlation id or outcome")
                .with_params(json!({"type": "object", "additionalProperties": false, "properties": {
                    "who": {"type": "string", "maxLength": 256},
                    "method": {"type": "string", "maxLength": 256, "description": "service.method"},
                    "since": {"type": "integer", "minimum": 0, "description": "Microseconds since the Unix epoch, inclusive"},
                    "until": {"type": "integer", "minimum": 0, "description": "Microseconds since the Unix epoch, exclusive"},
                    "correlation_id": {"type": "string", "format": "uuid"},
                    "ok": {"type": "boolean"},
                    "limit": {"type": "integer", "minimum": 1},
                    "cursor": {"type": ["string", "null"]},
                    "newest_first": {"type": "boolean"}}}))
                .with_result(json!({"type": "object", "required": ["entries"], "properties": {
                    "entries": {"type": "array", "items": entry},
                    "next_cursor": {"type": ["string", "null"]}}}))
                .idempotent(),
        )
}

fn audit_error(e: AuditError) -> ServiceError {
    match e {
        AuditError::InvalidArgument { field, reason } => {
            ServiceError::invalid_params(format!("/{field}"), reason)
        }
        AuditError::Store(e) => service_error(&e, "", ""),
        e @ AuditError::Corrupt { .. } => service_error(
            &StoreError::Backend {
                reason: e.to_string(),
            },
            "",
            "",
        ),
    }
}

#[async_trait]
impl Service for AuditService {
    fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor.clone()
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        _ctx: CallContext,
    ) -> Result<Value, ServiceError> {
        match method {
            "query" => {
                let query = query_from_params(&params)
                    .map_err(|(field, reason)| ServiceError::invalid_params(field, reason))?;
                let page = self.log.query(&query).await.map_err(audit_error)?;
                serde_json::to_value(page).map_err(|e| ServiceError::failed(e.to_string()))
            }
            other => Err(ServiceError::MethodNotFound {
                method: other.to_owned(),
            }),
        }
    }

    /// Healthy when the trail's database answers.
    async fn health(&self) -> Result<plexus_core::HealthReport, ServiceError> {
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
}
