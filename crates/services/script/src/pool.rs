//! [`Pool`]: the threads scripts run on, never the node's async workers, so a busy
//! script never stalls the node. `max_concurrent` threads (each with a stack of
//! `stack_bytes`) take jobs from one bounded queue of `max_queued`; a job offered
//! when every thread is busy and the queue is full is refused at once
//! ([`ScriptError::Overloaded`]). A panic inside a job is caught: the thread lives
//! on and the job's caller sees its answer channel closed. The threads end when the
//! pool is dropped, after their current job.

use std::panic::AssertUnwindSafe;

use crossbeam_channel::{Sender, TrySendError};

use crate::error::ScriptError;

/// One unit of work for a pool thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// The script threads and their queue.
#[derive(Debug)]
pub(crate) struct Pool {
    jobs: Sender<Job>,
    threads: usize,
    queued: usize,
}

impl Pool {
    /// Starts `threads` threads named `plexus-script-N` sharing a queue of `queued`.
    pub(crate) fn new(threads: usize, queued: usize, stack_bytes: usize) -> std::io::Result<Self> {
        let (jobs, rx) = crossbeam_channel::bounded::<Job>(queued);
        for n in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("plexus-script-{n}"))
                .stack_size(stack_bytes)
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                            tracing::error!("a script's job panicked; its thread goes on");
                        }
                    }
                })?;
        }
        Ok(Self {
            jobs,
            threads,
            queued,
        })
    }

    /// Hands `job` to an idle thread or the queue, or refuses it.
    pub(crate) fn submit(&self, job: Job) -> Result<(), ScriptError> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => ScriptError::Overloaded {
                max_concurrent: self.threads,
                max_queued: self.queued,
            },
            TrySendError::Disconnected(_) => ScriptError::Unavailable {
                reason: "the script threads are gone".to_owned(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::mpsc;

    use super::*;

    /// Hands `job` to the pool, waiting for an idle thread (a rendezvous queue
    /// takes a job only when a thread waits for one).
    fn hand(pool: &Pool, job: Job) {
        let mut job = job;
        loop {
            match pool.jobs.try_send(job) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    job = back;
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn a_full_pool_refuses_and_a_panic_leaves_the_thread_serving() {
        let pool = Pool::new(1, 0, 256 * 1024).unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        hand(
            &pool,
            Box::new(move || {
                entered_tx.send(()).unwrap();
                released.recv().unwrap();
            }),
        );
        entered.recv().unwrap();
        let refused = pool.submit(Box::new(|| {})).unwrap_err();
        assert!(matches!(
            refused,
            ScriptError::Overloaded {
                max_concurrent: 1,
                max_queued: 0
            }
        ));
        release.send(()).unwrap();

        hand(&pool, Box::new(|| panic!("inside a job")));
        let (done_tx, done) = mpsc::channel();
        hand(&pool, Box::new(move || done_tx.send(42).unwrap()));
        assert_eq!(done.recv().unwrap(), 42);
    }
}
