//! Payloads: typed values in process, JSON or bytes across processes.
//!
//! A payload published from Rust as a typed [`Event`] stays an `Arc<T>` for as long as
//! it stays in the process: a subscriber borrows it with [`Payload::get`] or shares it
//! with [`Payload::decode`], and nothing is serialized. Only when an envelope leaves
//! the process is a typed payload encoded to JSON ([`Payload::encode`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::{Priority, Topic};

/// A Rust type bound to a topic.
///
/// ```
/// # use plexus_core::{Event, Priority, Topic};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Alarm { reason: String }
/// impl Event for Alarm {
///     const TOPIC: Topic = Topic::from_static("system.alarm");
///     const PRIORITY: Priority = Priority::Critical;
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic events of this type are published on (checked at compile time).
    const TOPIC: Topic;
    /// The priority they are published with unless the envelope says otherwise.
    const PRIORITY: Priority = Priority::Normal;
}

/// Why a payload could not be built, encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// A value could not be serialized to JSON.
    #[error("could not encode {type_name} as JSON: {source}")]
    Encode {
        /// The Rust type being encoded.
        type_name: &'static str,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// The payload could not be read as the requested type.
    #[error("payload is not a valid {type_name}: {source}")]
    Decode {
        /// The Rust type asked for.
        type_name: &'static str,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// Bytes given as JSON are not JSON.
    #[error("payload is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The payload is empty where a value was expected.
    #[error("payload is empty; expected a {type_name}")]
    Empty {
        /// The Rust type asked for.
        type_name: &'static str,
    },
}

type Encoder = fn(&(dyn Any + Send + Sync)) -> Result<Vec<u8>, PayloadError>;

/// An in-process typed value and the means to encode it when it must leave.
#[derive(Clone)]
pub struct Local {
    value: Arc<dyn Any + Send + Sync>,
    encode: Encoder,
    type_name: &'static str,
}

fn encode_as<T: Serialize + Send + Sync + 'static>(
    value: &(dyn Any + Send + Sync),
) -> Result<Vec<u8>, PayloadError> {
    let type_name = std::any::type_name::<T>();
    match value.downcast_ref::<T>() {
        Some(value) => {
            serde_json::to_vec(value).map_err(|source| PayloadError::Encode { type_name, source })
        }
        // Local values are only built by `Payload::from_arc::<T>`, which pairs the value
        // with `encode_as::<T>`; a mismatch cannot be constructed from outside.
        None => Err(PayloadError::Encode {
            type_name,
            source: serde::ser::Error::custom("typed payload holds another type"),
        }),
    }
}

/// The body of an envelope.
#[derive(Clone, Default)]
pub enum Payload {
    /// No body.
    #[default]
    Empty,
    /// JSON text, checked to be valid JSON when built.
    Json(Bytes),
    /// Opaque bytes.
    Bytes(Bytes),
    /// A typed Rust value that has not been serialized.
    Local(Local),
}

impl Payload {
    /// Keeps `value` as a typed in-process payload.
    pub fn typed<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// Keeps an already shared value as a typed in-process payload.
    pub fn from_arc<T: Serialize + Send + Sync + 'static>(value: Arc<T>) -> Self {
        Payload::Local(Local {
            value,
            encode: encode_as::<T>,
            type_name: std::any::type_name::<T>(),
        })
    }

    /// Serializes `value` to a JSON payload now.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, PayloadError> {
        serde_json::to_vec(value)
            .map(|v| Payload::Json(Bytes::from(v)))
            .map_err(|source| PayloadError::Encode {
                type_name: std::any::type_name::<T>(),
                source,
            })
    }

    /// Takes bytes that must hold one JSON value.
    pub fn json_bytes(bytes: impl Into<Bytes>) -> Result<Self, PayloadError> {
        let bytes = bytes.into();
        serde_json::from_slice::<IgnoredAny>(&bytes).map_err(PayloadError::NotJson)?;
        Ok(Payload::Json(bytes))
    }

    /// Opaque bytes.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Payload::Bytes(bytes.into())
    }

    /// Borrows the typed value if this is a local payload of type `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        match self {
            Payload::Local(local) => local.value.downcast_ref::<T>(),
            _ => None,
        }
    }

    /// The value as a `T`: shared without copying when it is a local `T`, otherwise
    /// decoded from JSON (a local value of another type is encoded first).
    pub fn decode<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
    ) -> Result<Arc<T>, PayloadError> {
        let type_name = std::any::type_name::<T>();
        let from_slice = |bytes: &[u8]| {
            serde_json::from_slice::<T>(bytes)
                .map(Arc::new)
                .map_err(|source| PayloadError::Decode { type_name, source })
        };
        match self {
            Payload::Local(local) => match Arc::clone(&local.value).downcast::<T>() {
                Ok(value) => Ok(value),
                Err(_) => from_slice(&(local.encode)(&*local.value)?),
            },
            Payload::Json(bytes) | Payload::Bytes(bytes) => from_slice(bytes),
            Payload::Empty => Err(PayloadError::Empty { type_name }),
        }
    }

    /// The bytes to send when this payload leaves the process: JSON text for typed
    /// and JSON payloads, the bytes themselves for byte payloads, nothing for empty.
    pub fn encode(&self) -> Result<Bytes, PayloadError> {
        match self {
            Payload::Empty => Ok(Bytes::new()),
            Payload::Json(bytes) | Payload::Bytes(bytes) => Ok(bytes.clone()),
            Payload::Local(local) => (local.encode)(&*local.value).map(Bytes::from),
        }
    }

    /// The encoded size when it is known without encoding: `None` for local values,
    /// which are never copied while they stay in the process.
    pub fn encoded_len(&self) -> Option<usize> {
        match self {
            Payload::Empty => Some(0),
            Payload::Json(bytes) | Payload::Bytes(bytes) => Some(bytes.len()),
            Payload::Local(_) => None,
        }
    }

    /// A short name of the kind: `empty`, `json`, `bytes` or the local type's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Empty => "empty",
            Payload::Json(_) => "json",
            Payload::Bytes(_) => "bytes",
            Payload::Local(local) => local.type_name,
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Empty => f.write_str("Empty"),
            Payload::Json(b) => write!(f, "Json({})", String::from_utf8_lossy(b)),
            Payload::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Payload::Local(l) => write!(f, "Local({})", l.type_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Reading {
        value: u32,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct SameShape {
        value: u32,
    }

    #[test]
    fn local_value_comes_back_as_the_same_arc() {
        let shared = Arc::new(Reading { value: 7 });
        let payload = Payload::from_arc(Arc::clone(&shared));
        assert!(Arc::ptr_eq(&payload.decode::<Reading>().unwrap(), &shared));
        assert_eq!(payload.get::<Reading>(), Some(&Reading { value: 7 }));
        assert_eq!(payload.get::<SameShape>(), None);
        assert_eq!(payload.encoded_len(), None);
    }

    #[test]
    fn local_value_of_another_type_goes_through_json() {
        let payload = Payload::typed(Reading { value: 3 });
        assert_eq!(
            *payload.decode::<SameShape>().unwrap(),
            SameShape { value: 3 }
        );
        assert_eq!(&payload.encode().unwrap()[..], br#"{"value":3}"#);
    }

    #[test]
    fn json_is_checked_and_decoded() {
        assert!(matches!(
            Payload::json_bytes(&b"{not json"[..]),
            Err(PayloadError::NotJson(_))
        ));
        let payload = Payload::json_bytes(&br#"{"value":9}"#[..]).unwrap();
        assert_eq!(payload.encoded_len(), Some(11));
        assert_eq!(*payload.decode::<Reading>().unwrap(), Reading { value: 9 });
        let wrong = Payload::json(&serde_json::json!({"other": 1})).unwrap();
        assert!(matches!(
            wrong.decode::<Reading>(),
            Err(PayloadError::Decode { .. })
        ));
        assert!(matches!(
            Payload::Empty.decode::<Reading>(),
            Err(PayloadError::Empty { .. })
        ));
    }
}
