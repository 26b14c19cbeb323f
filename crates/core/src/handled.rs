//! Knowing when an event was handled.
//!
//! [`Envelope::handled`] gives a [`Handled`] future that resolves once the envelope
//! is dropped. On the bus an event is shared by every subscription it was queued
//! for, and each subscriber holds it while it works on it (an event handler until
//! it returns, a WebSocket subscriber until the event is on its connection's way
//! out), so "dropped" means "every subscriber that got it is done with it", or it
//! went nowhere. A durable consumer acknowledges an event to JetStream only then.
//!
//! [`Envelope::handled`]: crate::Envelope::handled

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

/// The envelope's side: dropping it resolves the [`Handled`]. A clone of the
/// envelope does not carry it: a copy is not the event that was handed over.
#[derive(Default)]
pub(crate) struct HandledSignal(Option<oneshot::Sender<()>>);

impl HandledSignal {
    pub(crate) fn new() -> (Self, Handled) {
        let (tx, rx) = oneshot::channel();
        (Self(Some(tx)), Handled(rx))
    }
}

impl Clone for HandledSignal {
    fn clone(&self) -> Self {
        Self(None)
    }
}

impl fmt::Debug for HandledSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "tracked"
        } else {
            "untracked"
        })
    }
}

/// Resolves once the envelope it came from was dropped.
#[derive(Debug)]
#[must_use = "a Handled does nothing unless awaited"]
pub struct Handled(oneshot::Receiver<()>);

impl Future for Handled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Nothing is ever sent: the sender's drop is the signal.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}
