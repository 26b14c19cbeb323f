//! The family's configuration section, `[pubsub]`: where events published on the
//! shared topics go (only this process's bus, or every node on the same
//! Redis/Valkey), which topics are shared, and the bounds of the bridge. Problems
//! are named by their full path (`pubsub.topics[1]`).

use plexus_config::{FieldErrors, Validate};
use plexus_core::TopicPattern;
use serde::{Deserialize, Serialize};

/// The section the family reads.
pub const SECTION: &str = "pubsub";

/// Where shared topics travel.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Backend {
    /// This process's bus only: nothing leaves the process.
    #[default]
    Bus,
    /// The Redis/Valkey of `[redis]`: events on the shared topics reach every node
    /// that bridges them, and theirs reach this one.
    Redis,
}

/// `[pubsub]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PubSubConfig {
    /// `bus` (default: in process) or `redis`.
    pub backend: Backend,
    /// The bus patterns (`chat.*`, `orders.>`) whose events are shared through
    /// Redis. Required with `backend = "redis"`; local-only topics stay on the
    /// in-process fast path.
    pub topics: Vec<String>,
    /// The largest event that crosses, as JSON, in bytes (default 1 MiB). A larger
    /// one stays local and is counted in `plexus_pubsub_dropped_total{reason="too_large"}`.
    pub max_message_bytes: usize,
    /// How many events per priority lane wait to be sent to Redis (default 4,096).
    /// Past it the oldest is dropped and counted
    /// (`plexus_pubsub_dropped_total{reason="overflow"}`): a slow Redis never blocks
    /// a publisher.
    pub queue: usize,
    /// The most events sent to Redis in one pipelined round trip (default 64).
    pub batch: usize,
    /// How many publishing nodes the gap count tracks (default 1,024); beyond it
    /// the longest silent one is forgotten.
    pub max_origins: usize,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Bus,
            topics: Vec::new(),
            max_message_bytes: 1024 * 1024,
            queue: 4_096,
            batch: 64,
            max_origins: 1_024,
        }
    }
}

impl PubSubConfig {
    /// The shared topics as compiled patterns (checked by [`Validate`]).
    pub fn patterns(&self) -> Vec<TopicPattern> {
        self.topics
            .iter()
            .filter_map(|t| TopicPattern::new(t).ok())
            .collect()
    }
}

impl Validate for PubSubConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        for (i, topic) in self.topics.iter().enumerate() {
            if let Err(e) = TopicPattern::new(topic) {
                errors.push(format!("topics[{i}]"), format!("`{topic}` {e}"));
            }
        }
        errors
            .check(
                self.backend == Backend::Bus || !self.topics.is_empty(),
                "topics",
                || {
                    "is empty; with backend = \"redis\" name the bus patterns to share, such as [\"chat.>\"]"
                        .to_owned()
                },
            )
            .range("max_message_bytes", self.max_message_bytes, 64..=64 * 1024 * 1024)
            .range("queue", self.queue, 1..=1 << 20)
            .range("batch", self.batch, 1..=1_024)
            .range("max_origins", self.max_origins, 1..=1 << 20);
        errors.into_result()
    }
}
