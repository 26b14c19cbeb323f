//! The Redis backend's wire: events on `{key_prefix}bus:{topic}` channels, sent
//! in one pipelined round trip per batch, received through `PSUBSCRIBE` (`a.*` and
//! `a.>` both become the glob `{prefix}bus:a.*`, a superset the bridge narrows to
//! what the pattern means) on a subscription that comes back by itself after a
//! loss ([`plexus_redis::subscribe_forever`]).

use std::collections::BTreeSet;

use plexus_core::TopicPattern;
use plexus_redis::{Channels, Listener, Redis, subscribe_forever};
use tokio::task::JoinHandle;

use crate::bridge::Inbox;

/// Redis pub/sub as a bridge's wire.
#[derive(Debug)]
pub(crate) struct RedisWire {
    redis: Redis,
    prefix: String,
}

impl RedisWire {
    pub(crate) fn new(redis: Redis) -> Self {
        let prefix = redis.key("bus:");
        Self { redis, prefix }
    }

    pub(crate) fn channel(&self, topic: &str) -> String {
        let mut channel = String::with_capacity(self.prefix.len() + topic.len());
        channel.push_str(&self.prefix);
        channel.push_str(topic);
        channel
    }

    pub(crate) async fn send(&self, batch: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let mut pipe = redis::pipe();
        for (channel, payload) in batch {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        self.redis
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
            .map_err(|e| e.to_string())
    }

    pub(crate) fn listen(&self, patterns: &[TopicPattern], inbox: Inbox) -> JoinHandle<()> {
        let globs = patterns
            .iter()
            .map(|p| self.glob(p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        subscribe_forever(self.redis.clone(), Channels::patterns(globs), inbox)
    }

    /// The Redis glob covering `pattern` (a superset: `*` crosses dots there).
    fn glob(&self, pattern: &TopicPattern) -> String {
        let tokens: Vec<&str> = pattern
            .as_str()
            .split('.')
            .map(|t| if t == ">" { "*" } else { t })
            .collect();
        format!("{}{}", self.prefix, tokens.join("."))
    }
}

impl Listener for Inbox {
    fn live(&self, live: bool) {
        Inbox::live(self, live);
    }

    async fn message(&self, channel: &str, payload: &[u8]) {
        Inbox::message(self, channel, payload).await;
    }
}
