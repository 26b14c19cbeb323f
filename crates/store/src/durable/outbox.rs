//! [`Outbox`]: durable events written with the data change that caused them, kept
//! in the `plexus_outbox` table until the relay has delivered them, and readable
//! back from an offset or a time.
//!
//! Offsets: each event gets the next offset of the outbox when it is written. On
//! SQLite writers take the database lock one at a time; on PostgreSQL an append
//! takes a transaction-scoped advisory lock (per schema) just before its commit. So
//! on both, a committed event never gets an offset below one already visible to a
//! reader, and replaying "from offset n" misses nothing committed later. Offsets of
//! rolled-back transactions are skipped, never reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use parking_lot::RwLock;
use plexus_core::{Envelope, EventId, Timestamp, Topic, TopicPattern};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

use super::error::OutboxError;
use super::rows::{int, json_column, json_object, json_param, opt_str_at, u64_at, unsigned};
use crate::backend::{DocRow, Param, Statement};
use crate::metrics::StatementKind;
use crate::store::StoreSession;
use crate::{BackendKind, DataStore, Op, OpResult, PutMode, SqlBuilder, Store, StoreError, Stored};

/// The label the outbox's statements are timed under, as a collection.
const OUTBOX: &str = "outbox";

/// The bounds the outbox holds to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// The most undelivered events the outbox holds; an append past it fails with
    /// [`OutboxError::Full`] and writes nothing. The count is an estimate kept in
    /// memory and recounted by the relay whenever it catches up. Default 1,000,000.
    pub max_pending: u64,
    /// The largest encoded envelope, in bytes. Default 1 MiB.
    pub max_event_bytes: usize,
    /// The most events one transaction may carry. Default 256.
    pub max_events_per_transaction: usize,
    /// How long a delivered (or given up) event is kept for replay. Default 7 days.
    pub retention_ms: u64,
    /// The most delivered events kept for replay, newest kept. Default 1,000,000.
    pub max_retained: u64,
    /// The largest `limit` one replay call may ask for. Default 10,000.
    pub max_replay_limit: u32,
    /// The most rows one replay call reads to find its events (events of other
    /// topics are read and skipped). Default 100,000.
    pub max_replay_scan: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_pending: 1_000_000,
            max_event_bytes: 1 << 20,
            max_events_per_transaction: 256,
            retention_ms: 7 * 24 * 3600 * 1000,
            max_retained: 1_000_000,
            max_replay_limit: 10_000,
            max_replay_scan: 100_000,
        }
    }
}

impl OutboxConfig {
    /// Checks every field, naming the first out of range.
    pub fn validate(&self) -> Result<(), OutboxError> {
        let bad = |field: &'static str, reason: &str| {
            Err(OutboxError::InvalidArgument {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.max_pending == 0 {
            return bad("max_pending", "must be at least 1");
        }
        if self.max_event_bytes == 0 {
            return bad("max_event_bytes", "must be at least 1");
        }
        if self.max_events_per_transaction == 0 {
            return bad("max_events_per_transaction", "must be at least 1");
        }
        if self.max_retained == 0 {
            return bad("max_retained", "must be at least 1");
        }
        if self.max_replay_limit == 0 {
            return bad("max_replay_limit", "must be at least 1");
        }
        if self.max_replay_scan < u64::from(self.max_replay_limit) {
            return bad("max_replay_scan", "must be at least max_replay_limit");
        }
        Ok(())
    }
}

/// Where a replay starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFrom {
    /// At this offset (inclusive). A consumer that saw offset `n` continues from
    /// `n + 1`.
    Offset(u64),
    /// At the first event whose envelope timestamp is at or after this time.
    Time(Timestamp),
}

/// Where one event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Written, not yet acknowledged by the bus.
    Pending,
    /// Acknowledged by the bus.
    Delivered,
    /// Given up: the bus refuses it for good (too large, malformed).
    Failed,
}

/// One event read back by [`Outbox::replay`].
#[derive(Clone, Debug)]
pub struct Replayed {
    /// Its offset in the outbox.
    pub offset: u64,
    /// Whether it has been delivered.
    pub state: DeliveryState,
    /// How many times the relay offered it to the bus.
    pub attempts: u64,
    /// The event as written (same id, correlation id, headers and payload).
    pub envelope: Envelope,
}

/// A page of replayed events.
#[derive(Clone, Debug)]
pub struct ReplayPage {
    /// The events matching the pattern, in offset order.
    pub events: Vec<Replayed>,
    /// Where to continue: `Some(offset)` when the log holds more rows than this call
    /// read, `None` when it reached the end of what is committed now.
    pub next_offset: Option<u64>,
}

/// One event written to the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The event's id, carried unchanged to every delivery.
    pub id: EventId,
    /// Its offset.
    pub offset: u64,
}

/// An undelivered row, as the relay reads it.
pub(super) struct PendingRow {
    pub(super) offset: u64,
    pub(super) envelope: Result<Envelope, String>,
}

struct Sql {
    insert: Arc<str>,
    lock: Option<Arc<str>>,
    pending: Arc<str>,
    count_pending: Arc<str>,
    select: String,
    prune_age: Arc<str>,
    prune_count: Arc<str>,
    attempt: Arc<str>,
    fail: Arc<str>,
}

impl Sql {
    fn new(kind: BackendKind) -> Self {
        let doc = json_object(
            kind,
            &[
                ("delivered_us", "delivered_us"),
                ("attempts", "attempts"),
                ("failed", "failed"),
                ("envelope", &json_column(kind, "envelope")),
            ],
        );
        let select = format!(
            "SELECT CAST(seq AS TEXT) AS id, seq AS version, {doc} AS doc FROM plexus_outbox"
        );
        Self {
            insert: format!(
                "INSERT INTO plexus_outbox (event_id, topic, correlation_id, at_us, envelope) \
                 VALUES ($1, $2, $3, $4, {}) RETURNING seq",
                json_param(kind, 5)
            )
            .into(),
            // Offsets follow commit order: one appender at a time per schema, from
            // its first insert until its commit.
            lock: match kind {
                BackendKind::Sqlite => None,
                BackendKind::Postgres => Some(
                    "SELECT pg_advisory_xact_lock(1886152047, hashtext(current_schema()))".into(),
                ),
            },
            pending: format!("{select} WHERE delivered_us IS NULL ORDER BY seq LIMIT $1").into(),
            count_pending: "SELECT COUNT(*) FROM plexus_outbox WHERE delivered_us IS NULL".into(),
            prune_age:
                "DELETE FROM plexus_outbox WHERE delivered_us IS NOT NULL AND delivered_us < $1"
                    .into(),
            prune_count: "DELETE FROM plexus_outbox WHERE delivered_us IS NOT NULL AND seq <= \
                 (SELECT seq FROM plexus_outbox WHERE delivered_us IS NOT NULL \
                  ORDER BY seq DESC LIMIT 1 OFFSET $1)"
                .into(),
            attempt:
                "UPDATE plexus_outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1"
                    .into(),
            fail: "UPDATE plexus_outbox SET attempts = attempts + 1, last_error = $2, failed = 1, \
                   delivered_us = $3 WHERE seq = $1"
                .into(),
            select,
        }
    }
}

struct Inner {
    ds: DataStore,
    config: OutboxConfig,
    patterns: RwLock<Vec<TopicPattern>>,
    sql: Sql,
    notify: Notify,
    pending: AtomicU64,
}

/// The durable outbox over a [`DataStore`]. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use plexus_core::{Envelope, Payload, Topic};
/// use plexus_store::{DataStore, Outbox, OutboxConfig, PutMode, RelayConfig, StoreConfig};
/// use serde_json::json;
///
/// let ds = DataStore::connect(&StoreConfig::sqlite_in("data")).await?;
/// let outbox = Outbox::open(ds, OutboxConfig::default()).await?;
/// outbox.declare_durable("cases.>")?;
/// let bus = plexus_bus::Bus::new();
/// let relay = outbox.spawn_relay(bus.clone(), RelayConfig::default())?;
///
/// // The document and its event commit together, or neither does.
/// let event = Envelope::new(Topic::new("cases.opened")?, Payload::json(&json!({"id": "c1"}))?);
/// outbox
///     .put("cases", "c1", &json!({"status": "open"}), PutMode::Insert, None, vec![event])
///     .await?;
/// relay.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("durable", &self.durable_patterns())
            .field("pending", &self.pending_estimate())
            .finish_non_exhaustive()
    }
}

fn encoded(envelope: &Envelope, limit: usize) -> Result<String, OutboxError> {
    let bytes = envelope.to_json().map_err(|e| OutboxError::Encode {
        id: envelope.id().to_string(),
        topic: envelope.topic().as_str().to_owned(),
        reason: e.to_string(),
    })?;
    if bytes.len() > limit {
        return Err(OutboxError::TooLarge {
            id: envelope.id().to_string(),
            topic: envelope.topic().as_str().to_owned(),
            size: bytes.len(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|e| OutboxError::Encode {
        id: envelope.id().to_string(),
        topic: envelope.topic().as_str().to_owned(),
        reason: e.to_string(),
    })
}

/// An event checked and encoded, ready to insert.
struct Encoded {
    id: EventId,
    params: Vec<Param>,
}

fn now_micros() -> u64 {
    Timestamp::now().as_micros()
}

impl Outbox {
    /// The outbox of `ds`'s database, counting the events left undelivered (by a
    /// crash, say) so the relay delivers them and the bound applies.
    pub async fn open(ds: DataStore, config: OutboxConfig) -> Result<Self, OutboxError> {
        config.validate()?;
        let sql = Sql::new(ds.store().kind());
        let outbox = Self {
            inner: Arc::new(Inner {
                ds,
                config,
                patterns: RwLock::new(Vec::new()),
                sql,
                notify: Notify::new(),
                pending: AtomicU64::new(0),
            }),
        };
        outbox.pending().await?;
        Ok(outbox)
    }

    /// The data store underneath.
    pub fn data_store(&self) -> &DataStore {
        &self.inner.ds
    }

    fn store(&self) -> &Store {
        self.inner.ds.store()
    }

    /// The configuration in force.
    pub fn config(&self) -> &OutboxConfig {
        &self.inner.config
    }

    /// Declares every topic matching `pattern` (`cases.>`, `orders.*.paid`, an exact
    /// topic) durable. Declaring a pattern twice is a no-op.
    pub fn declare_durable(&self, pattern: &str) -> Result<(), OutboxError> {
        let compiled = TopicPattern::new(pattern).map_err(|e| OutboxError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        let mut patterns = self.inner.patterns.write();
        if !patterns.iter().any(|p| p.as_str() == compiled.as_str()) {
            patterns.push(compiled);
        }
        Ok(())
    }

    /// Whether `topic` was declared durable.
    pub fn is_durable(&self, topic: &Topic) -> bool {
        self.inner.patterns.read().iter().any(|p| p.matches(topic))
    }

    /// The patterns declared durable, in declaration order.
    pub fn durable_patterns(&self) -> Vec<String> {
        self.inner
            .patterns
            .read()
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect()
    }

    /// The undelivered events the outbox believes it holds (kept in memory: raised
    /// by appends, lowered by the relay, recounted when the relay catches up).
    pub fn pending_estimate(&self) -> u64 {
        self.inner.pending.load(Ordering::Relaxed)
    }

    /// Counts the undelivered events in the database, and resets the estimate.
    pub async fn pending(&self) -> Result<u64, OutboxError> {
        let stmt = Statement::new(self.inner.sql.count_pending.clone(), Vec::new());
        let mut session = self.store().session().await?;
        let n = session
            .fetch_i64(StatementKind::Count, OUTBOX, &stmt)
            .await?
            .map_or(0, unsigned);
        self.inner.pending.store(n, Ordering::Relaxed);
        Ok(n)
    }

    fn check(&self, events: &[Envelope]) -> Result<Vec<Encoded>, OutboxError> {
        let config = &self.inner.config;
        if events.len() > config.max_events_per_transaction {
            return Err(OutboxError::TooManyEvents {
                count: events.len(),
                limit: config.max_events_per_transaction,
            });
        }
        let pending = self.pending_estimate();
        if pending.saturating_add(events.len() as u64) > config.max_pending {
            return Err(OutboxError::Full {
                pending,
                adding: events.len(),
                limit: config.max_pending,
            });
        }
        events
            .iter()
            .map(|e| {
                if !self.is_durable(e.topic()) {
                    return Err(OutboxError::NotDurable {
                        topic: e.topic().as_str().to_owned(),
                    });
                }
                let text = encoded(e, config.max_event_bytes)?;
                Ok(Encoded {
                    id: e.id(),
                    params: vec![
                        Param::Text(e.id().to_string()),
                        Param::Text(e.topic().as_str().to_owned()),
                        Param::Text(e.correlation_id().to_string()),
                        int(e.timestamp().as_micros()),
                        Param::Json(text),
                    ],
                })
            })
            .collect()
    }

    /// Runs `ops` as [`DataStore::transaction`] does and writes `events` in the same
    /// transaction: the data change and its events commit together or not at all.
    /// Every event's topic must be durable ([`OutboxError::NotDurable`] otherwise,
    /// before anything runs). After the commit the relay is woken.
    pub async fn transaction(
        &self,
        ops: Vec<Op>,
        events: Vec<Envelope>,
    ) -> Result<(Vec<OpResult>, Vec<Appended>), OutboxError> {
        let encoded = self.check(&events)?;
        let n = encoded.len();
        let result = if ops.is_empty() {
            self.append_alone(encoded).await.map(|a| (Vec::new(), a))
        } else {
            let sql = (self.inner.sql.insert.clone(), self.inner.sql.lock.clone());
            self.inner
                .ds
                .transaction_then(None, ops, move |session| {
                    insert_all(session, sql, encoded).boxed()
                })
                .await
        };
        let result = result.map_err(|e| {
            self.store().metrics().error(e.root().kind());
            duplicate_or(e)
        });
        if result.is_ok() && n > 0 {
            self.inner.pending.fetch_add(n as u64, Ordering::Relaxed);
            self.inner.notify.notify_one();
        }
        result
    }

    /// Writes `doc` as [`DataStore::put`] does, with `events` in the same
    /// transaction.
    pub async fn put(
        &self,
        collection: &str,
        id: &str,
        doc: &Value,
        mode: PutMode,
        expected_version: Option<u64>,
        events: Vec<Envelope>,
    ) -> Result<(Stored, Vec<Appended>), OutboxError> {
        let op = Op::Put {
            collection: collection.to_owned(),
            id: id.to_owned(),
            doc: doc.clone(),
            mode,
            expected_version,
        };
        let (results, appended) = self.transaction(vec![op], events).await?;
        match results.into_iter().next() {
            Some(OpResult::Put(stored)) => Ok((stored, appended)),
            _ => Err(OutboxError::Store(StoreError::Backend {
                reason: "a put returned no version".to_owned(),
            })),
        }
    }

    /// Applies a merge patch as [`DataStore::patch`] does, with `events` in the same
    /// transaction.
    pub async fn patch(
        &self,
        collection: &str,
        id: &str,
        patch: &Value,
        expected_version: Option<u64>,
        events: Vec<Envelope>,
    ) -> Result<(Stored, Vec<Appended>), OutboxError> {
        let op = Op::Patch {
            collection: collection.to_owned(),
            id: id.to_owned(),
            patch: patch.clone(),
            expected_version,
        };
        let (results, appended) = self.transaction(vec![op], events).await?;
        match results.into_iter().next() {
            Some(OpResult::Patch(stored)) => Ok((stored, appended)),
            _ => Err(OutboxError::Store(StoreError::Backend {
                reason: "a patch returned no version".to_owned(),
            })),
        }
    }

    /// Writes events that no data change caused, in a transaction of their own.
    pub async fn append(&self, events: Vec<Envelope>) -> Result<Vec<Appended>, OutboxError> {
        self.transaction(Vec::new(), events).await.map(|(_, a)| a)
    }

    async fn append_alone(&self, encoded: Vec<Encoded>) -> Result<Vec<Appended>, StoreError> {
        if encoded.is_empty() {
            return Ok(Vec::new());
        }
        let sql = (self.inner.sql.insert.clone(), self.inner.sql.lock.clone());
        let mut session = self.store().session().await?;
        session.begin().await?;
        match insert_all(&mut session, sql, encoded).await {
            Ok(appended) => {
                session.commit().await?;
                Ok(appended)
            }
            Err(e) => {
                let _ = session.rollback().await;
                Err(e)
            }
        }
    }

    /// Reads events on topics matching `pattern` from `from` on, delivered or not,
    /// in offset order: at most `limit` (1 to
    /// [`OutboxConfig::max_replay_limit`]) events, reading at most
    /// [`OutboxConfig::max_replay_scan`] rows. Events removed by retention are gone.
    pub async fn replay(
        &self,
        pattern: &str,
        from: ReplayFrom,
        limit: u32,
    ) -> Result<ReplayPage, OutboxError> {
        let config = &self.inner.config;
        if limit == 0 || limit > config.max_replay_limit {
            return Err(OutboxError::InvalidArgument {
                field: "limit",
                reason: format!("is {limit}; must be 1 to {}", config.max_replay_limit),
            });
        }
        let compiled = TopicPattern::new(pattern).map_err(|e| OutboxError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        let prefix = literal_prefix(&compiled);
        let chunk = u64::from(limit).max(64);
        let (mut offset, since) = match from {
            ReplayFrom::Offset(n) => (n, None),
            ReplayFrom::Time(t) => (0, Some(t.as_micros())),
        };
        let mut events = Vec::new();
        let mut scanned = 0u64;
        loop {
            let mut b = SqlBuilder::new(self.store().dialect());
            b.push(&self.inner.sql.select)
                .push(" WHERE seq >= ")
                .push_bind(int(offset));
            if let Some(since) = since {
                b.push(" AND at_us >= ").push_bind(int(since));
            }
            match &prefix {
                Prefix::Exact(topic) => {
                    b.push(" AND topic = ")
                        .push_bind(Param::Text(topic.clone()));
                }
                Prefix::Starts(p) => {
                    // The length is a number the store computed, not caller text.
                    b.push(&format!(" AND substr(topic, 1, {}) = ", p.chars().count()))
                        .push_bind(Param::Text(p.clone()));
                }
                Prefix::None => {}
            }
            b.push(" ORDER BY seq LIMIT ").push_bind(int(chunk));
            let stmt = b.finish();
            let mut session = self.store().session().await?;
            let rows = session
                .fetch_docs(StatementKind::Query, OUTBOX, &stmt)
                .await?;
            drop(session);
            let read = rows.len() as u64;
            scanned += read;
            for row in rows {
                let offset_here = unsigned(row.version);
                offset = offset_here + 1;
                let envelope = envelope_of(&row).map_err(|reason| OutboxError::Corrupt {
                    offset: offset_here,
                    reason,
                })?;
                if !compiled.matches(envelope.topic()) {
                    continue;
                }
                events.push(Replayed {
                    offset: offset_here,
                    state: state_of(&row.doc),
                    attempts: u64_at(&row.doc, "attempts"),
                    envelope,
                });
                if events.len() == limit as usize {
                    return Ok(ReplayPage {
                        events,
                        next_offset: Some(offset),
                    });
                }
            }
            if read < chunk {
                return Ok(ReplayPage {
                    events,
                    next_offset: None,
                });
            }
            if scanned >= config.max_replay_scan {
                return Ok(ReplayPage {
                    events,
                    next_offset: Some(offset),
                });
            }
        }
    }

    /// Deletes delivered (and given-up) events older than
    /// [`OutboxConfig::retention_ms`], then all but the newest
    /// [`OutboxConfig::max_retained`]. Undelivered events are never deleted. Returns
    /// how many rows went. The relay calls this every
    /// [`crate::RelayConfig::prune_interval_ms`].
    pub async fn prune(&self) -> Result<u64, OutboxError> {
        let config = &self.inner.config;
        let cutoff = now_micros().saturating_sub(config.retention_ms.saturating_mul(1000));
        let by_age = Statement::new(self.inner.sql.prune_age.clone(), vec![int(cutoff)]);
        let by_count = Statement::new(
            self.inner.sql.prune_count.clone(),
            vec![int(config.max_retained)],
        );
        let mut session = self.store().session().await?;
        let a = session
            .execute(StatementKind::Delete, OUTBOX, &by_age)
            .await?;
        let b = session
            .execute(StatementKind::Delete, OUTBOX, &by_count)
            .await?;
        Ok(a + b)
    }

    /// Starts the relay that delivers this outbox's events to `bus`; see
    /// [`crate::RelayConfig`] for what "acknowledged" means and how it retries.
    pub fn spawn_relay(
        &self,
        bus: plexus_bus::Bus,
        config: crate::RelayConfig,
    ) -> Result<crate::RelayHandle, OutboxError> {
        super::relay::spawn(self.clone(), bus, config)
    }

    /// Starts a relay that delivers this outbox's events to `sink` instead of a
    /// bus: a JetStream stream for durable topics across nodes, say. It marks an
    /// event delivered only once the sink acknowledged it.
    pub fn spawn_relay_to(
        &self,
        sink: impl crate::RelaySink,
        config: crate::RelayConfig,
    ) -> Result<crate::RelayHandle, OutboxError> {
        super::relay::spawn(self.clone(), sink, config)
    }

    // The relay's side.

    pub(super) async fn notified(&self) {
        self.inner.notify.notified().await;
    }

    pub(super) async fn undelivered(&self, batch: usize) -> Result<Vec<PendingRow>, StoreError> {
        let stmt = Statement::new(self.inner.sql.pending.clone(), vec![int(batch as u64)]);
        let mut session = self.store().session().await?;
        let rows = session
            .fetch_docs(StatementKind::Query, OUTBOX, &stmt)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| PendingRow {
                offset: unsigned(row.version),
                envelope: envelope_of(&row),
            })
            .collect())
    }

    /// Marks events delivered; returns how many rows changed.
    pub(super) async fn mark_delivered(&self, offsets: &[u64]) -> Result<u64, StoreError> {
        if offsets.is_empty() {
            return Ok(0);
        }
        let mut b = SqlBuilder::new(self.store().dialect());
        b.push("UPDATE plexus_outbox SET attempts = attempts + 1, delivered_us = ")
            .push_bind(int(now_micros()))
            .push(" WHERE delivered_us IS NULL AND seq IN (");
        for (i, offset) in offsets.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.push_bind(int(*offset));
        }
        b.push(")");
        let stmt = b.finish();
        let mut session = self.store().session().await?;
        let n = session
            .execute(StatementKind::Replace, OUTBOX, &stmt)
            .await?;
        self.lower_pending(n);
        Ok(n)
    }

    /// Records a refused attempt.
    pub(super) async fn mark_attempt(&self, offset: u64, error: &str) -> Result<(), StoreError> {
        let stmt = Statement::new(
            self.inner.sql.attempt.clone(),
            vec![int(offset), Param::Text(bounded(error))],
        );
        let mut session = self.store().session().await?;
        session
            .execute(StatementKind::Replace, OUTBOX, &stmt)
            .await?;
        Ok(())
    }

    /// Gives an event up: the bus will never take it.
    pub(super) async fn mark_failed(&self, offset: u64, error: &str) -> Result<(), StoreError> {
        let stmt = Statement::new(
            self.inner.sql.fail.clone(),
            vec![int(offset), Param::Text(bounded(error)), int(now_micros())],
        );
        let mut session = self.store().session().await?;
        let n = session
            .execute(StatementKind::Replace, OUTBOX, &stmt)
            .await?;
        self.lower_pending(n);
        Ok(())
    }

    fn lower_pending(&self, n: u64) {
        let _ = self
            .inner
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_sub(n))
            });
    }
}

/// Errors kept in a row are cut to this many bytes.
const MAX_ERROR_TEXT: usize = 1024;

fn bounded(text: &str) -> String {
    plexus_core::clip(text, MAX_ERROR_TEXT).to_owned()
}

/// The event id of a duplicate insert travels in a unique violation's `index`
/// field from [`insert_all`] to here.
fn duplicate_or(e: StoreError) -> OutboxError {
    match e {
        StoreError::UniqueViolation { collection, index } if collection == OUTBOX => {
            OutboxError::Duplicate { id: index }
        }
        other => OutboxError::Store(other),
    }
}

async fn insert_all(
    session: &mut StoreSession,
    (insert, lock): (Arc<str>, Option<Arc<str>>),
    encoded: Vec<Encoded>,
) -> Result<Vec<Appended>, StoreError> {
    if encoded.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(lock) = lock {
        let stmt = Statement::new(lock, Vec::new());
        session.execute(StatementKind::Other, OUTBOX, &stmt).await?;
    }
    let mut appended = Vec::with_capacity(encoded.len());
    for event in encoded {
        let stmt = Statement::new(insert.clone(), event.params);
        let seq = match session
            .fetch_i64(StatementKind::Insert, OUTBOX, &stmt)
            .await
        {
            Ok(seq) => seq,
            Err(StoreError::UniqueViolation { .. }) => {
                return Err(StoreError::UniqueViolation {
                    collection: OUTBOX.to_owned(),
                    index: event.id.to_string(),
                });
            }
            Err(e) => return Err(e),
        };
        let offset = seq.map(unsigned).ok_or_else(|| StoreError::Backend {
            reason: "an outbox insert returned no offset".to_owned(),
        })?;
        appended.push(Appended {
            id: event.id,
            offset,
        });
    }
    Ok(appended)
}

fn state_of(doc: &Value) -> DeliveryState {
    if doc.get("delivered_us").is_none_or(Value::is_null) {
        DeliveryState::Pending
    } else if u64_at(doc, "failed") != 0 {
        DeliveryState::Failed
    } else {
        DeliveryState::Delivered
    }
}

fn envelope_of(row: &DocRow) -> Result<Envelope, String> {
    let Some(value) = row.doc.get("envelope") else {
        return Err(opt_str_at(&row.doc, "error").unwrap_or_else(|| "no envelope".to_owned()));
    };
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    Envelope::from_json(&bytes).map_err(|e| e.to_string())
}

/// What of a pattern SQL can narrow by before the exact match in Rust.
enum Prefix {
    /// No wildcard: the topic itself.
    Exact(String),
    /// The literal tokens before the first wildcard, with their trailing dot.
    Starts(String),
    /// The pattern starts with a wildcard.
    None,
}

fn literal_prefix(pattern: &TopicPattern) -> Prefix {
    if pattern.is_exact() {
        return Prefix::Exact(pattern.as_str().to_owned());
    }
    let literal: Vec<&str> = pattern
        .as_str()
        .split('.')
        .take_while(|t| *t != "*" && *t != ">")
        .collect();
    if literal.is_empty() {
        Prefix::None
    } else {
        Prefix::Starts(format!("{}.", literal.join(".")))
    }
}

/// How long after a failure the relay tries again; see
/// [`crate::RelayConfig::backoff`].
pub(super) fn capped_backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    initial.saturating_mul(1 << shift).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_narrow_without_changing_matches() {
        let p = |s: &str| literal_prefix(&TopicPattern::new(s).unwrap());
        assert!(matches!(p("cases.opened"), Prefix::Exact(t) if t == "cases.opened"));
        assert!(matches!(p("cases.>"), Prefix::Starts(t) if t == "cases."));
        assert!(matches!(p("a.b.*.d"), Prefix::Starts(t) if t == "a.b."));
        assert!(matches!(p("*.x"), Prefix::None));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (i, m) = (Duration::from_millis(50), Duration::from_millis(500));
        let seq: Vec<u128> = (1..=6)
            .map(|f| capped_backoff(i, m, f).as_millis())
            .collect();
        assert_eq!(seq, vec![50, 100, 200, 400, 500, 500]);
        assert_eq!(capped_backoff(i, m, u32::MAX), m);
    }

    #[test]
    fn config_bounds_are_checked() {
        assert!(OutboxConfig::default().validate().is_ok());
        let bad = OutboxConfig {
            max_replay_scan: 10,
            ..OutboxConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(OutboxError::InvalidArgument {
                field: "max_replay_scan",
                ..
            })
        ));
        assert_eq!(bounded(&"é".repeat(1000)).len(), 1024);
    }
}
