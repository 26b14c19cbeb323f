//! The local tier of the two-tier Redis backend: copies of what this node read or
//! wrote, in moka, evicted when any node announces a write on the invalidation
//! channel.
//!
//! Coherence rules:
//! - The tier is used only while the subscription is live. When it is lost (Redis
//!   gone, the connection dropped), the tier is emptied and bypassed, and the
//!   subscriber reconnects with backoff (`plexus_redis::subscribe_forever`); once subscribed again it starts empty,
//!   since messages sent meanwhile are not replayed by Redis.
//! - A copy is kept at most `local_ttl_ms` (and never past the entry's own expiry),
//!   which bounds how stale a copy can be if a message is lost without the
//!   connection dropping.
//! - Every message bumps an epoch before it evicts. A copy fetched from Redis is
//!   kept only if the epoch did not move while it was fetched, so a write announced
//!   during the fetch cannot leave the old value behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use plexus_redis::{Channels, Listener, Redis, subscribe_forever};
use tokio::task::JoinHandle;

use super::Invalidation;
use crate::config::CacheConfig;
use crate::memory::MemoryStore;
use crate::metrics::CacheMetrics;
use crate::store::{Entry, LocalStats};

#[derive(Debug, Default)]
struct State {
    live: AtomicBool,
    epoch: AtomicU64,
}

/// The local tier and its subscriber.
pub(super) struct Tier {
    local: MemoryStore,
    keep: Duration,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Tier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tier {
    /// A tier held to `config`, subscribing to `channel` in the background and
    /// skipping the messages its own store (`origin`) sent.
    pub(super) fn start(
        redis: Redis,
        channel: String,
        origin: String,
        config: &CacheConfig,
        metrics: CacheMetrics,
    ) -> Self {
        let local = MemoryStore::new(config.max_bytes, metrics.clone());
        let state = Arc::new(State::default());
        let task = subscribe_forever(
            redis,
            Channels::exact(channel.clone()),
            Subscriber {
                channel,
                origin,
                local: local.clone(),
                state: state.clone(),
                metrics,
            },
        );
        Self {
            local,
            keep: Duration::from_millis(config.local_ttl_ms),
            state,
            task,
        }
    }

    /// Whether the subscription is live (and the tier in use).
    pub(super) fn live(&self) -> bool {
        self.state.live.load(Ordering::Acquire)
    }

    /// The current epoch: read it before fetching what [`Tier::keep`] will keep.
    pub(super) fn epoch(&self) -> u64 {
        self.state.epoch.load(Ordering::Acquire)
    }

    /// The local copy of `key`, while the tier is in use.
    pub(super) fn read(&self, key: &str) -> Option<Entry> {
        if self.live() {
            self.local.read(key)
        } else {
            None
        }
    }

    /// Keeps a copy of `entry`, fetched or written at `epoch`, unless a message
    /// arrived since or the tier is not in use.
    pub(super) fn keep(&self, key: &str, entry: Entry, epoch: u64) {
        if !self.live() {
            return;
        }
        self.local.put(key, entry, self.keep);
        if self.epoch() != epoch || !self.live() {
            self.local.remove(key);
        }
    }

    /// Drops the copy of `key`.
    pub(super) fn forget(&self, key: &str) {
        self.local.remove(key);
    }

    /// Drops every copy under `prefix`.
    pub(super) fn forget_prefix(&self, prefix: &str) {
        self.local.remove_prefix(prefix);
    }

    pub(super) fn occupancy(&self) -> LocalStats {
        self.local.occupancy()
    }
}

struct Subscriber {
    channel: String,
    origin: String,
    local: MemoryStore,
    state: Arc<State>,
    metrics: CacheMetrics,
}

impl Subscriber {
    /// Empties the tier and marks it `live` (or not).
    fn reset(&self, live: bool) {
        self.state.live.store(false, Ordering::Release);
        self.state.epoch.fetch_add(1, Ordering::AcqRel);
        self.local.clear();
        self.state.live.store(live, Ordering::Release);
    }

    /// Applies one message from another node.
    fn apply(&self, payload: &[u8]) {
        let Ok(message) = serde_json::from_slice::<Invalidation>(payload) else {
            tracing::warn!("an invalidation message that is not one; ignored");
            return;
        };
        if message.o == self.origin {
            return;
        }
        self.state.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(key) = &message.k {
            self.local.remove(key);
        }
        if let Some(prefix) = &message.p {
            self.local.remove_prefix(prefix);
        }
        self.metrics.invalidation_received();
    }
}

impl Listener for Subscriber {
    fn live(&self, live: bool) {
        self.reset(live);
        if !live {
            tracing::warn!(
                channel = %self.channel,
                "cache invalidation subscription lost; local tier bypassed until it is back"
            );
        }
    }

    async fn message(&self, _channel: &str, payload: &[u8]) {
        self.apply(payload);
    }
}
