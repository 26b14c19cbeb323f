//! Single-flight: at most one load of a key runs in this process at a time; every
//! other caller that wants the same key awaits the same load.
//!
//! A load is a shared future kept in a map by key until it finishes; whoever polls
//! it drives it, so the load goes on when the caller that started it gives up while
//! others still wait. When it finishes it leaves the map, so the next miss after it
//! starts a new load.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;

/// A load in flight, shared by everyone awaiting it.
pub(crate) type Flight<T> = Shared<BoxFuture<'static, T>>;

/// The loads in flight, by key.
pub(crate) struct Flights<T: Clone> {
    inner: Arc<Mutex<Map<T>>>,
}

struct Map<T: Clone> {
    next: u64,
    flights: HashMap<String, (u64, Flight<T>)>,
}

impl<T: Clone> Clone for Flights<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Map {
                next: 0,
                flights: HashMap::new(),
            })),
        }
    }

    /// The load of `key` in flight, or a new one running `load`; and whether it is
    /// new (this caller started it).
    pub(crate) fn join<F>(&self, key: &str, load: impl FnOnce() -> F) -> (Flight<T>, bool)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut map = self.inner.lock();
        if let Some((_, flight)) = map.flights.get(key) {
            return (flight.clone(), false);
        }
        let id = map.next;
        map.next += 1;
        let this = self.clone();
        let owned = key.to_owned();
        let body = load();
        let flight = async move {
            let out = body.await;
            this.land(&owned, id);
            out
        }
        .boxed()
        .shared();
        map.flights.insert(key.to_owned(), (id, flight.clone()));
        (flight, true)
    }

    /// Whether a load of `key` is in flight.
    pub(crate) fn in_flight(&self, key: &str) -> bool {
        self.inner.lock().flights.contains_key(key)
    }

    /// Removes the finished flight `id` of `key` (not a newer one).
    fn land(&self, key: &str, id: u64) {
        let mut map = self.inner.lock();
        if map.flights.get(key).is_some_and(|(held, _)| *held == id) {
            map.flights.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_load_and_the_next_starts_another() {
        let flights: Flights<u32> = Flights::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut waiting = Vec::new();
        let mut started = 0;
        for _ in 0..10 {
            let (runs, gate) = (runs.clone(), gate.clone());
            let (flight, new) = flights.join("k", move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                7
            });
            started += usize::from(new);
            waiting.push(tokio::spawn(flight));
        }
        assert_eq!(started, 1);
        assert!(flights.in_flight("k"));
        // One permit: the one load that waits on it takes it.
        gate.notify_one();
        for w in waiting {
            assert_eq!(w.await.ok(), Some(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!flights.in_flight("k"));
        let (flight, new) = flights.join("k", || async { 8 });
        assert!(new);
        assert_eq!(flight.await, 8);
    }
}
