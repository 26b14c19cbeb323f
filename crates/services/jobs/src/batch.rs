//! [`Batcher`]: requests served in batches. Each asker hands its item and waits
//! for its answer; one task takes the first item waiting and every other one
//! waiting behind it (up to a bound), serves them in one step, and answers each
//! in order. Under load the batches grow by themselves (what arrives during a
//! step waits for the next); alone, an item is served at once. The queue uses
//! it for enqueues (one transaction for many) and for storing results.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// The requests a [`Batcher`] hands its server.
pub(crate) type Requests<T, R> = mpsc::Receiver<(T, oneshot::Sender<R>)>;

/// Where askers hand their items.
#[derive(Debug)]
pub(crate) struct Batcher<T, R> {
    tx: mpsc::Sender<(T, oneshot::Sender<R>)>,
}

impl<T, R> Batcher<T, R> {
    /// A batcher holding at most `capacity` items waiting (askers beyond it wait
    /// their turn to hand theirs), and the requests for [`serve`].
    pub(crate) fn new(capacity: usize) -> (Self, Requests<T, R>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }

    /// Hands `item` and waits for its answer; `None` when the server is gone.
    pub(crate) async fn ask(&self, item: T) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).await.ok()?;
        answer.await.ok()
    }
}

/// Serves `requests` in batches of at most `max` with `step`, which answers each
/// item of a batch in order (an item it gives no answer gets `None` from
/// [`Batcher::ask`]), or `None` to stop. Ends when every batcher is gone.
pub(crate) async fn serve<T, R, F, Fut>(mut requests: Requests<T, R>, max: usize, mut step: F)
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Option<Vec<R>>>,
{
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < max.max(1) {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
        let Some(answers) = step(items).await else {
            return;
        };
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn items_waiting_together_are_served_in_one_step_each_answered() {
        let (batcher, requests) = Batcher::<u32, u32>::new(16);
        let batcher = Arc::new(batcher);
        let steps = Arc::new(parking_lot::Mutex::new(Vec::new()));
        // Ten askers hand their items before the server starts: one step of four,
        // then of four, then of two.
        let askers: Vec<_> = (0..10)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.ask(i).await })
            })
            .collect();
        while batcher.tx.capacity() > 6 {
            tokio::task::yield_now().await;
        }
        let seen = steps.clone();
        tokio::spawn(serve(requests, 4, move |items: Vec<u32>| {
            seen.lock().push(items.len());
            async move { Some(items.into_iter().map(|i| i * 10).collect()) }
        }));
        let mut answers = Vec::new();
        for a in askers {
            answers.push(a.await.unwrap());
        }
        let mut sorted: Vec<u32> = answers.iter().map(|a| a.unwrap()).collect();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(*steps.lock(), [4, 4, 2]);
    }

    #[tokio::test]
    async fn an_item_left_unanswered_gets_none() {
        let (batcher, requests) = Batcher::<u32, u32>::new(4);
        tokio::spawn(serve(requests, 4, |_items: Vec<u32>| async {
            Some(Vec::new())
        }));
        assert_eq!(batcher.ask(1).await, None);
    }
}
