//! [`MemoryBackend`]: sessions in this process, bounded in number, on Tokio's clock
//! (so tests move time with `tokio::time::advance`), lost when the process stops.
//!
//! Three indexes under one lock: the records by id, `(expiry, id)` in order for the
//! sweep, and each subject's `(expiry, id)` for its cap and its list. A session
//! past its expiry is not found at once; the sweep takes it out and it is announced
//! then.

use std::collections::{BTreeSet, HashMap};

use parking_lot::Mutex;

use crate::SessionError;
use crate::backend::{
    Cap, Created, Ended, Held, NewSession, Record, RecordPage, SessionBackend, expiry, plan_create,
};
use crate::clock::Clock;

/// Sessions in process.
#[derive(Debug)]
pub struct MemoryBackend {
    max_sessions: usize,
    clock: Clock,
    state: Mutex<State>,
}

type ByExpiry = BTreeSet<(u64, String)>;

#[derive(Debug, Default)]
struct State {
    records: HashMap<String, Record>,
    by_expiry: ByExpiry,
    by_subject: HashMap<String, ByExpiry>,
}

/// The live entries of an index at `now`.
fn live(index: &ByExpiry, now: u64) -> impl Iterator<Item = &(u64, String)> {
    index.range((now.saturating_add(1), String::new())..)
}

impl State {
    fn live(&self, id: &str, now: u64) -> Option<&Record> {
        self.records.get(id).filter(|r| r.expires_at_ms > now)
    }

    fn insert(&mut self, record: Record) {
        let key = (record.expires_at_ms, record.id.clone());
        self.by_expiry.insert(key.clone());
        self.by_subject
            .entry(record.subject.clone())
            .or_default()
            .insert(key);
        self.records.insert(record.id.clone(), record);
    }

    fn remove(&mut self, id: &str) -> Option<Record> {
        let record = self.records.remove(id)?;
        let key = (record.expires_at_ms, record.id.clone());
        self.by_expiry.remove(&key);
        if let Some(index) = self.by_subject.get_mut(&record.subject) {
            index.remove(&key);
            if index.is_empty() {
                self.by_subject.remove(&record.subject);
            }
        }
        Some(record)
    }

    fn live_of(&self, subject: &str, now: u64) -> Vec<String> {
        self.by_subject
            .get(subject)
            .map(|index| live(index, now).map(|(_, id)| id.clone()).collect())
            .unwrap_or_default()
    }
}

impl MemoryBackend {
    /// An empty backend holding at most `max_sessions`.
    pub fn new(max_sessions: usize) -> Self {
        Self {
            max_sessions,
            clock: Clock::new(),
            state: Mutex::new(State::default()),
        }
    }
}

#[plexus_core::async_trait]
impl SessionBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn create(&self, new: NewSession<'_>, cap: Cap) -> Result<Created, SessionError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        let live = state.live_of(new.subject, now);
        let held = Held {
            now: state.records.len(),
            max: self.max_sessions,
        };
        let created = plan_create(&new, cap, now, live, held)?;
        for id in &created.evicted {
            state.remove(id);
        }
        state.insert(created.record.clone());
        Ok(created)
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, SessionError> {
        let now = self.clock.now_ms();
        Ok(self.state.lock().live(id, now).cloned())
    }

    async fn touch(&self, id: &str) -> Result<Option<Record>, SessionError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        let Some(mut record) = state.live(id, now).cloned() else {
            return Ok(None);
        };
        state.remove(id);
        record.expires_at_ms = expiry(now, record.ttl_ms, record.deadline_ms);
        state.insert(record.clone());
        Ok(Some(record))
    }

    async fn replace(
        &self,
        id: &str,
        data: &str,
        expected: Option<u64>,
    ) -> Result<Option<Record>, SessionError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        if state.live(id, now).is_none() {
            return Ok(None);
        }
        let Some(record) = state.records.get_mut(id) else {
            return Ok(None);
        };
        if let Some(expected) = expected.filter(|v| *v != record.version) {
            return Err(SessionError::Conflict {
                expected,
                actual: record.version,
            });
        }
        data.clone_into(&mut record.data);
        record.version += 1;
        Ok(Some(record.clone()))
    }

    async fn revoke(&self, id: &str) -> Result<Option<String>, SessionError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        if state.live(id, now).is_none() {
            return Ok(None);
        }
        Ok(state.remove(id).map(|r| r.subject))
    }

    async fn revoke_subject(&self, subject: &str) -> Result<Vec<String>, SessionError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        let ids = state.live_of(subject, now);
        for id in &ids {
            state.remove(id);
        }
        Ok(ids)
    }

    async fn list(
        &self,
        subject: &str,
        offset: usize,
        limit: usize,
    ) -> Result<RecordPage, SessionError> {
        let now = self.clock.now_ms();
        let state = self.state.lock();
        let ids = state.live_of(subject, now);
        let records: Vec<Record> = ids
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|id| state.records.get(id).cloned())
            .collect();
        Ok(RecordPage {
            more: ids.len() > offset.saturating_add(limit),
            records,
        })
    }

    async fn sweep(&self, max: usize) -> Result<Vec<Ended>, SessionError> {
        let now = self.clock.now_ms();
        let mut state = self.state.lock();
        let due: Vec<String> = state
            .by_expiry
            .range(..(now.saturating_add(1), String::new()))
            .take(max)
            .map(|(_, id)| id.clone())
            .collect();
        Ok(due
            .iter()
            .filter_map(|id| state.remove(id))
            .map(|r| Ended {
                id: r.id,
                subject: r.subject,
            })
            .collect())
    }

    fn count(&self) -> Option<u64> {
        Some(self.state.lock().records.len() as u64)
    }
}
