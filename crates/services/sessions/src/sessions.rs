//! [`Sessions`]: the sessions every backend is used through. It makes the ids,
//! checks input (naming the field), merges data, keeps count, and announces each
//! session that ends on the node's bus: `session.revoked` (a call, or the cap) and
//! `session.expired` (found by the sweeper), each with `{id, subject, reason}`.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use plexus_bus::Bus;
use plexus_core::{Envelope, Payload, Topic};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::{Cap, NewSession, Record, SessionBackend};
use crate::config::SessionsConfig;
use crate::id::{is_id, new_id, short};
use crate::metrics::{Counted, SessionMetrics};
use crate::{MemoryBackend, SessionError};

/// The topic of a session revoked (by a call, or evicted at the cap).
pub const REVOKED: &str = "session.revoked";
/// The topic of a session that expired.
pub const EXPIRED: &str = "session.expired";

/// How many times a merge is tried again when another update came between its
/// read and its write.
const MERGE_ATTEMPTS: usize = 8;

/// A live session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    /// Its id: a secret that grants the session.
    pub id: String,
    /// Whom it belongs to.
    pub subject: String,
    /// Its data.
    pub data: Map<String, Value>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it expires unless touched, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// What a touch extends it by, in milliseconds.
    pub ttl_ms: u64,
    /// Its data's version: 1 at creation, one more at each update.
    pub version: u64,
}

/// How `update` changes the data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateMode {
    /// The new data replaces the old.
    #[default]
    Replace,
    /// The new data's keys are set on the old (a key set to null is removed).
    Merge,
}

/// One page of a subject's sessions.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Page {
    /// The sessions, soonest to expire first.
    pub sessions: Vec<Session>,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<usize>,
}

/// What `session.expired` and `session.revoked` carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// The session's id.
    pub id: String,
    /// Its subject.
    pub subject: String,
    /// `expired`, `revoked` (by a call) or `evicted` (at the subject's cap).
    pub reason: String,
}

/// The sessions, over one backend. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn SessionBackend>,
    config: SessionsConfig,
    metrics: SessionMetrics,
    bus: OnceLock<Bus>,
    /// The generation of the sweeper that may run: a sweeper ends once it changes.
    sweepers: watch::Sender<u64>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("backend", &self.inner.backend.name())
            .finish_non_exhaustive()
    }
}

impl Record {
    fn into_session(self) -> Result<Session, SessionError> {
        let data = serde_json::from_str(&self.data).map_err(|_| SessionError::Storage {
            reason: "a session's data is not a JSON object".to_owned(),
        })?;
        Ok(Session {
            id: self.id,
            subject: self.subject,
            data,
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            ttl_ms: self.ttl_ms,
            version: self.version,
        })
    }
}

fn found(record: Option<Record>) -> Result<Session, SessionError> {
    record.ok_or(SessionError::NotFound)?.into_session()
}

impl Sessions {
    /// The sessions over `backend`, held to `config`.
    pub fn new(
        backend: Arc<dyn SessionBackend>,
        config: SessionsConfig,
        metrics: SessionMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                config,
                metrics,
                bus: OnceLock::new(),
                sweepers: watch::Sender::new(0),
            }),
        }
    }

    /// Sessions in process, held to `config`.
    pub fn in_memory(config: SessionsConfig) -> Self {
        let backend = Arc::new(MemoryBackend::new(config.max_sessions));
        Self::new(backend, config, SessionMetrics::new())
    }

    /// Announces ended sessions on `bus` from now on (the first bus attached stays).
    pub fn attach_bus(&self, bus: Bus) {
        let _ = self.inner.bus.set(bus);
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionsConfig {
        &self.inner.config
    }

    /// Its counters.
    pub fn metrics(&self) -> &SessionMetrics {
        &self.inner.metrics
    }

    /// The backend's name: `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// Counts a backend failure before passing it on.
    fn counted<T>(&self, result: Result<T, SessionError>) -> Result<T, SessionError> {
        if let Err(e @ (SessionError::Backend(_) | SessionError::Storage { .. })) = &result {
            self.inner.metrics.error(e.kind());
        }
        result
    }

    fn check_id(id: &str) -> Result<(), SessionError> {
        if is_id(id) {
            Ok(())
        } else {
            Err(SessionError::invalid("/id", "is not a session id"))
        }
    }

    fn check_subject(&self, subject: &str) -> Result<(), SessionError> {
        let max = self.inner.config.max_subject_bytes;
        if subject.is_empty() {
            return Err(SessionError::invalid("/subject", "must not be empty"));
        }
        if subject.len() > max {
            return Err(SessionError::invalid(
                "/subject",
                format!("is longer than sessions.max_subject_bytes ({max})"),
            ));
        }
        Ok(())
    }

    /// `data` as JSON text, if it is an object within `max_data_bytes`.
    fn data_text(&self, data: &Value) -> Result<String, SessionError> {
        if !data.is_object() {
            return Err(SessionError::invalid("/data", "must be a JSON object"));
        }
        let text = data.to_string();
        let max = self.inner.config.max_data_bytes;
        if text.len() > max {
            return Err(SessionError::invalid(
                "/data",
                format!(
                    "is {} bytes as JSON, over sessions.max_data_bytes ({max})",
                    text.len()
                ),
            ));
        }
        Ok(text)
    }

    /// Creates a session for `subject` with `ttl_ms` (the configured TTL when
    /// `None`) and `data` (an empty object when `None`). Past the subject's cap,
    /// its session that expires soonest is evicted, or the create is refused.
    pub async fn create(
        &self,
        subject: &str,
        ttl_ms: Option<u64>,
        data: Option<Value>,
    ) -> Result<Session, SessionError> {
        let config = &self.inner.config;
        self.check_subject(subject)?;
        let ttl_ms = ttl_ms.unwrap_or(config.ttl_ms);
        if ttl_ms == 0 {
            return Err(SessionError::invalid("/ttl_ms", "must be at least 1"));
        }
        if ttl_ms > config.max_ttl_ms {
            return Err(SessionError::invalid(
                "/ttl_ms",
                format!("is over sessions.max_ttl_ms ({})", config.max_ttl_ms),
            ));
        }
        let data = self.data_text(&data.unwrap_or_else(|| Value::Object(Map::new())))?;
        let id = new_id();
        let new = NewSession {
            id: &id,
            subject,
            data: &data,
            ttl_ms,
            lifetime_ms: config.max_lifetime_ms,
        };
        let cap = Cap {
            max: config.max_per_subject,
            on_cap: config.on_cap,
        };
        let metrics = &self.inner.metrics;
        let created = match self.counted(self.inner.backend.create(new, cap).await) {
            Ok(created) => created,
            Err(e) => {
                match e {
                    SessionError::CapReached { .. } => metrics.count(Counted::CapReached, 1),
                    SessionError::Full { .. } => metrics.count(Counted::Full, 1),
                    _ => {}
                }
                return Err(e);
            }
        };
        metrics.count(Counted::Created, 1);
        metrics.count(Counted::Evicted, created.evicted.len() as u64);
        self.update_active();
        for evicted in &created.evicted {
            tracing::debug!(id = short(evicted), "session evicted at its subject's cap");
            self.announce(REVOKED, evicted, subject, "evicted").await;
        }
        created.record.into_session()
    }

    /// The live session `id`, or [`SessionError::NotFound`].
    pub async fn get(&self, id: &str) -> Result<Session, SessionError> {
        Self::check_id(id)?;
        found(self.counted(self.inner.backend.get(id).await)?)
    }

    /// Extends the live session `id` by its TTL from now (no further than
    /// `max_lifetime_ms` from its creation).
    pub async fn touch(&self, id: &str) -> Result<Session, SessionError> {
        Self::check_id(id)?;
        let session = found(self.counted(self.inner.backend.touch(id).await)?)?;
        self.inner.metrics.count(Counted::Touched, 1);
        Ok(session)
    }

    /// Changes the data of the live session `id`: replaced, or merged into (a key
    /// set to null removed). With `expected_version`, only if the session is still
    /// at that version ([`SessionError::Conflict`] otherwise).
    pub async fn update(
        &self,
        id: &str,
        data: Value,
        mode: UpdateMode,
        expected_version: Option<u64>,
    ) -> Result<Session, SessionError> {
        Self::check_id(id)?;
        let Value::Object(patch) = data else {
            return Err(SessionError::invalid("/data", "must be a JSON object"));
        };
        let backend = &self.inner.backend;
        let record = match mode {
            UpdateMode::Replace => {
                let text = self.data_text(&Value::Object(patch))?;
                self.counted(backend.replace(id, &text, expected_version).await)?
            }
            UpdateMode::Merge => self.merge(id, &patch, expected_version).await?,
        };
        let session = found(record)?;
        self.inner.metrics.count(Counted::Updated, 1);
        Ok(session)
    }

    /// Merges `patch` into the data of `id`: read, merge, then write only if no
    /// update came between (tried again a few times when none was expected).
    async fn merge(
        &self,
        id: &str,
        patch: &Map<String, Value>,
        expected_version: Option<u64>,
    ) -> Result<Option<Record>, SessionError> {
        let backend = &self.inner.backend;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(current) = self.counted(backend.get(id).await)? else {
                return Ok(None);
            };
            let version = current.version;
            if let Some(expected) = expected_version.filter(|v| *v != version) {
                return Err(SessionError::Conflict {
                    expected,
                    actual: version,
                });
            }
            let mut data = current.into_session()?.data;
            for (key, value) in patch {
                if value.is_null() {
                    data.remove(key);
                } else {
                    data.insert(key.clone(), value.clone());
                }
            }
            let text = self.data_text(&Value::Object(data))?;
            match self.counted(backend.replace(id, &text, Some(version)).await) {
                Err(SessionError::Conflict { .. })
                    if expected_version.is_none() && attempt < MERGE_ATTEMPTS => {}
                Err(SessionError::Conflict { actual, .. }) => {
                    return Err(SessionError::Conflict {
                        expected: expected_version.unwrap_or(version),
                        actual,
                    });
                }
                other => return other,
            }
        }
    }

    /// Revokes the session `id`; whether it was live.
    pub async fn revoke(&self, id: &str) -> Result<bool, SessionError> {
        Self::check_id(id)?;
        let Some(subject) = self.counted(self.inner.backend.revoke(id).await)? else {
            return Ok(false);
        };
        self.inner.metrics.count(Counted::Revoked, 1);
        self.update_active();
        tracing::debug!(id = short(id), "session revoked");
        self.announce(REVOKED, id, &subject, "revoked").await;
        Ok(true)
    }

    /// Revokes every live session of `subject`; how many.
    pub async fn revoke_subject(&self, subject: &str) -> Result<u64, SessionError> {
        self.check_subject(subject)?;
        let ids = self.counted(self.inner.backend.revoke_subject(subject).await)?;
        self.inner.metrics.count(Counted::Revoked, ids.len() as u64);
        self.update_active();
        for id in &ids {
            self.announce(REVOKED, id, subject, "revoked").await;
        }
        Ok(ids.len() as u64)
    }

    /// Up to `limit` (at most `max_page`; `max_page` when `None`) live sessions of
    /// `subject` after the first `offset`, soonest to expire first.
    pub async fn list(
        &self,
        subject: &str,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Page, SessionError> {
        self.check_subject(subject)?;
        let max = self.inner.config.max_page;
        let limit = limit.unwrap_or(max);
        if limit == 0 || limit > max {
            return Err(SessionError::invalid(
                "/limit",
                format!("must be between 1 and sessions.max_page ({max})"),
            ));
        }
        let page = self.counted(self.inner.backend.list(subject, offset, limit).await)?;
        let next_offset = page.more.then(|| offset + page.records.len());
        Ok(Page {
            sessions: page
                .records
                .into_iter()
                .map(Record::into_session)
                .collect::<Result<_, _>>()?,
            next_offset,
        })
    }

    /// Takes up to `sweep_batch` expired sessions out and announces each as
    /// `session.expired`; how many.
    pub async fn sweep(&self) -> Result<usize, SessionError> {
        let batch = self.inner.config.sweep_batch;
        let ended = self.counted(self.inner.backend.sweep(batch).await)?;
        self.inner
            .metrics
            .count(Counted::Expired, ended.len() as u64);
        self.update_active();
        for session in &ended {
            self.announce(EXPIRED, &session.id, &session.subject, "expired")
                .await;
        }
        Ok(ended.len())
    }

    /// Starts sweeping every `sweep_interval_ms` (one batch per tick, so the work
    /// of a tick is bounded), ending any sweeper started before. It sweeps only
    /// once a bus is attached (a session is never taken out unannounced), and ends
    /// at [`stop_sweeper`](Self::stop_sweeper), between two sweeps, or when every
    /// clone of these sessions is gone.
    pub fn start_sweeper(&self) -> JoinHandle<()> {
        let mut generation = 0;
        self.inner.sweepers.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        let mut changed = self.inner.sweepers.subscribe();
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = Duration::from_millis(self.inner.config.sweep_interval_ms);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = changed.wait_for(|g| *g != generation) => return,
                    _ = ticks.tick() => {}
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                if inner.bus.get().is_none() {
                    continue;
                }
                let sessions = Sessions { inner };
                if let Err(error) = sessions.sweep().await {
                    tracing::warn!(%error, "session sweep failed");
                }
            }
        })
    }

    /// Ends the running sweeper once its current sweep (if any) is announced.
    pub fn stop_sweeper(&self) {
        self.inner.sweepers.send_modify(|g| *g += 1);
    }

    fn update_active(&self) {
        if let Some(n) = self.inner.backend.count() {
            self.inner.metrics.set_active(n);
        }
    }

    /// Publishes `{id, subject, reason}` on `topic`, if a bus is attached.
    async fn announce(&self, topic: &'static str, id: &str, subject: &str, reason: &str) {
        let Some(bus) = self.inner.bus.get() else {
            return;
        };
        let event = SessionEvent {
            id: id.to_owned(),
            subject: subject.to_owned(),
            reason: reason.to_owned(),
        };
        let envelope = Topic::new(topic)
            .ok()
            .zip(Payload::json(&event).ok())
            .map(|(topic, payload)| Envelope::new(topic, payload));
        let published = match envelope {
            Some(envelope) => bus.publish(envelope).await.map_err(|e| e.to_string()),
            None => Err("the event could not be encoded".to_owned()),
        };
        if let Err(error) = published {
            self.inner.metrics.count(Counted::EventFailed, 1);
            tracing::warn!(topic, id = short(id), %error, "session event not published");
        }
    }
}
