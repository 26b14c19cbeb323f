//! The `[cluster]` section: the NATS server that makes several nodes one system,
//! and the names and bounds of what the cluster keeps there. Without `nats_url`
//! the node is on its own, exactly as without the section.

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

/// The section the family reads.
pub const SECTION: &str = "cluster";

/// `[cluster]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server with JetStream (`nats://127.0.0.1:4222`; also
    /// `PLEXUS_CLUSTER__NATS_URL`). Unset: no cluster.
    pub nats_url: Option<String>,
    /// The JetStream KV bucket of the shared registry (default `plexus_registry`).
    pub registry_bucket: String,
    /// Registry keys nobody wrote for this long are removed by JetStream, in
    /// milliseconds (default 0: never; the nodes' sweepers still mark a silent
    /// node's instances stale and deregister them). Make it several heartbeat TTLs.
    pub registry_ttl_ms: u64,
    /// Calls to instance `i` travel on `{call_prefix}.{i}` (default `plexus.call`).
    pub call_prefix: String,
    /// The most calls from other nodes this node runs at once (default 1,024); past
    /// it a call is answered `unavailable`.
    pub max_inflight: usize,
    /// The longest a call from another node may run when its caller set no
    /// deadline, in milliseconds (default 30,000).
    pub default_timeout_ms: u64,
    /// Durable topics across nodes (bus patterns): kept in the JetStream stream
    /// `durable_stream`, fed by this node's outbox relay (so the same patterns
    /// must be in `[store] durable_topics`), and delivered to every node's bus by
    /// its own durable consumer. Default none.
    pub durable_topics: Vec<String>,
    /// The JetStream stream of the durable topics (default `plexus_durable`).
    pub durable_stream: String,
    /// Events on topic `t` are kept under `{durable_subject_prefix}.t` (default
    /// `plexus.durable`).
    pub durable_subject_prefix: String,
    /// How long the stream remembers an event id to drop a relay's retry, in
    /// milliseconds (default 120,000).
    pub durable_duplicate_window_ms: u64,
    /// How long a consumer's unacknowledged event waits before it comes again, in
    /// milliseconds (default 30,000).
    pub durable_ack_wait_ms: u64,
    /// Whether a durable event that no subscription on this node matched waits
    /// for one (sent again every second) instead of being acknowledged; set it
    /// where the handlers subscribe after the node starts (external services over
    /// `/ws`), so a restart loses them nothing. Default false.
    pub durable_require_subscriber: bool,
    /// The most durable events this node has on its bus and not yet handled
    /// (JetStream's `max_ack_pending` for its consumer; default 1,024): each is
    /// acknowledged once its subscribers are done with it.
    pub durable_max_unacknowledged: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            registry_bucket: "plexus_registry".to_owned(),
            registry_ttl_ms: 0,
            call_prefix: "plexus.call".to_owned(),
            max_inflight: 1_024,
            default_timeout_ms: 30_000,
            durable_topics: Vec::new(),
            durable_stream: "plexus_durable".to_owned(),
            durable_subject_prefix: "plexus.durable".to_owned(),
            durable_duplicate_window_ms: 120_000,
            durable_ack_wait_ms: 30_000,
            durable_require_subscriber: false,
            durable_max_unacknowledged: 1_024,
        }
    }
}

impl Validate for ClusterConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        let bucket_ok = !self.registry_bucket.is_empty()
            && self
                .registry_bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        errors
            .check(bucket_ok, "registry_bucket", || {
                format!(
                    "`{}` must be letters, digits, `-` and `_`",
                    self.registry_bucket
                )
            })
            .check(
                plexus_core::Topic::new(format!("{}.x", self.call_prefix)).is_ok(),
                "call_prefix",
                || {
                    format!(
                        "`{}` is not dot-separated tokens without wildcards",
                        self.call_prefix
                    )
                },
            )
            .range("max_inflight", self.max_inflight, 1..=1 << 20)
            .range("default_timeout_ms", self.default_timeout_ms, 1..=3_600_000)
            .check(
                !self.durable_stream.is_empty()
                    && self
                        .durable_stream
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "durable_stream",
                || {
                    format!(
                        "`{}` must be letters, digits, `-` and `_`",
                        self.durable_stream
                    )
                },
            )
            .check(
                plexus_core::Topic::new(format!("{}.x", self.durable_subject_prefix)).is_ok(),
                "durable_subject_prefix",
                || {
                    format!(
                        "`{}` is not dot-separated tokens without wildcards",
                        self.durable_subject_prefix
                    )
                },
            )
            .range(
                "durable_duplicate_window_ms",
                self.durable_duplicate_window_ms,
                1_000..=86_400_000,
            )
            .range(
                "durable_ack_wait_ms",
                self.durable_ack_wait_ms,
                100..=3_600_000,
            )
            .range(
                "durable_max_unacknowledged",
                self.durable_max_unacknowledged,
                1..=1_000_000,
            );
        for (i, topic) in self.durable_topics.iter().enumerate() {
            errors.check(
                plexus_core::TopicPattern::new(topic).is_ok(),
                &format!("durable_topics[{i}]"),
                || format!("`{topic}` is not a topic pattern (`a.b`, `a.*`, `a.>`)"),
            );
        }
        errors.into_result()
    }
}
