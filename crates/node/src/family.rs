//! [`Family`]: the one door through which a service family enters the node.
//!
//! A family (the DataStore, and later the cache, locks, jobs, …) reads its own
//! configuration section and turns it into [`Parts`]: the services it registers, the
//! health components of what it depends on (a database, a Redis connection), the
//! observers of calls, its metrics, and optionally where the configuration history
//! is kept. The application (`plexus-app`) assembles every family's parts into one
//! node, so adding a family is one line in its list of families, never a page of
//! wiring in the binary. [`NodeSection`] is `[node]`, which every family may read
//! (`data_dir` for its files).
//!
//! [`typed`] and [`checked`] read and check a section so that every family names a
//! problem the same way: by its full dotted path (`store.url`).
//!
//! Most families read one typed section: they implement [`SectionFamily`] (the
//! section's type and name, and what to open with the settings) and get [`Family`]
//! from it. A family with no section, or an unusual one, implements [`Family`]:
//!
//! ```
//! use plexus_node::family::{Family, FamilyError, NodeSection, Parts};
//! use plexus_config::{ConfigError, ConfigStore};
//! use serde_json::Value;
//!
//! /// A family with no backend: it only checks that `[greeter]` is a table.
//! struct Greeter;
//!
//! #[plexus_core::async_trait]
//! impl Family for Greeter {
//!     fn section(&self) -> &'static str {
//!         "greeter"
//!     }
//!     fn check(&self, section: Option<&Value>, _node: &NodeSection) -> Result<(), FamilyError> {
//!         match section {
//!             None | Some(Value::Object(_)) => Ok(()),
//!             Some(_) => Err(FamilyError::invalid("greeter", "must be a table")),
//!         }
//!     }
//!     async fn register(&self, _store: &ConfigStore) -> Result<(), ConfigError> {
//!         Ok(())
//!     }
//!     async fn open(&self, _section: Option<&Value>, _node: &NodeSection) -> Result<Parts, FamilyError> {
//!         Ok(Parts::default())
//!     }
//! }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use plexus_config::{ConfigError, ConfigStore, FieldErrors, HistoryStore, Validate};
use plexus_core::Service;
use plexus_registry::health::ComponentSpec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CallObserver, CallRecord, Node};

/// A service family as the node assembles it.
#[plexus_core::async_trait]
pub trait Family: Send + Sync + 'static {
    /// The configuration section it reads (`store`); also its name in logs and errors.
    fn section(&self) -> &'static str;

    /// Checks its section (`None` when absent) against the rest of the
    /// configuration, naming a problem by its full path (`store.url`).
    fn check(&self, section: Option<&Value>, node: &NodeSection) -> Result<(), FamilyError>;

    /// Registers its section with the configuration store, so that a runtime change
    /// (a reloaded file, `plexus config set`) is checked too.
    async fn register(&self, store: &ConfigStore) -> Result<(), ConfigError>;

    /// Its section's defaults as JSON, shown by `node.config_get` and `plexus config
    /// get` beside what the configuration sets (`None`: nothing to show).
    fn defaults(&self, node: &NodeSection) -> Option<Value> {
        let _ = node;
        None
    }

    /// Opens its backends and says what it brings to the node; a family that is
    /// switched off brings [`Parts::default`].
    async fn open(&self, section: Option<&Value>, node: &NodeSection)
    -> Result<Parts, FamilyError>;
}

/// A family that reads one typed section (most do): implement this and [`Family`]
/// comes with it. The section is read with [`typed`] and checked with [`checked`]
/// (problems named by their full path), its defaults shown by `config get`, and
/// registered so a runtime change is checked too; the family writes only what it
/// opens.
#[plexus_core::async_trait]
pub trait SectionFamily: Send + Sync + 'static {
    /// Its section as a Rust type.
    type Config: Serialize + DeserializeOwned + Validate + Default + Send + Sync + 'static;

    /// The section's name (`store`); also the family's name in logs and errors.
    const SECTION: &'static str;

    /// The settings when the section is absent, and under the keys a section does
    /// not set; `Default` unless they depend on `[node]` (a file in the data
    /// directory).
    fn defaults(&self, node: &NodeSection) -> Self::Config {
        let _ = node;
        Self::Config::default()
    }

    /// The settings in force: the section typed and checked, or the defaults.
    fn settings(
        &self,
        section: Option<&Value>,
        node: &NodeSection,
    ) -> Result<Self::Config, FamilyError> {
        let settings = match section {
            // The keys given, over the defaults for this node: a section that sets
            // one key keeps the node-aware defaults of the others (the database in
            // the data directory, say).
            Some(Value::Object(given)) => match serde_json::to_value(self.defaults(node)) {
                Ok(Value::Object(mut base)) => {
                    base.extend(given.clone());
                    typed(&Value::Object(base), Self::SECTION)?
                }
                _ => typed(&Value::Object(given.clone()), Self::SECTION)?,
            },
            Some(value) => typed(value, Self::SECTION)?,
            None => self.defaults(node),
        };
        checked(&settings, Self::SECTION)?;
        Ok(settings)
    }

    /// Opens its backends with the settings in force (see [`Family::open`]).
    async fn open_with(
        &self,
        settings: Self::Config,
        node: &NodeSection,
    ) -> Result<Parts, FamilyError>;
}

#[plexus_core::async_trait]
impl<F: SectionFamily> Family for F {
    fn section(&self) -> &'static str {
        F::SECTION
    }

    fn check(&self, section: Option<&Value>, node: &NodeSection) -> Result<(), FamilyError> {
        self.settings(section, node).map(drop)
    }

    async fn register(&self, store: &ConfigStore) -> Result<(), ConfigError> {
        store
            .register_section::<F::Config>(F::SECTION)
            .await
            .map(drop)
    }

    fn defaults(&self, node: &NodeSection) -> Option<Value> {
        serde_json::to_value(SectionFamily::defaults(self, node)).ok()
    }

    async fn open(
        &self,
        section: Option<&Value>,
        node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        let settings = self.settings(section, node)?;
        self.open_with(settings, node).await
    }
}

/// Registers a family's metrics once the node (and its metrics registry) exists.
pub type MetricsHook = Box<dyn FnOnce(&Node) + Send>;

/// What a family brings to the node.
#[derive(Default)]
#[non_exhaustive]
pub struct Parts {
    /// Services to register, in start order.
    pub services: Vec<Arc<dyn Service>>,
    /// Health components: the dependencies it needs, each with its check and heal.
    pub components: Vec<ComponentSpec>,
    /// Observers of every mutating call (the audit trail).
    pub observers: Vec<Arc<dyn CallObserver>>,
    /// Metrics to add to the node's registry once it runs.
    pub metrics: Vec<MetricsHook>,
    /// Where configuration versions are kept, so they survive a restart; the first
    /// family that offers one is used.
    pub history: Option<Arc<dyn HistoryStore>>,
    /// The link that makes the node one of a cluster (`[cluster]`); the first
    /// family that offers one is used.
    pub cluster: Option<Arc<dyn crate::ClusterLink>>,
    /// Where durable topics are kept (`[store] durable_topics`); the first family
    /// that offers one is used.
    pub durable: Option<Arc<dyn crate::DurableLog>>,
    /// HTTP routes the gateway serves behind its tokens (the inference family's
    /// OpenAI-compatible `/v1/...`); a handler reads the caller from the request's
    /// extensions (`plexus_core::scope::Caller`) and checks its scopes.
    pub routes: Vec<axum::Router>,
}

impl Parts {
    /// Adds a service.
    pub fn service(mut self, service: Arc<dyn Service>) -> Self {
        self.services.push(service);
        self
    }

    /// Adds a health component.
    pub fn component(mut self, component: ComponentSpec) -> Self {
        self.components.push(component);
        self
    }

    /// Adds a call observer.
    pub fn observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Adds metrics, registered once the node runs.
    pub fn metrics(mut self, hook: impl FnOnce(&Node) + Send + 'static) -> Self {
        self.metrics.push(Box::new(hook));
        self
    }

    /// Adds HTTP routes for the gateway to serve.
    pub fn routes(mut self, router: axum::Router) -> Self {
        self.routes.push(router);
        self
    }

    /// Offers a configuration history store.
    pub fn history(mut self, history: Arc<dyn HistoryStore>) -> Self {
        self.history = Some(history);
        self
    }

    /// Offers the link to a cluster.
    pub fn cluster(mut self, link: Arc<dyn crate::ClusterLink>) -> Self {
        self.cluster = Some(link);
        self
    }

    /// Offers the log of durable topics.
    pub fn durable(mut self, log: Arc<dyn crate::DurableLog>) -> Self {
        self.durable = Some(log);
        self
    }

    /// Adds another family's parts to these (services and components in order; the
    /// first history offered wins).
    pub fn merge(&mut self, other: Parts) {
        self.services.extend(other.services);
        self.components.extend(other.components);
        self.observers.extend(other.observers);
        self.metrics.extend(other.metrics);
        self.routes.extend(other.routes);
        if self.history.is_none() {
            self.history = other.history;
        }
        if self.cluster.is_none() {
            self.cluster = other.cluster;
        }
        if self.durable.is_none() {
            self.durable = other.durable;
        }
    }

    /// The observers as the one a node takes ([`NodeBuilder::audit`](crate::NodeBuilder::audit)).
    pub fn observer_for_node(&self) -> Option<Arc<dyn CallObserver>> {
        match self.observers.len() {
            0 => None,
            1 => self.observers.first().cloned(),
            _ => Some(Arc::new(Fanout(self.observers.clone()))),
        }
    }
}

/// Hands each record to several observers, in order.
struct Fanout(Vec<Arc<dyn CallObserver>>);

#[plexus_core::async_trait]
impl CallObserver for Fanout {
    async fn record(&self, record: CallRecord) {
        for observer in &self.0 {
            observer.record(record.clone()).await;
        }
    }
}

/// Why a family could not be configured or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FamilyError {
    /// A key of its section is unknown, of the wrong type, or out of range.
    #[error("configuration: `{key}`: {reason}")]
    Invalid {
        /// The key's full dotted path (`store.url`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Its backend could not be opened (a database, a server).
    #[error("{family}")]
    Open {
        /// The family's section (`store`).
        family: &'static str,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl FamilyError {
    /// A problem with the key at `key` (a full dotted path).
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        FamilyError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The family's backend could not be opened.
    pub fn open(
        family: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        FamilyError::Open {
            family,
            source: Box::new(source),
        }
    }
}

/// `[node]`: the node's name and where embedded backends keep their files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// The node's name (default `plexus`).
    pub name: String,
    /// Where embedded backends keep their files (default `plexus-data`, relative to
    /// the working directory): the SQLite file of the DataStore unless `[store]`
    /// names another database.
    pub data_dir: PathBuf,
    /// How long the bus may take to deliver what it holds at shutdown, in
    /// milliseconds (default 5,000).
    pub drain_ms: u64,
    /// Run the `datastore` service (default true).
    pub datastore: bool,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            name: "plexus".to_owned(),
            data_dir: PathBuf::from("plexus-data"),
            drain_ms: 5_000,
            datastore: true,
        }
    }
}

impl Validate for NodeSection {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .non_empty("name", &self.name)
            .check(!self.data_dir.as_os_str().is_empty(), "data_dir", || {
                "must not be empty".to_owned()
            })
            .at_least("drain_ms", self.drain_ms, 1);
        errors.into_result()
    }
}

/// A part one family opens and a later one uses (the DataStore, for the jobs'
/// transactions): the family that opens it fills the slot, the families after
/// it in the node's list read it when they open. Clones share the slot; a node
/// reopened fills it again.
#[derive(Debug)]
pub struct Slot<T> {
    inner: Arc<parking_lot::Mutex<Option<T>>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            inner: Arc::new(parking_lot::Mutex::new(None)),
        }
    }
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone> Slot<T> {
    /// Puts `value` in the slot (in place of what it held).
    pub fn fill(&self, value: T) {
        *self.inner.lock() = Some(value);
    }

    /// What the slot holds, if its family opened it.
    pub fn get(&self) -> Option<T> {
        self.inner.lock().clone()
    }
}

/// Reads a typed section from `value`, its errors naming the key under `prefix`.
pub fn typed<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, FamilyError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = match (prefix.is_empty(), path == ".") {
            (true, true) => "(root)".to_owned(),
            (true, false) => path,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{path}"),
        };
        FamilyError::invalid(key, e.into_inner().to_string())
    })
}

/// Checks a section with [`Validate`], naming the first problem under `prefix`.
pub fn checked<T: Validate>(section: &T, prefix: &str) -> Result<(), FamilyError> {
    section.validate().map_err(|errors| {
        let errors = errors.under(prefix);
        let first = errors.first();
        FamilyError::invalid(
            first.map(|f| f.field.clone()).unwrap_or_default(),
            first.map(|f| f.reason.clone()).unwrap_or_default(),
        )
    })
}
