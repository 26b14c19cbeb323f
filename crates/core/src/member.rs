//! Who takes part on the bus: instances, the services they belong to, and their types.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a name.
            pub fn new(name: impl AsRef<str>) -> Self {
                Self(Arc::from(name.as_ref()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), &*self.0)
            }
        }

        /// Maps keyed by the name can be searched with a `&str`, without allocating.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                Self::new(name)
            }
        }

        impl From<String> for $name {
            fn from(name: String) -> Self {
                Self(Arc::from(name))
            }
        }
    };
}

name_type!(
    /// One running instance of a service, such as `storage-1`.
    InstanceId
);
name_type!(
    /// A service, such as `storage`; several instances may share it.
    ServiceName
);
name_type!(
    /// A kind of service, such as `persistence`; several services may share it.
    ServiceType
);

/// The identity of a participant: the instance, its service and the service's type.
///
/// A subscription carries one so that events addressed to an instance, a service or
/// a service type reach it; an envelope carries one as its source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The instance.
    pub instance: InstanceId,
    /// The service it belongs to.
    pub service: ServiceName,
    /// The type of that service.
    pub service_type: ServiceType,
}

impl Member {
    /// A member from its three names.
    pub fn new(
        instance: impl Into<InstanceId>,
        service: impl Into<ServiceName>,
        service_type: impl Into<ServiceType>,
    ) -> Self {
        Self {
            instance: instance.into(),
            service: service.into(),
            service_type: service_type.into(),
        }
    }
}
