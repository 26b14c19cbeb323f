//! [`Pool`]: the threads scripts run on, never the node's async workers, so a busy
//! script never stalls the node. `max_concurrent` threads (each with a stack of
//! `stack_bytes`) take jobs from one queue; at most `max_concurrent + max_queued`
//! jobs are admitted at a time, and a job offered past that is refused at once
//! ([`ScriptError::Overloaded`]). Admission is a counted [`Permit`] that the job
//! itself gives back, so a job frees its place before it answers: a caller that
//! gets an answer and at once offers the next job always finds the place free,
//! even while the thread is still on its way back to the queue. A panic inside a
//! job is caught: the thread lives on, the permit is given back as the job
//! unwinds, and the job's caller sees its answer channel closed. The threads end
//! when the pool is dropped, after their current job.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::Sender;

use crate::error::ScriptError;

/// One unit of work for a pool thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// A job's place in the pool, given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The script threads and their queue.
#[derive(Debug)]
pub(crate) struct Pool {
    jobs: Sender<Job>,
    admitted: Arc<AtomicUsize>,
    threads: usize,
    queued: usize,
}

impl Pool {
    /// Starts `threads` threads named `plexus-script-N` that admit `queued` more
    /// jobs waiting beside the running ones.
    pub(crate) fn new(threads: usize, queued: usize, stack_bytes: usize) -> std::io::Result<Self> {
        // Unbounded here: the permits bound what enters.
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
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
            admitted: Arc::new(AtomicUsize::new(0)),
            threads,
            queued,
        })
    }

    /// Admits `job` if there is a place for it, or refuses it. The job is given
    /// its [`Permit`]; it should drop it before it answers its caller.
    pub(crate) fn submit(
        &self,
        job: impl FnOnce(Permit) + Send + 'static,
    ) -> Result<(), ScriptError> {
        let limit = self.threads + self.queued;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| ScriptError::Overloaded {
                max_concurrent: self.threads,
                max_queued: self.queued,
            })?;
        let permit = Permit(self.admitted.clone());
        self.jobs
            .send(Box::new(move || job(permit)))
            .map_err(|_| ScriptError::Unavailable {
                reason: "the script threads are gone".to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::mpsc;

    use super::*;

    #[test]
    fn a_full_pool_refuses_and_a_panic_leaves_the_thread_serving() {
        let pool = Pool::new(1, 0, 256 * 1024).unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        pool.submit(move |_permit| {
            entered_tx.send(()).unwrap();
            released.recv().unwrap();
        })
        .unwrap();
        entered.recv().unwrap();
        let refused = pool.submit(|_| {}).unwrap_err();
        assert!(matches!(
            refused,
            ScriptError::Overloaded {
                max_concurrent: 1,
                max_queued: 0
            }
        ));
        release.send(()).unwrap();

        // The permit is given back as the panicking job unwinds; the answer of
        // the next job frees its place before it is sent, so each submit right
        // after an answer finds the one place free.
        let (panicked_tx, panicked) = mpsc::channel::<()>();
        loop {
            // The first job may still hold its place for a moment after `release`.
            let tx = panicked_tx.clone();
            if pool
                .submit(move |permit| {
                    // Dropped in reverse order as it unwinds: the permit first.
                    let _keep = tx;
                    let _permit = permit;
                    panic!("inside a job")
                })
                .is_ok()
            {
                break;
            }
            std::thread::yield_now();
        }
        drop(panicked_tx);
        assert!(
            panicked.recv().is_err(),
            "the job's sender dropped as it unwound"
        );
        for n in 0..100 {
            let (done_tx, done) = mpsc::channel();
            pool.submit(move |permit| {
                drop(permit);
                done_tx.send(n).unwrap();
            })
            .unwrap();
            assert_eq!(done.recv().unwrap(), n);
        }
    }
}
