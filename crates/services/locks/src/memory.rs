//! [`MemoryBackend`]: locks held in this process, for the callers of one node.
//!
//! Leases run on [`tokio::time::Instant`], so tests drive them under paused time.
//! Tokens come from one counter for all names (so they also increase per name),
//! floored by the wall clock in microseconds: a restarted process starts above the
//! tokens it gave before (see [`clock_floor`](crate::backend)). At most
//! `locks.max_locks` locks are held at once; expired ones are dropped when room is
//! needed.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::LockError;
use crate::backend::{Attempt, Held, LockBackend, clock_floor};

#[derive(Debug)]
struct Entry {
    holder: String,
    token: u64,
    until: Instant,
}

#[derive(Debug, Default)]
struct State {
    locks: HashMap<String, Entry>,
    last: u64,
}

impl State {
    /// The live grant of `lock`, dropping an expired one.
    fn live(&mut self, lock: &str, now: Instant) -> Option<&mut Entry> {
        if self.locks.get(lock).is_some_and(|e| e.until <= now) {
            self.locks.remove(lock);
        }
        self.locks.get_mut(lock)
    }
}

/// Locks in this process.
#[derive(Debug)]
pub struct MemoryBackend {
    state: Mutex<State>,
    max_locks: usize,
}

impl MemoryBackend {
    /// Holds at most `max_locks` locks at once.
    pub fn new(max_locks: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            max_locks,
        }
    }

    /// How many grants are in the table (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.state.lock().locks.len()
    }

    /// Whether no grant is in the table.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[plexus_core::async_trait]
impl LockBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn try_acquire(
        &self,
        lock: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Attempt, LockError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        if let Some(e) = state.live(lock, now) {
            return Ok(Attempt::Busy(e.until - now));
        }
        if state.locks.len() >= self.max_locks {
            state.locks.retain(|_, e| e.until > now);
            if state.locks.len() >= self.max_locks {
                return Err(LockError::TooMany {
                    limit: self.max_locks,
                });
            }
        }
        let token = (state.last + 1).max(clock_floor());
        state.last = token;
        state.locks.insert(
            lock.to_owned(),
            Entry {
                holder: holder.to_owned(),
                token,
                until: now + lease,
            },
        );
        Ok(Attempt::Granted(token))
    }

    async fn extend(&self, lock: &str, token: u64, lease: Duration) -> Result<bool, LockError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        Ok(match state.live(lock, now) {
            Some(e) if e.token == token => {
                e.until = now + lease;
                true
            }
            _ => false,
        })
    }

    async fn release(&self, lock: &str, token: u64) -> Result<bool, LockError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let mine = state.live(lock, now).is_some_and(|e| e.token == token);
        if mine {
            state.locks.remove(lock);
        }
        Ok(mine)
    }

    async fn status(&self, lock: &str) -> Result<Option<Held>, LockError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        Ok(state.live(lock, now).map(|e| Held {
            holder: e.holder.clone(),
            token: e.token,
            remaining: e.until - now,
        }))
    }
}
