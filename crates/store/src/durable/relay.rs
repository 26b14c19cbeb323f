//! The relay: one task that reads undelivered outbox rows in offset order and
//! hands them to a [`RelaySink`] (the bus, or another node's way in such as a
//! JetStream stream), marking each delivered once the sink acknowledged it.
//!
//! **Acknowledged** means [`plexus_bus::Bus::publish`] returned `Ok(receipt)`: every
//! subscription the event matched took it under its own overflow policy (queued it,
//! or dropped an older event or dead-lettered it because it chose to), or the event
//! had expired. With [`RelayConfig::require_subscriber`], a receipt that matched no
//! subscription is not an acknowledgement either. A refusal
//! ([`plexus_bus::BusError::Rejected`]: a full queue whose policy rejects, or a
//! blocked publish that timed out) leaves the event undelivered; the relay stops
//! the batch there (so later events do not overtake it) and tries again after a
//! backoff that doubles from [`RelayConfig::retry_backoff_ms`] up to
//! [`RelayConfig::max_backoff_ms`]. Subscribers that took the event before another
//! refused it get it again on the retry, with the same event id. An event the bus
//! can never take (over its payload or header limits, or unreadable) is given up,
//! kept as `failed` and counted.
//!
//! The relay wakes when an append in this process commits, and polls every
//! [`RelayConfig::poll_interval_ms`] for events other processes wrote (or a crash
//! left behind). A crash between a publish and its mark re-delivers that event
//! after the restart: delivery is at least once.

use std::time::Duration;

use plexus_bus::{Bus, BusError};
use plexus_core::Envelope;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::outbox::capped_backoff;
use crate::{Outbox, OutboxError};

/// How the relay reads, delivers and retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// The most rows read per batch (1 to 10,000). Default 256.
    pub batch: usize,
    /// How often the relay looks for rows when nothing woke it. Default 1,000 ms.
    pub poll_interval_ms: u64,
    /// The wait after the first refusal or database error; it doubles with each
    /// one in a row. Default 50 ms.
    pub retry_backoff_ms: u64,
    /// The longest wait between retries. Default 5,000 ms.
    pub max_backoff_ms: u64,
    /// Whether an event that matched no subscription counts as undelivered (and is
    /// retried until a subscriber appears). Default `false`: the bus took it, and a
    /// late subscriber can [`Outbox::replay`] it.
    pub require_subscriber: bool,
    /// How often the relay applies the outbox's retention ([`Outbox::prune`]).
    /// Default 60,000 ms.
    pub prune_interval_ms: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            poll_interval_ms: 1_000,
            retry_backoff_ms: 50,
            max_backoff_ms: 5_000,
            require_subscriber: false,
            prune_interval_ms: 60_000,
        }
    }
}

impl RelayConfig {
    /// Checks every field, naming the first out of range.
    pub fn validate(&self) -> Result<(), OutboxError> {
        let bad = |field: &'static str, reason: &str| {
            Err(OutboxError::InvalidArgument {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.batch == 0 || self.batch > 10_000 {
            return bad("batch", "must be 1 to 10,000");
        }
        if self.poll_interval_ms == 0 {
            return bad("poll_interval_ms", "must be at least 1");
        }
        if self.retry_backoff_ms == 0 {
            return bad("retry_backoff_ms", "must be at least 1");
        }
        if self.max_backoff_ms < self.retry_backoff_ms {
            return bad("max_backoff_ms", "must be at least retry_backoff_ms");
        }
        if self.prune_interval_ms == 0 {
            return bad("prune_interval_ms", "must be at least 1");
        }
        Ok(())
    }

    /// The wait after `failures` refusals or database errors in a row (from 1).
    pub fn backoff(&self, failures: u32) -> Duration {
        capped_backoff(
            Duration::from_millis(self.retry_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
            failures,
        )
    }
}

/// What the relay has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Events acknowledged by the bus and marked delivered.
    pub delivered: u64,
    /// Publishes the bus refused (each retried later).
    pub refused: u64,
    /// Events given up: the bus can never take them.
    pub failed: u64,
    /// Acknowledged events that had already expired (the bus dropped them).
    pub expired: u64,
    /// Database errors while reading or marking (retried later).
    pub store_errors: u64,
    /// The highest offset marked delivered (0: none yet).
    pub last_offset: u64,
    /// Times the relay found nothing left to deliver.
    pub idle: u64,
}

/// A running relay. Dropping it stops the relay.
#[derive(Debug)]
pub struct RelayHandle {
    stats: watch::Receiver<RelayStats>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RelayHandle {
    /// The counters now.
    pub fn stats(&self) -> RelayStats {
        *self.stats.borrow()
    }

    /// A receiver that sees the counters after every batch, to wait on
    /// (`watch::Receiver::wait_for`).
    pub fn watch(&self) -> watch::Receiver<RelayStats> {
        self.stats.clone()
    }

    /// Stops the relay (an event being published is left undelivered, and is
    /// delivered again later) and returns its counters.
    pub async fn shutdown(mut self) -> RelayStats {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        *self.stats.borrow()
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Where the relay delivers: the bus of this process ([`Bus`] implements it), or
/// a way to other nodes that acknowledges what it keeps (a JetStream stream).
#[async_trait::async_trait]
pub trait RelaySink: Send + Sync + 'static {
    /// Offers one event; the relay marks it delivered only on
    /// [`Delivery::Acknowledged`].
    async fn deliver(&self, envelope: Envelope, require_subscriber: bool) -> Delivery;
}

/// What a [`RelaySink`] did with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Taken for good (`expired`: it had expired and was dropped, which counts).
    Acknowledged {
        /// Whether it had expired.
        expired: bool,
    },
    /// Not taken now: the relay keeps it, stops the batch there (so later events do
    /// not overtake it) and tries again after its backoff.
    Refused(String),
    /// Never takeable (too large, malformed): given up and kept as `failed`.
    Never(String),
    /// The sink is closing: the relay stops.
    Closed,
}

#[async_trait::async_trait]
impl RelaySink for Bus {
    async fn deliver(&self, envelope: Envelope, require_subscriber: bool) -> Delivery {
        match self.publish(envelope).await {
            Ok(receipt) if require_subscriber && receipt.matched == 0 && !receipt.expired => {
                Delivery::Refused("no subscriber".to_owned())
            }
            Ok(receipt) => Delivery::Acknowledged {
                expired: receipt.expired,
            },
            Err(e @ BusError::Rejected { .. }) => Delivery::Refused(e.to_string()),
            Err(BusError::ShuttingDown) => Delivery::Closed,
            Err(e) => Delivery::Never(e.to_string()),
        }
    }
}

pub(super) fn spawn(
    outbox: Outbox,
    sink: impl RelaySink,
    config: RelayConfig,
) -> Result<RelayHandle, OutboxError> {
    config.validate()?;
    let (stats_tx, stats) = watch::channel(RelayStats::default());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(outbox, sink, config, stats_tx, stop_rx));
    Ok(RelayHandle {
        stats,
        stop,
        task: Some(task),
    })
}

/// How one batch ended.
enum Batch {
    /// The batch was full: more rows may be waiting.
    More,
    /// Everything read was settled and the batch was not full.
    Drained,
    /// The bus refused an event, or the database failed: back off.
    Retry,
    /// The bus is shutting down.
    Closed,
}

async fn run(
    outbox: Outbox,
    sink: impl RelaySink,
    config: RelayConfig,
    stats_tx: watch::Sender<RelayStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut stats = RelayStats::default();
    let mut failures = 0u32;
    let poll = Duration::from_millis(config.poll_interval_ms);
    let prune_every = Duration::from_millis(config.prune_interval_ms);
    let mut last_prune = Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        if last_prune.elapsed() >= prune_every {
            last_prune = Instant::now();
            if outbox.prune().await.is_err() {
                stats.store_errors += 1;
            }
        }
        let batch = tokio::select! {
            batch = deliver_batch(&outbox, &sink, &config, &mut stats) => batch,
            _ = stop.changed() => return,
        };
        stats_tx.send_replace(stats);
        let wait = match batch {
            Batch::More => {
                failures = 0;
                continue;
            }
            Batch::Drained => {
                failures = 0;
                None
            }
            Batch::Retry => {
                failures = failures.saturating_add(1);
                Some(config.backoff(failures))
            }
            Batch::Closed => return,
        };
        match wait {
            // Caught up: wait for an append here, the poll, or the stop.
            None => tokio::select! {
                _ = outbox.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            },
            // Backing off: appends do not cut the wait short.
            Some(backoff) => tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            },
        }
    }
}

async fn deliver_batch(
    outbox: &Outbox,
    sink: &impl RelaySink,
    config: &RelayConfig,
    stats: &mut RelayStats,
) -> Batch {
    let rows = match outbox.undelivered(config.batch).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "outbox relay cannot read undelivered events");
            stats.store_errors += 1;
            return Batch::Retry;
        }
    };
    let full = rows.len() == config.batch;
    let mut delivered = Vec::with_capacity(rows.len());
    let mut outcome = if full { Batch::More } else { Batch::Drained };
    for row in rows {
        let envelope = match row.envelope {
            Ok(envelope) => envelope,
            Err(reason) => {
                give_up(outbox, row.offset, &reason, stats).await;
                continue;
            }
        };
        match sink.deliver(envelope, config.require_subscriber).await {
            Delivery::Acknowledged { expired } => {
                if expired {
                    stats.expired += 1;
                }
                delivered.push(row.offset);
            }
            Delivery::Refused(reason) => {
                stats.refused += 1;
                let _ = outbox.mark_attempt(row.offset, &reason).await;
                outcome = Batch::Retry;
                break;
            }
            Delivery::Closed => {
                outcome = Batch::Closed;
                break;
            }
            Delivery::Never(reason) => give_up(outbox, row.offset, &reason, stats).await,
        }
    }
    match outbox.mark_delivered(&delivered).await {
        Ok(_) => {
            stats.delivered += delivered.len() as u64;
            if let Some(last) = delivered.iter().max() {
                stats.last_offset = stats.last_offset.max(*last);
            }
        }
        Err(e) => {
            // Published but not marked: delivered again later, with the same ids.
            tracing::warn!(error = %e, "outbox relay cannot mark events delivered");
            stats.store_errors += 1;
            return Batch::Retry;
        }
    }
    if matches!(outcome, Batch::Drained) {
        stats.idle += 1;
        // Recount, so the bound follows appends made by other processes.
        if outbox.pending().await.is_err() {
            stats.store_errors += 1;
        }
    }
    outcome
}

async fn give_up(outbox: &Outbox, offset: u64, reason: &str, stats: &mut RelayStats) {
    tracing::error!(offset, reason, "outbox relay gives an event up");
    match outbox.mark_failed(offset, reason).await {
        Ok(()) => stats.failed += 1,
        Err(_) => stats.store_errors += 1,
    }
}
