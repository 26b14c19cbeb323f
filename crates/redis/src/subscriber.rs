//! [`subscribe_forever`]: a Redis subscription that comes back by itself.
//!
//! Pub/sub cannot share the multiplexed connection, so a subscription has a
//! connection of its own ([`Redis::pubsub`]). When it is lost (the server gone, the
//! connection dropped), the [`Listener`] is told, and the subscriber connects and
//! subscribes again with a backoff (50 ms doubling to 1 s) until the server is back,
//! for as long as the task lives. Redis does not replay what was published while a
//! subscriber was away: a listener that needs to know what it missed must tell from
//! the messages themselves (the pub/sub bridge numbers them).

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::PubSub;
use tokio::task::JoinHandle;

use crate::{Redis, RedisError};

/// The longest wait between two subscription attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a subscription is to: exact channels and glob patterns (`PSUBSCRIBE`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    /// Channels subscribed to by name.
    pub exact: Vec<String>,
    /// Channel patterns, in Redis's glob syntax.
    pub patterns: Vec<String>,
}

impl Channels {
    /// One channel by name.
    pub fn exact(channel: impl Into<String>) -> Self {
        Self {
            exact: vec![channel.into()],
            patterns: Vec::new(),
        }
    }

    /// Channel patterns.
    pub fn patterns(patterns: Vec<String>) -> Self {
        Self {
            exact: Vec::new(),
            patterns,
        }
    }

    fn describe(&self) -> String {
        let mut all = self.exact.clone();
        all.extend(self.patterns.iter().cloned());
        all.join(" ")
    }
}

/// What a subscription reports to.
pub trait Listener: Send + Sync + 'static {
    /// The subscription is confirmed (`true`, after each subscribe, the first
    /// included) or lost (`false`).
    fn live(&self, live: bool);

    /// A message arrived on `channel`. The next one is read once this is done, so
    /// a slow listener slows the subscription (Redis then buffers, up to its
    /// `client-output-buffer-limit pubsub`, past which it drops the connection and
    /// the listener hears `live(false)`).
    fn message(&self, channel: &str, payload: &[u8]) -> impl Future<Output = ()> + Send;
}

/// Subscribes `listener` to `channels` on `redis`, again after every loss, until
/// the returned task is aborted.
pub fn subscribe_forever<L: Listener>(
    redis: Redis,
    channels: Channels,
    listener: L,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let what = channels.describe();
        let mut backoff = Duration::from_millis(50);
        loop {
            match subscribe(&redis, &channels).await {
                Ok(mut pubsub) => {
                    backoff = Duration::from_millis(50);
                    listener.live(true);
                    tracing::debug!(channels = %what, "redis subscription live");
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        listener
                            .message(message.get_channel_name(), message.get_payload_bytes())
                            .await;
                    }
                    listener.live(false);
                    tracing::warn!(channels = %what, "redis subscription lost; subscribing again");
                }
                Err(error) => tracing::debug!(%error, channels = %what, "redis subscribe failed"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

async fn subscribe(redis: &Redis, channels: &Channels) -> Result<PubSub, RedisError> {
    let mut pubsub = redis.pubsub().await?;
    let confirmed = async {
        for channel in &channels.exact {
            pubsub.subscribe(channel).await?;
        }
        for pattern in &channels.patterns {
            pubsub.psubscribe(pattern).await?;
        }
        Ok::<(), redis::RedisError>(())
    };
    match tokio::time::timeout(redis.bound(), confirmed).await {
        Ok(result) => result.map(|()| pubsub).map_err(RedisError::from),
        Err(_) => Err(RedisError::Unavailable {
            reason: "the subscription was not confirmed in time".to_owned(),
        }),
    }
}
