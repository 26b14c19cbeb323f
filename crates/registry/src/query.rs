//! [`Query`]: which instances [`crate::Registry::discover`] returns.

use std::collections::BTreeSet;

use plexus_core::{ServiceName, ServiceStatus, ServiceType};

use crate::Registration;

/// A discovery query. Every condition set must hold; an empty query matches every
/// instance.
///
/// ```
/// use plexus_core::ServiceStatus;
/// use plexus_registry::Query;
///
/// let query = Query::new()
///     .service_type("persistence")
///     .method("get")
///     .tag("core")
///     .status(ServiceStatus::Healthy)
///     .status(ServiceStatus::Degraded);
/// # let _ = query;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    name: Option<ServiceName>,
    service_type: Option<ServiceType>,
    methods: BTreeSet<String>,
    tags: BTreeSet<String>,
    statuses: BTreeSet<ServiceStatus>,
}

impl Query {
    /// A query that matches every instance.
    pub fn new() -> Self {
        Self::default()
    }

    /// Instances of the service `name`.
    pub fn name(mut self, name: impl Into<ServiceName>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Instances of services of type `service_type`.
    pub fn service_type(mut self, service_type: impl Into<ServiceType>) -> Self {
        self.service_type = Some(service_type.into());
        self
    }

    /// Instances that answer the method `method` (a capability). Several calls: all
    /// of them.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.methods.insert(method.into());
        self
    }

    /// Instances tagged `tag`. Several calls: all of the tags.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// Instances in `status`. Several calls: any of the statuses.
    pub fn status(mut self, status: ServiceStatus) -> Self {
        self.statuses.insert(status);
        self
    }

    /// Instances that accept calls (Healthy or Degraded).
    pub fn accepting_calls(self) -> Self {
        ServiceStatus::ALL
            .into_iter()
            .filter(|s| s.accepts_calls())
            .fold(self, Self::status)
    }

    /// Whether `registration` meets every condition.
    pub fn matches(&self, registration: &Registration) -> bool {
        let d = &registration.descriptor;
        self.name.as_ref().is_none_or(|n| *n == d.name)
            && self
                .service_type
                .as_ref()
                .is_none_or(|t| *t == d.service_type)
            && self.methods.iter().all(|m| d.has_method(m))
            && self.tags.iter().all(|t| d.tags.contains(t))
            && (self.statuses.is_empty() || self.statuses.contains(&registration.status))
    }
}
