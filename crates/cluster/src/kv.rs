//! [`KvRegistry`]: registrations in a JetStream KV bucket, so every node sees every
//! node's instances.
//!
//! One key per instance ([`instance_key`]), its value the JSON of the
//! [`Registration`]. Every write reads the key's entry and writes back with the
//! revision it read (`Nats-Expected-Last-Subject-Sequence`), retrying a bounded
//! number of times when another node wrote in between: each operation is atomic on
//! its own, as the trait asks, without a lock server. A bucket `max_age` (the
//! `ttl`) removes the keys of a node that died without deregistering once nothing
//! has written them for that long; heartbeats are writes, so live instances stay.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::stream;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use plexus_core::{InstanceId, Timestamp};
use plexus_registry::{
    Registration, Registry, RegistryBackend, RegistryError, StatusUpdate, Updated,
};
use tokio::task::JoinHandle;

use crate::ClusterError;

/// How many times a write is tried again when another writer moved the key first.
const MAX_CONFLICTS: usize = 64;

/// Where and how the registry bucket is kept.
#[derive(Clone, Debug)]
pub struct KvRegistryConfig {
    /// The bucket's name (letters, digits, `-` and `_`).
    pub bucket: String,
    /// Keys nobody wrote for this long are removed by JetStream; `None` keeps them
    /// until they are deregistered. Make it a few heartbeat intervals.
    pub ttl: Option<Duration>,
    /// Server replicas of the bucket (1 on a single server).
    pub replicas: usize,
}

impl Default for KvRegistryConfig {
    fn default() -> Self {
        Self {
            bucket: "plexus_registry".to_owned(),
            ttl: None,
            replicas: 1,
        }
    }
}

/// The registry backend of a cluster: a JetStream KV bucket.
#[derive(Clone, Debug)]
pub struct KvRegistry {
    store: Store,
}

impl KvRegistry {
    /// Opens the bucket on `jetstream`, creating it (or updating its settings).
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        config: &KvRegistryConfig,
    ) -> Result<Self, ClusterError> {
        let valid = !config.bucket.is_empty()
            && config
                .bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(ClusterError::InvalidConfig {
                field: "cluster.registry_bucket",
                reason: format!("`{}` must be letters, digits, `-` and `_`", config.bucket),
            });
        }
        // The bucket's stream is made here rather than by `create_key_value`, which
        // first reads account fields that servers before 2.10 do not send; these
        // are the settings a KV bucket has (one subject per key, roll-ups, direct
        // reads, new writes refused when full).
        let ttl = config.ttl.unwrap_or_default();
        let mut stream = stream::Config {
            name: format!("KV_{}", config.bucket),
            description: Some("Plexus registry: one key per instance".to_owned()),
            subjects: vec![format!("$KV.{}.>", config.bucket)],
            max_messages_per_subject: 1,
            max_age: ttl,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: config.replicas.max(1),
            ..Default::default()
        };
        if !ttl.is_zero() && ttl < Duration::from_secs(120) {
            stream.duplicate_window = ttl;
        }
        let jetstream_failed = |e: &dyn std::fmt::Display| ClusterError::JetStream {
            what: format!("the KV bucket `{}`", config.bucket),
            message: e.to_string(),
        };
        jetstream
            .create_or_update_stream(stream)
            .await
            .map_err(|e| jetstream_failed(&e))?;
        let store = jetstream
            .get_key_value(config.bucket.as_str())
            .await
            .map_err(|e| jetstream_failed(&e))?;
        Ok(Self { store })
    }

    /// The bucket this backend writes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The live registration under `key` and its revision, or the revision of a
    /// deleted key (to write over), or nothing.
    async fn read(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<Option<(u64, Option<Registration>)>, RegistryError> {
        let Some(entry) = self
            .store
            .entry(key)
            .await
            .map_err(|e| failed(operation, e))?
        else {
            return Ok(None);
        };
        let live = match entry.operation {
            Operation::Put => Some(decode(operation, &entry.value)?),
            Operation::Delete | Operation::Purge => None,
        };
        Ok(Some((entry.revision, live)))
    }

    /// Writes `value` under `key` if it still has `revision` (`None`: if it does
    /// not exist); `Ok(false)` when another writer moved it first.
    async fn write(
        &self,
        operation: &'static str,
        key: &str,
        revision: Option<u64>,
        value: &Registration,
    ) -> Result<bool, RegistryError> {
        let bytes = encode(operation, value)?;
        match revision {
            Some(revision) => match self.store.update(key, bytes, revision).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(failed(operation, e)),
            },
            None => match self.store.create(key, bytes).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(failed(operation, e)),
            },
        }
    }

    /// Applies `change` to the live registration of `instance` with a
    /// compare-and-set, trying again when another writer came first.
    async fn modify<T>(
        &self,
        operation: &'static str,
        instance: &InstanceId,
        mut change: impl FnMut(&mut Registration) -> T,
    ) -> Result<(T, Registration), RegistryError> {
        let key = instance_key(instance);
        for _ in 0..MAX_CONFLICTS {
            let Some((revision, Some(mut registration))) = self.read(operation, &key).await? else {
                return Err(RegistryError::NotFound {
                    instance: instance.clone(),
                });
            };
            let out = change(&mut registration);
            if self
                .write(operation, &key, Some(revision), &registration)
                .await?
            {
                return Ok((out, registration));
            }
        }
        Err(contended(operation, &key))
    }
}

impl KvRegistry {
    /// Keeps `registry` (a node's registry on this backend) up to date with what
    /// other nodes write to the bucket, until the task is aborted: the current
    /// entries first (so nothing written between the node's start and the watch is
    /// missed), then every change as it happens. Each goes through
    /// [`Registry::apply_remote`], so the node's snapshot, call routes and watchers
    /// see other nodes' instances come, change and go. If the watch breaks (the
    /// server restarted), it is opened again after a second.
    pub fn follow(&self, registry: Registry) -> JoinHandle<()> {
        let store = self.store.clone();
        tokio::spawn(async move {
            loop {
                match store.watch_with_history(">").await {
                    Ok(mut watch) => {
                        while let Some(entry) = watch.next().await {
                            match entry {
                                Ok(entry) => apply(&registry, &entry).await,
                                Err(error) => {
                                    tracing::warn!(%error, "registry watch failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot watch the registry bucket"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}

/// Applies one entry of the bucket to `registry`.
async fn apply(registry: &Registry, entry: &kv::Entry) {
    let Some(instance) = instance_of_key(&entry.key) else {
        tracing::warn!(
            key = entry.key,
            "a registry key that is not an instance; ignored"
        );
        return;
    };
    let registration = match entry.operation {
        Operation::Put => match decode("watch", &entry.value) {
            Ok(registration) => Some(registration),
            Err(error) => {
                tracing::warn!(%error, key = entry.key, "ignored");
                return;
            }
        },
        Operation::Delete | Operation::Purge => None,
    };
    registry.apply_remote(&instance, registration).await;
}

#[async_trait]
impl RegistryBackend for KvRegistry {
    async fn put(&self, registration: Registration) -> Result<Option<Registration>, RegistryError> {
        const OP: &str = "put";
        let key = instance_key(registration.instance());
        for _ in 0..MAX_CONFLICTS {
            let (revision, existing) = match self.read(OP, &key).await? {
                Some((revision, existing)) => (Some(revision), existing),
                None => (None, None),
            };
            if let Some(existing) = &existing
                && existing.service() != registration.service()
            {
                return Err(RegistryError::DuplicateInstance {
                    instance: registration.instance().clone(),
                    existing: existing.service().clone(),
                    requested: registration.service().clone(),
                });
            }
            if self.write(OP, &key, revision, &registration).await? {
                return Ok(existing);
            }
        }
        Err(contended(OP, &key))
    }

    async fn remove(&self, instance: &InstanceId) -> Result<Option<Registration>, RegistryError> {
        const OP: &str = "remove";
        let key = instance_key(instance);
        for _ in 0..MAX_CONFLICTS {
            let Some((revision, Some(existing))) = self.read(OP, &key).await? else {
                return Ok(None);
            };
            match self
                .store
                .delete_expect_revision(&key, Some(revision))
                .await
            {
                Ok(()) => return Ok(Some(existing)),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(failed(OP, e)),
            }
        }
        Err(contended(OP, &key))
    }

    async fn get(&self, instance: &InstanceId) -> Result<Option<Registration>, RegistryError> {
        Ok(self
            .read("get", &instance_key(instance))
            .await?
            .and_then(|(_, live)| live))
    }

    async fn list(&self) -> Result<Vec<Registration>, RegistryError> {
        use futures::TryStreamExt;
        const OP: &str = "list";
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(|e| failed(OP, e))?
            .try_collect()
            .await
            .map_err(|e| failed(OP, e))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some((_, Some(registration))) = self.read(OP, &key).await? {
                out.push(registration);
            }
        }
        out.sort_by(|a, b| a.instance().cmp(b.instance()));
        Ok(out)
    }

    async fn update_status(
        &self,
        instance: &InstanceId,
        update: StatusUpdate,
    ) -> Result<Updated, RegistryError> {
        let (previous, registration) = self
            .modify("update_status", instance, |entry| {
                let previous = entry.status;
                if previous != update.status {
                    entry.status_since = update.at;
                }
                entry.status = update.status;
                entry.reason.clone_from(&update.reason);
                entry.stale = update.stale;
                previous
            })
            .await?;
        Ok(Updated {
            previous,
            registration,
        })
    }

    async fn heartbeat(
        &self,
        instance: &InstanceId,
        at: Timestamp,
    ) -> Result<Registration, RegistryError> {
        let ((), registration) = self
            .modify("heartbeat", instance, |entry| entry.last_heartbeat = at)
            .await?;
        Ok(registration)
    }
}

/// The KV key of an instance: its id with every byte outside `[A-Za-z0-9_-]`
/// written as `=XX` (hex), so any id is a valid key and `nats kv ls` still reads.
pub fn instance_key(instance: &InstanceId) -> String {
    let mut key = String::with_capacity(instance.as_str().len());
    for b in instance.as_str().bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            key.push(char::from(b));
        } else {
            key.push_str(&format!("={b:02X}"));
        }
    }
    key
}

/// The instance a key names: [`instance_key`] undone.
pub fn instance_of_key(key: &str) -> Option<InstanceId> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(InstanceId::new)
}

fn encode(operation: &'static str, registration: &Registration) -> Result<Bytes, RegistryError> {
    serde_json::to_vec(registration)
        .map(Bytes::from)
        .map_err(|e| failed(operation, e))
}

fn decode(operation: &'static str, value: &[u8]) -> Result<Registration, RegistryError> {
    serde_json::from_slice(value).map_err(|e| RegistryError::Backend {
        operation,
        message: format!("a registry entry is not a registration: {e}"),
    })
}

fn failed(operation: &'static str, error: impl std::fmt::Display) -> RegistryError {
    RegistryError::Backend {
        operation,
        message: error.to_string(),
    }
}

fn contended(operation: &'static str, key: &str) -> RegistryError {
    RegistryError::Backend {
        operation,
        message: format!("key `{key}` kept changing under {MAX_CONFLICTS} tries; try again"),
    }
}
