//! The family's configuration section, `[pubsub]`: where events published on the
//! shared topics go (only this process's bus, or every node on the same
//! Redis/Valkey or NATS), which topics are shared, and the bounds of the bridge. Problems
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
    /// The NATS server at `nats_url`: the same, over NATS subjects.
    Nats,
}

/// `[pubsub]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PubSubConfig {
    /// `bus` (default: in process), `redis` or `nats`.
    pub backend: Backend,
    /// The bus patterns (`chat.*`, `orders.>`) whose events are shared through
    /// the backend. Required with `redis` and `nats`; local-only topics stay on the
    /// in-process fast path.
    pub topics: Vec<String>,
    /// With `backend = "nats"`: the server (`nats://127.0.0.1:4222`; also
    /// `PLEXUS_PUBSUB__NATS_URL`).
    pub nats_url: Option<String>,
    /// With `backend = "nats"`: events on topic `t` travel on the subject
    /// `{subject_prefix}.t` (default `plexus.bus`). Nodes that share topics share it.
    pub subject_prefix: String,
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
            nats_url: None,
            subject_prefix: "plexus.bus".to_owned(),
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
                    "is empty; with backend = \"redis\" or \"nats\" name the bus patterns to share, such as [\"chat.>\"]"
                        .to_owned()
                },
            )
            .check(
                self.backend != Backend::Nats || self.nats_url.is_some(),
                "nats_url",
                || "is missing; with backend = \"nats\" name the server, such as \"nats://127.0.0.1:4222\"".to_owned(),
            )
            .check(
                plexus_core::Topic::new(format!("{}.x", self.subject_prefix)).is_ok(),
                "subject_prefix",
                || format!("`{}` is not dot-separated tokens without wildcards", self.subject_prefix),
            )
            .range("max_message_bytes", self.max_message_bytes, 64..=64 * 1024 * 1024)
            .range("queue", self.queue, 1..=1 << 20)
            .range("batch", self.batch, 1..=1_024)
            .range("max_origins", self.max_origins, 1..=1 << 20);
        errors.into_result()
    }
}
