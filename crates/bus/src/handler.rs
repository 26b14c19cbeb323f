//! Handlers: a task per subscription that calls an async function for each event,
//! answers requests with what it returns, and survives its errors and panics.
//!
//! A handler that returns an error or panics does not stop: the failure is counted
//! (on the subscription and bus-wide), the event goes to the dead-letter topic when
//! one is configured, and a request gets [`crate::BusError::HandlerFailed`] at once
//! instead of waiting for its deadline.

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::FutureExt;
use plexus_core::{Envelope, Event, Payload};
use tokio::task::JoinHandle;

use crate::router::Route;
use crate::{Bus, BusError, SubscribeOptions, Subscription, SubscriptionStats, expects_reply};

/// What a handler's success turns into when the event was a request.
pub trait IntoReply {
    /// The reply payload; `None` means no answer from this handler.
    fn into_reply(self) -> Option<Payload>;
}

impl IntoReply for () {
    fn into_reply(self) -> Option<Payload> {
        Some(Payload::Empty)
    }
}

impl IntoReply for Payload {
    fn into_reply(self) -> Option<Payload> {
        Some(self)
    }
}

impl IntoReply for Option<Payload> {
    fn into_reply(self) -> Option<Payload> {
        self
    }
}

/// A running handler. Dropping the handle leaves the handler running until the bus
/// shuts down; [`HandlerHandle::stop`] ends it sooner.
#[derive(Debug)]
pub struct HandlerHandle {
    route: Arc<Route>,
    task: JoinHandle<()>,
}

impl HandlerHandle {
    /// The counters of the handler's subscription (`failed` counts errors and panics).
    pub fn stats(&self) -> SubscriptionStats {
        self.route.stats()
    }

    /// Waits until the handler has ended (after shutdown has drained its queue).
    pub async fn join(self) {
        // The loop itself never panics: handler panics are caught inside it.
        let _ = self.task.await;
    }

    /// Ends the handler now; events still queued are counted as discarded.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("id", &self.id)
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}

impl Bus {
    /// Runs `handler` on a tokio task for every event matching `pattern`, one at a
    /// time, in delivery order, until the bus shuts down (and its queue is drained)
    /// or [`HandlerHandle::stop`] is called. Must be called inside a tokio runtime.
    pub fn handle<F, Fut, R, E>(
        &self,
        pattern: &str,
        options: SubscribeOptions,
        handler: F,
    ) -> Result<HandlerHandle, BusError>
    where
        F: Fn(Arc<Envelope>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoReply,
        E: Display,
    {
        let subscription = self.subscribe(pattern, options)?;
        Ok(self.spawn_handler(subscription, handler))
    }

    /// Runs `handler` for every event of type `Ev`, handing it the typed value (shared,
    /// not copied, when it was published in process) and its envelope. A payload that
    /// is not an `Ev` counts as a failure.
    pub fn handle_event<Ev, F, Fut, R, E>(
        &self,
        options: SubscribeOptions,
        handler: F,
    ) -> Result<HandlerHandle, BusError>
    where
        Ev: Event,
        F: Fn(Arc<Ev>, Arc<Envelope>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoReply,
        E: Display,
    {
        let subscription = self.subscribe_event::<Ev>(options)?;
        let handler = Arc::new(handler);
        Ok(
            self.spawn_handler(subscription, move |envelope: Arc<Envelope>| {
                let handler = Arc::clone(&handler);
                async move {
                    let event = envelope
                        .payload()
                        .decode::<Ev>()
                        .map_err(|e| e.to_string())?;
                    handler(event, envelope).await.map_err(|e| e.to_string())
                }
            }),
        )
    }

    fn spawn_handler<F, Fut, R, E>(
        &self,
        mut subscription: Subscription,
        handler: F,
    ) -> HandlerHandle
    where
        F: Fn(Arc<Envelope>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoReply,
        E: Display,
    {
        let route = Arc::clone(&subscription.route);
        let bus = self.clone();
        let task = tokio::spawn(async move {
            while let Some(envelope) = subscription.recv().await {
                let call = AssertUnwindSafe(async { handler(Arc::clone(&envelope)).await });
                let failure = match call.catch_unwind().await {
                    Ok(Ok(reply)) => {
                        if expects_reply(&envelope)
                            && let Some(payload) = reply.into_reply()
                        {
                            // Another handler may have answered first: that is fine.
                            let _ = bus.reply(&envelope, payload);
                        }
                        continue;
                    }
                    Ok(Err(error)) => ("handler_failed", error.to_string()),
                    Err(panic) => ("handler_panicked", panic_message(&*panic)),
                };
                bus.handler_failed(&subscription, &envelope, failure.0, &failure.1);
            }
        });
        HandlerHandle { route, task }
    }

    fn handler_failed(
        &self,
        subscription: &Subscription,
        envelope: &Envelope,
        reason: &str,
        message: &str,
    ) {
        subscription.count_failure();
        self.inner
            .counters
            .handler_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            topic = %envelope.topic(),
            id = %envelope.id(),
            subscription = %subscription.id(),
            reason,
            message,
            "event handler failed"
        );
        if self
            .inner
            .dead_letter(envelope, reason, Some(&subscription.route), Some(message))
        {
            subscription
                .route
                .queue
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
        }
        if expects_reply(envelope) {
            let _ = self.reply_error(envelope, message);
        }
    }
}
