//! [`Redis`]: one multiplexed connection that reconnects by itself, every command
//! bounded in time, every failure typed.
//!
//! The connection is `redis::aio::ConnectionManager`, created lazily: nothing is
//! sent until the first command, so a node starts while Redis is down and its
//! commands fail with [`RedisError::Unavailable`] until the server is back. A lost
//! connection is re-established on the next command (`reconnect_retries` attempts,
//! each bounded by `connect_timeout_ms`); every command is also bounded as a whole
//! (`connect_timeout_ms + response_timeout_ms`), so no caller waits longer than that
//! on a server that is gone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use plexus_core::ServiceError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};

use crate::RedisConfig;

/// Why a Redis command failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The server is gone, refuses connections, or did not answer in time: worth
    /// trying again later.
    #[error("redis is unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
    },
    /// The server answered with an error (a wrong type, a script error).
    #[error("redis refused the command: {reason}")]
    Command {
        /// The server's words.
        reason: String,
    },
    /// The URL could not be read.
    #[error("redis url: {reason}")]
    Url {
        /// What is wrong with it.
        reason: String,
    },
}

impl RedisError {
    /// Whether the server was out of reach (rather than refusing the command).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The service error a caller sees: [`ServiceError::Unavailable`] for a server
    /// out of reach, a failure otherwise.
    pub fn to_service_error(&self) -> ServiceError {
        match self {
            Self::Unavailable { .. } => ServiceError::unavailable(self.to_string()),
            Self::Command { .. } | Self::Url { .. } => ServiceError::failed(self.to_string()),
        }
    }
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> Self {
        let lost = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error();
        if lost {
            Self::Unavailable {
                reason: e.to_string(),
            }
        } else {
            Self::Command {
                reason: e.to_string(),
            }
        }
    }
}

/// A shared Redis connection. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    manager: ConnectionManager,
    config: RedisConfig,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.inner.config.url)
            .field("key_prefix", &self.inner.config.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// The connection `config` describes, not yet connected (it connects at the
    /// first command). Must be called inside a Tokio runtime.
    pub fn open(config: &RedisConfig) -> Result<Self, RedisError> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| RedisError::Url {
            reason: e.to_string(),
        })?;
        let connect = Duration::from_millis(config.connect_timeout_ms);
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_number_of_retries(config.reconnect_retries)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(connect);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), settings)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                config: config.clone(),
            }),
        })
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// `rest` under the configured key prefix (`plexus:` + `cache:…`).
    pub fn key(&self, rest: &str) -> String {
        let mut key = String::with_capacity(self.inner.config.key_prefix.len() + rest.len());
        key.push_str(&self.inner.config.key_prefix);
        key.push_str(rest);
        key
    }

    /// The longest any one command may take: a reconnect attempt and the reply.
    pub fn bound(&self) -> Duration {
        Duration::from_millis(
            self.inner
                .config
                .connect_timeout_ms
                .saturating_add(self.inner.config.response_timeout_ms),
        )
    }

    /// Runs `command` on a handle of the shared connection, within [`Redis::bound`];
    /// a command that takes longer is [`RedisError::Unavailable`].
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let bound = self.bound();
        match tokio::time::timeout(bound, command(self.inner.manager.clone())).await {
            Ok(result) => result.map_err(RedisError::from),
            Err(_) => Err(RedisError::Unavailable {
                reason: format!("no answer within {} ms", bound.as_millis()),
            }),
        }
    }

    /// Runs the Lua `script` on `keys` with `args`, in one round trip (by its SHA,
    /// sent whole when the server does not hold it yet), within [`Redis::bound`].
    pub async fn eval<T, K, A>(
        &self,
        script: &redis::Script,
        keys: K,
        args: A,
    ) -> Result<T, RedisError>
    where
        T: redis::FromRedisValue + Send + 'static,
        K: IntoIterator,
        K::Item: redis::ToRedisArgs,
        A: IntoIterator,
        A::Item: redis::ToRedisArgs,
    {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    /// Answers `PING`.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let pong: String = self
            .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisError::Command {
                reason: format!("PING answered {pong:?}"),
            })
        }
    }

    /// A connection of its own for subscriptions (pub/sub cannot share the
    /// multiplexed one), connected within `connect_timeout_ms`.
    pub async fn pubsub(&self) -> Result<PubSub, RedisError> {
        let bound = Duration::from_millis(self.inner.config.connect_timeout_ms);
        match tokio::time::timeout(bound, self.inner.client.get_async_pubsub()).await {
            Ok(result) => result.map_err(RedisError::from),
            Err(_) => Err(RedisError::Unavailable {
                reason: format!("no connection within {} ms", bound.as_millis()),
            }),
        }
    }
}
