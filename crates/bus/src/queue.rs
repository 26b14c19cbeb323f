//! One subscriber's queue: four bounded lanes, one per priority, drained highest first.
//!
//! Each lane is a lock-free bounded ring (`crossbeam_queue::ArrayQueue`), so a full
//! Normal lane never stands in the way of a Critical event. A subscription has one
//! receiver: when it finds every lane empty it registers its waker (an `AtomicWaker`,
//! lock-free) and raises `receiver_parked`. Publishers only read that flag, so while
//! the receiver is busy a push touches no line the receiver writes; the first
//! publisher to see it raised lowers it and wakes the receiver. A publisher that finds a lane full and must wait parks on `writable`,
//! which receivers signal only while someone is parked there.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::task::Poll;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use futures::task::AtomicWaker;
use plexus_core::{Envelope, Priority};
use tokio::sync::Notify;

use crate::RejectReason;

/// Counters a queue keeps; the receiver's own counter sits on its own cache line.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) delivered: CachePadded<AtomicU64>,
    pub(crate) dropped: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// The outcome of offering an event to a lane without waiting.
pub(crate) enum Offer {
    /// It is queued.
    Queued,
    /// It is queued and pushed out the lane's oldest event, handed back here.
    Displaced(Arc<Envelope>),
    /// The lane is full; the event is handed back.
    Full(Arc<Envelope>),
}

pub(crate) struct Queue {
    lanes: [ArrayQueue<Arc<Envelope>>; 4],
    reader: AtomicWaker,
    receiver_parked: CachePadded<AtomicBool>,
    writable: Notify,
    parked_publishers: AtomicUsize,
    closed: AtomicBool,
    pub(crate) counters: Counters,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            lanes: std::array::from_fn(|_| ArrayQueue::new(capacity)),
            reader: AtomicWaker::new(),
            receiver_parked: CachePadded::new(AtomicBool::new(false)),
            writable: Notify::new(),
            parked_publishers: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    fn lane(&self, priority: Priority) -> &ArrayQueue<Arc<Envelope>> {
        &self.lanes[priority.lane()]
    }

    /// Offers `envelope` to its lane; with `displace`, makes room by dropping the oldest.
    pub(crate) fn offer(&self, envelope: Arc<Envelope>, displace: bool) -> Offer {
        let lane = self.lane(envelope.priority());
        let offer = if displace {
            match lane.force_push(envelope) {
                None => Offer::Queued,
                Some(old) => Offer::Displaced(old),
            }
        } else {
            match lane.push(envelope) {
                Ok(()) => Offer::Queued,
                Err(back) => return Offer::Full(back),
            }
        };
        self.wake_receiver();
        offer
    }

    /// Wakes the receiver if it is (or is about to be) parked.
    fn wake_receiver(&self) {
        // Pairs with the fence in `pop_waiting`: either the receiver sees the event
        // just queued, or this sees the flag it raised.
        fence(Ordering::SeqCst);
        if self.receiver_parked.load(Ordering::Relaxed)
            && self.receiver_parked.swap(false, Ordering::AcqRel)
        {
            self.reader.wake();
        }
    }

    /// Waits up to `timeout` for room in the envelope's lane, then queues it.
    pub(crate) async fn push_waiting(
        &self,
        mut envelope: Arc<Envelope>,
        timeout: Duration,
    ) -> Result<(), RejectReason> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(RejectReason::Closed);
            }
            self.parked_publishers.fetch_add(1, Ordering::SeqCst);
            let room = self.writable.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            // Check again now that a pop can no longer slip by unseen.
            let attempt = self.offer(envelope, false);
            let outcome = match attempt {
                Offer::Queued | Offer::Displaced(_) => Ok(()),
                Offer::Full(back) => {
                    envelope = back;
                    if self.closed.load(Ordering::SeqCst) {
                        Err(RejectReason::Closed)
                    } else if tokio::time::timeout_at(deadline, room).await.is_err() {
                        Err(RejectReason::BlockTimeout(timeout))
                    } else {
                        self.parked_publishers.fetch_sub(1, Ordering::SeqCst);
                        continue;
                    }
                }
            };
            self.parked_publishers.fetch_sub(1, Ordering::SeqCst);
            return outcome;
        }
    }

    /// Takes the next event, highest priority first, without waiting.
    pub(crate) fn pop(&self) -> Option<Arc<Envelope>> {
        let popped = self.lanes.iter().rev().find_map(ArrayQueue::pop)?;
        fence(Ordering::SeqCst);
        if self.parked_publishers.load(Ordering::SeqCst) > 0 {
            self.writable.notify_waiters();
        }
        Some(popped)
    }

    /// Takes the next event, waiting for one; `None` once closed and empty. Only the
    /// subscription's single receiver calls this.
    pub(crate) async fn pop_waiting(&self) -> Option<Arc<Envelope>> {
        poll_fn(|cx| {
            if let Some(envelope) = self.pop() {
                return Poll::Ready(Some(envelope));
            }
            if self.closed.load(Ordering::SeqCst) {
                // An event queued just before closing is still handed out.
                return Poll::Ready(self.pop());
            }
            self.reader.register(cx.waker());
            self.receiver_parked.store(true, Ordering::Relaxed);
            // Pairs with the fence in `wake_receiver`: either this sees the event a
            // publisher just queued, or that publisher sees the flag and wakes us.
            fence(Ordering::SeqCst);
            if let Some(envelope) = self.pop() {
                self.receiver_parked.store(false, Ordering::Relaxed);
                return Poll::Ready(Some(envelope));
            }
            if self.closed.load(Ordering::SeqCst) {
                self.receiver_parked.store(false, Ordering::Relaxed);
                return Poll::Ready(self.pop());
            }
            Poll::Pending
        })
        .await
    }

    /// How many events wait in each lane, `Low` first.
    pub(crate) fn depths(&self) -> [usize; 4] {
        std::array::from_fn(|i| self.lanes[i].len())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lanes.iter().all(ArrayQueue::is_empty)
    }

    /// Closes the queue: parked publishers give up, the receiver sees the end.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.writable.notify_waiters();
        self.reader.wake();
    }

    /// Takes every queued event, highest priority first.
    pub(crate) fn take_all(&self) -> Vec<Arc<Envelope>> {
        let mut out = Vec::new();
        for lane in self.lanes.iter().rev() {
            while let Some(envelope) = lane.pop() {
                out.push(envelope);
            }
        }
        out
    }
}
