//! Request/reply over the bus: publish a request, wait for the first reply until a
//! deadline.
//!
//! A request is an ordinary envelope with the [`REPLY_EXPECTED`] header. Whoever
//! receives it answers with [`Bus::reply`] (handlers do so by returning a payload);
//! the reply is a follow-up of the request, so it carries the same correlation id and
//! the request's id as its causation id.

use std::sync::Arc;
use std::time::Duration;

use plexus_core::{Envelope, EventId, Payload};
use tokio::sync::oneshot;

use crate::bus::BusInner;
use crate::{Bus, BusError};

/// Header that marks an envelope as a request waiting for a reply.
pub const REPLY_EXPECTED: &str = "plexus-reply-expected";

/// Whether `envelope` is a request that waits for a reply.
pub fn expects_reply(envelope: &Envelope) -> bool {
    envelope.headers().contains(REPLY_EXPECTED)
}

/// Removes a pending request when its caller stops waiting, however it stops.
struct Waiting<'a> {
    bus: &'a BusInner,
    id: EventId,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.bus.pending.lock().remove(&self.id);
    }
}

impl Bus {
    /// Publishes `envelope` as a request and waits up to `timeout` (publishing
    /// included) for the first reply.
    ///
    /// Fails with [`BusError::NoResponders`] when no subscriber took the request,
    /// [`BusError::RequestTimeout`] when the deadline passes, and
    /// [`BusError::HandlerFailed`] when the handler failed or panicked. Unless the
    /// envelope already expires, it is set to expire at the deadline so that no
    /// subscriber works on a request nobody waits for any more.
    pub async fn request(
        &self,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Arc<Envelope>, BusError> {
        let id = envelope.id();
        let topic = envelope.topic().clone();
        let mut envelope = envelope.with_header(REPLY_EXPECTED, "true");
        if envelope.expires_at().is_none() {
            envelope = envelope.with_ttl(timeout);
        }
        let (sender, reply) = oneshot::channel();
        {
            let mut pending = self.inner.pending.lock();
            let limit = self.inner.config.max_pending_requests;
            if pending.len() >= limit {
                return Err(BusError::TooManyPendingRequests { limit });
            }
            pending.insert(id, sender);
        }
        let _waiting = Waiting {
            bus: &self.inner,
            id,
        };
        let exchange = async {
            let receipt = self.publish(envelope).await?;
            if receipt.enqueued == 0 {
                return Err(BusError::NoResponders {
                    topic: topic.clone(),
                });
            }
            reply.await.map_err(|_| BusError::ShuttingDown)?
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(BusError::RequestTimeout {
                topic,
                after: timeout,
            }),
        }
    }

    /// Answers `request` with `payload`. Fails with [`BusError::NoPendingRequest`]
    /// when nobody waits (the request timed out or was already answered).
    pub fn reply(&self, request: &Envelope, payload: Payload) -> Result<(), BusError> {
        let reply = request.follow_up(request.topic().clone(), payload);
        self.complete(request.id(), Ok(Arc::new(reply)))
    }

    /// Answers `request` with a failure its caller receives as
    /// [`BusError::HandlerFailed`].
    pub fn reply_error(&self, request: &Envelope, message: &str) -> Result<(), BusError> {
        let failure = BusError::HandlerFailed {
            topic: request.topic().clone(),
            message: message.to_owned(),
        };
        self.complete(request.id(), Err(failure))
    }

    fn complete(
        &self,
        id: EventId,
        outcome: Result<Arc<Envelope>, BusError>,
    ) -> Result<(), BusError> {
        let sender = self
            .inner
            .pending
            .lock()
            .remove(&id)
            .ok_or(BusError::NoPendingRequest(id))?;
        sender
            .send(outcome)
            .map_err(|_| BusError::NoPendingRequest(id))
    }
}
