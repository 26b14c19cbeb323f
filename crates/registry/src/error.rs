//! What can go wrong in the registry.

use plexus_core::{DescriptorError, InstanceId, ServiceName};

/// Why a registry operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The descriptor did not validate; the error names the field.
    #[error(transparent)]
    InvalidDescriptor(#[from] DescriptorError),
    /// The instance id is taken by an instance of another service.
    #[error(
        "instance `{instance}` is already registered by service `{existing}`; service `{requested}` cannot take it"
    )]
    DuplicateInstance {
        /// The contested instance id.
        instance: InstanceId,
        /// The service that holds it.
        existing: ServiceName,
        /// The service that asked for it.
        requested: ServiceName,
    },
    /// No instance with that id is registered.
    #[error("instance `{instance}` is not registered")]
    NotFound {
        /// The id asked for.
        instance: InstanceId,
    },
    /// The registry holds as many instances as it may
    /// ([`crate::RegistryConfig::max_instances`]).
    #[error("the registry is full: it holds {limit} instances (RegistryConfig::max_instances)")]
    Full {
        /// The limit.
        limit: usize,
    },
    /// A configuration field is out of range.
    #[error("invalid registry configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The storage backend failed.
    #[error("registry backend failed to {operation}: {message}")]
    Backend {
        /// What it was asked to do (`put`, `remove`, …).
        operation: &'static str,
        /// What it said.
        message: String,
    },
}
