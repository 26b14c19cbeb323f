//! The envelope: one event or request and everything the bus needs to route it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::handled::{Handled, HandledSignal};
use crate::{
    CorrelationId, Event, EventId, Headers, Member, Payload, PayloadError, Priority, Target,
    Timestamp, Topic,
};

/// One event or request on the bus.
///
/// Build one with [`Envelope::new`] or [`Envelope::event`] and the `with_*` methods;
/// derive the events it causes with [`Envelope::follow_up`]. Cloning is cheap: the
/// topic, the source and the payload are shared, not copied.
#[derive(Clone, Debug)]
pub struct Envelope {
    id: EventId,
    topic: Topic,
    source: Option<Arc<Member>>,
    target: Target,
    priority: Priority,
    correlation_id: CorrelationId,
    causation_id: Option<EventId>,
    timestamp: Timestamp,
    headers: Headers,
    payload: Payload,
    expires_at: Option<Timestamp>,
    handled: HandledSignal,
}

impl Envelope {
    /// A new root envelope: fresh id, its own correlation id, no cause, broadcast,
    /// normal priority, stamped now.
    pub fn new(topic: Topic, payload: Payload) -> Self {
        // One clock read serves both the timestamp and the id.
        let timestamp = Timestamp::now();
        let id = EventId::at(timestamp);
        Self {
            id,
            topic,
            source: None,
            target: Target::Broadcast,
            priority: Priority::Normal,
            correlation_id: CorrelationId::from(id),
            causation_id: None,
            timestamp,
            headers: Headers::new(),
            payload,
            expires_at: None,
            handled: HandledSignal::default(),
        }
    }

    /// A new root envelope carrying a typed event on its topic with its priority.
    pub fn event<E: Event>(event: E) -> Self {
        Self::new(E::TOPIC, Payload::typed(event)).with_priority(E::PRIORITY)
    }

    /// An envelope caused by this one: a fresh id, the same correlation id, and this
    /// envelope's id as its causation id. Source, target and priority start afresh.
    pub fn follow_up(&self, topic: Topic, payload: Payload) -> Self {
        let mut next = Self::new(topic, payload);
        next.correlation_id = self.correlation_id;
        next.causation_id = Some(self.id);
        next
    }

    /// A future that resolves once this envelope is dropped: on the bus, once every
    /// subscriber it was queued for is done with it (see [`crate::handled`]). A
    /// second call replaces the first signal, whose future then resolves at once.
    /// Clones do not carry it.
    pub fn handled(&mut self) -> Handled {
        let (signal, handled) = HandledSignal::new();
        self.handled = signal;
        handled
    }

    /// [`Envelope::follow_up`] for a typed event, with the event's priority.
    pub fn follow_up_event<E: Event>(&self, event: E) -> Self {
        self.follow_up(E::TOPIC, Payload::typed(event))
            .with_priority(E::PRIORITY)
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<Arc<Member>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the target.
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets one header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key, value);
        self
    }

    /// Replaces the topic (used, for example, to move an envelope to a dead-letter topic).
    pub fn with_topic(mut self, topic: Topic) -> Self {
        self.topic = topic;
        self
    }

    /// Joins an existing conversation instead of starting one.
    pub fn with_correlation_id(mut self, correlation_id: CorrelationId) -> Self {
        self.correlation_id = correlation_id;
        self
    }

    /// Sets the causation id: the event this one follows from.
    pub fn with_causation_id(mut self, causation_id: Option<EventId>) -> Self {
        self.causation_id = causation_id;
        self
    }

    /// Sets the instant after which the envelope must not be delivered.
    pub fn with_expiry(mut self, expires_at: Timestamp) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Expires the envelope `ttl` after its timestamp.
    pub fn with_ttl(self, ttl: Duration) -> Self {
        let at = self.timestamp.saturating_add(ttl);
        self.with_expiry(at)
    }

    /// The unique id (UUID v7).
    pub fn id(&self) -> EventId {
        self.id
    }
    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }
    /// Who published it, when known.
    pub fn source(&self) -> Option<&Member> {
        self.source.as_deref()
    }
    /// Who it is addressed to.
    pub fn target(&self) -> &Target {
        &self.target
    }
    /// Its priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }
    /// The id shared by every event of one conversation.
    pub fn correlation_id(&self) -> CorrelationId {
        self.correlation_id
    }
    /// The id of the envelope that caused this one.
    pub fn causation_id(&self) -> Option<EventId> {
        self.causation_id
    }
    /// When it was created.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    /// Its headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
    /// Its headers, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    /// Its payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }
    /// When it expires, if it does.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }
    /// Whether it has expired at `now`.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Encodes the envelope as JSON for another process. A typed payload is encoded
    /// to JSON; byte payloads travel as base64.
    pub fn to_json(&self) -> Result<Vec<u8>, WireError> {
        let payload = match &self.payload {
            Payload::Empty => WirePayload::Empty,
            Payload::Bytes(bytes) => WirePayload::Bytes(BASE64.encode(bytes)),
            json_or_local => {
                let text = String::from_utf8(json_or_local.encode()?.to_vec())
                    .map_err(|_| WireError::Malformed("JSON payload is not UTF-8".into()))?;
                WirePayload::Json(
                    RawValue::from_string(text).map_err(|e| WireError::Malformed(e.to_string()))?,
                )
            }
        };
        let wire = Wire {
            id: self.id,
            topic: self.topic.clone(),
            source: self.source.as_deref().cloned(),
            target: self.target.clone(),
            priority: self.priority,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            timestamp: self.timestamp,
            headers: self.headers.clone(),
            expires_at: self.expires_at,
            payload,
        };
        serde_json::to_vec(&wire).map_err(|e| WireError::Malformed(e.to_string()))
    }

    /// Decodes an envelope written by [`Envelope::to_json`]. The topic is validated
    /// and a JSON payload is kept as JSON text.
    pub fn from_json(bytes: &[u8]) -> Result<Self, WireError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        let payload = match wire.payload {
            WirePayload::Empty => Payload::Empty,
            WirePayload::Json(raw) => {
                Payload::Json(Bytes::from(String::from(Box::<str>::from(raw))))
            }
            WirePayload::Bytes(text) => Payload::Bytes(Bytes::from(
                BASE64
                    .decode(text)
                    .map_err(|e| WireError::Malformed(format!("bytes payload: {e}")))?,
            )),
        };
        Ok(Self {
            id: wire.id,
            topic: wire.topic,
            source: wire.source.map(Arc::new),
            target: wire.target,
            priority: wire.priority,
            correlation_id: wire.correlation_id,
            causation_id: wire.causation_id,
            timestamp: wire.timestamp,
            headers: wire.headers,
            payload,
            expires_at: wire.expires_at,
            handled: HandledSignal::default(),
        })
    }
}

/// Why an envelope could not cross a process boundary.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The payload could not be encoded.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The bytes are not an envelope.
    #[error("not a valid envelope: {0}")]
    Malformed(String),
}

#[derive(Serialize, Deserialize)]
struct Wire {
    id: EventId,
    topic: Topic,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<Member>,
    #[serde(default, skip_serializing_if = "Target::is_broadcast")]
    target: Target,
    #[serde(default)]
    priority: Priority,
    correlation_id: CorrelationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causation_id: Option<EventId>,
    timestamp: Timestamp,
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    headers: Headers,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    payload: WirePayload,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WirePayload {
    Empty,
    Json(Box<RawValue>),
    Bytes(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Captured {
        n: u32,
    }
    impl Event for Captured {
        const TOPIC: Topic = Topic::from_static("test.captured");
        const PRIORITY: Priority = Priority::High;
    }

    #[test]
    fn root_envelope_correlates_with_itself() {
        let e = Envelope::event(Captured { n: 1 });
        assert_eq!(e.correlation_id(), CorrelationId::from(e.id()));
        assert_eq!(e.causation_id(), None);
        assert_eq!(e.priority(), Priority::High);
        assert_eq!(e.topic().as_str(), "test.captured");
        assert_eq!(e.id().as_uuid().get_version_num(), 7);
    }

    #[test]
    fn follow_up_keeps_correlation_and_points_at_cause() {
        let first = Envelope::event(Captured { n: 1 });
        let second = first.follow_up(Topic::from_static("test.next"), Payload::Empty);
        let third = second.follow_up_event(Captured { n: 3 });
        assert_eq!(third.correlation_id(), first.correlation_id());
        assert_eq!(second.causation_id(), Some(first.id()));
        assert_eq!(third.causation_id(), Some(second.id()));
        assert_ne!(second.id(), first.id());
    }

    #[test]
    fn expiry_is_relative_to_timestamp() {
        let e = Envelope::new(Topic::from_static("a"), Payload::Empty)
            .with_ttl(Duration::from_millis(5));
        let ts = e.timestamp();
        assert!(!e.is_expired_at(ts));
        assert!(e.is_expired_at(ts.saturating_add(Duration::from_millis(5))));
    }

    #[test]
    fn wire_round_trip_keeps_every_field() {
        let e = Envelope::event(Captured { n: 42 })
            .with_source(Member::new("cap-1", "capture", "sensor"))
            .with_target(Target::Service("storage".into()))
            .with_header("k", "v")
            .with_ttl(Duration::from_secs(60));
        let back = Envelope::from_json(&e.to_json().unwrap()).unwrap();
        assert_eq!(back.id(), e.id());
        assert_eq!(back.topic(), e.topic());
        assert_eq!(back.source(), e.source());
        assert_eq!(back.target(), e.target());
        assert_eq!(back.priority(), e.priority());
        assert_eq!(back.correlation_id(), e.correlation_id());
        assert_eq!(back.timestamp(), e.timestamp());
        assert_eq!(back.headers(), e.headers());
        assert_eq!(back.expires_at(), e.expires_at());
        assert_eq!(
            *back.payload().decode::<Captured>().unwrap(),
            Captured { n: 42 }
        );

        let bytes = Envelope::new(Topic::from_static("b"), Payload::bytes(vec![0u8, 255]));
        let back = Envelope::from_json(&bytes.to_json().unwrap()).unwrap();
        assert!(matches!(back.payload(), Payload::Bytes(b) if b[..] == [0, 255]));
    }

    #[test]
    fn malformed_wire_input_is_a_typed_error() {
        assert!(matches!(
            Envelope::from_json(b"{}"),
            Err(WireError::Malformed(_))
        ));
        let bad_topic = br#"{"id":"0192e5c8-0000-7000-8000-000000000000","topic":"a..b","correlation_id":"0192e5c8-0000-7000-8000-000000000000","timestamp":1,"payload":"empty"}"#;
        assert!(Envelope::from_json(bad_topic).is_err());
    }
}
