//! [`JobsFamily`]: the job queue entering the node through the family door. Its
//! `[jobs]` section opens its backend (by default the DataStore's SQLite file in
//! the node's data folder; PostgreSQL with `backend = "postgres"`; Redis, through
//! the node's one connection, with `backend = "redis"`), builds the `jobs` service
//! and its metrics; once the node
//! runs, the queue is attached to it so enqueues check targets in its registry and
//! its workers call them through the call path.

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily, Slot};
use plexus_redis::RedisSlot;
use plexus_store::DataStore;

use crate::config::{BackendChoice, JobsConfig, SECTION};
use crate::{
    Clock, JobBackend, JobMetrics, JobService, Jobs, PostgresBackend, RedisBackend, SqliteBackend,
};

/// The Jobs family.
#[derive(Clone, Debug, Default)]
pub struct JobsFamily {
    redis: RedisSlot,
    datastore: Slot<DataStore>,
}

impl JobsFamily {
    /// The family, reaching Redis (for `backend = "redis"`) through `redis`: the
    /// slot of the node's [`RedisFamily`](plexus_redis::RedisFamily).
    pub fn new(redis: RedisSlot) -> Self {
        Self {
            redis,
            datastore: Slot::default(),
        }
    }

    /// The family, with `jobs.transaction` reaching the DataStore the node's
    /// DataStore family opens (its [`slot`](plexus_datastore_slot)): data changes
    /// and jobs in one commit over JSON-RPC, WebSocket and MCP.
    ///
    /// [`plexus_datastore_slot`]: Slot
    pub fn with_datastore(mut self, datastore: Slot<DataStore>) -> Self {
        self.datastore = datastore;
        self
    }
}

#[plexus_core::async_trait]
impl SectionFamily for JobsFamily {
    type Config = JobsConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: JobsConfig,
        node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !settings.enabled {
            return Ok(Parts::default());
        }
        let mut parts = Parts::default();
        let opened: Result<Arc<dyn JobBackend>, _> = match (settings.backend, settings.postgres()) {
            (BackendChoice::Redis, _) => Ok(Arc::new(RedisBackend::new(
                self.redis.connect(SECTION, &mut parts)?,
            )) as Arc<dyn JobBackend>),
            (BackendChoice::Postgres, Some(options)) => PostgresBackend::connect(&options)
                .await
                .map(|b| Arc::new(b) as Arc<dyn JobBackend>),
            _ => {
                let url = settings.sqlite_url.clone().unwrap_or_else(|| {
                    format!("sqlite://{}", node.data_dir.join("plexus.db").display())
                });
                SqliteBackend::connect_with(&url, settings.pool_size)
                    .await
                    .map(|b| Arc::new(b) as Arc<dyn JobBackend>)
            }
        };
        let backend = opened.map_err(|e| FamilyError::open(SECTION, e))?;
        tracing::info!(backend = backend.name(), "jobs open");
        let metrics = JobMetrics::new();
        let jobs = Jobs::new(backend, settings, metrics.clone(), Clock::system());
        if let Some(datastore) = self.datastore.get() {
            jobs.set_datastore(datastore);
        }
        let service = JobService::new(jobs);
        let attach = service.clone();
        Ok(parts.service(Arc::new(service)).metrics(move |node| {
            node.metrics()
                .with_registry(|registry| metrics.register(registry));
            attach.attach(node);
        }))
    }
}
