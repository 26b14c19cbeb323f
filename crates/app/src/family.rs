//! [`Family`]: the one door through which a service family enters the node.
//!
//! A family (the DataStore, and later the cache, locks, jobs, …) reads its own
//! configuration section and turns it into [`Parts`]: the services it registers, the
//! health components of what it depends on (a database, a Redis connection), the
//! observers of calls, its metrics, and optionally where the configuration history
//! is kept. The [`App`](crate::App) assembles every family's parts into one node, so
//! adding a family is one line in [`default_families`](crate::default_families) (or
//! one [`AppBuilder::family`](crate::AppBuilder::family) call for an embedder), never
//! a page of wiring in the binary.
//!
//! ```
//! use plexus_app::{AppConfig, AppError, Family, Parts};
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
//!     fn check(&self, section: Option<&Value>, _node: &AppConfig) -> Result<(), AppError> {
//!         match section {
//!             None | Some(Value::Object(_)) => Ok(()),
//!             Some(_) => Err(AppError::Invalid { key: "greeter".into(), reason: "must be a table".into() }),
//!         }
//!     }
//!     async fn register(&self, _store: &ConfigStore) -> Result<(), ConfigError> {
//!         Ok(())
//!     }
//!     async fn open(&self, _section: Option<&Value>, _node: &AppConfig) -> Result<Parts, AppError> {
//!         Ok(Parts::default())
//!     }
//! }
//! ```

use std::sync::Arc;

use plexus_config::{ConfigError, ConfigStore, HistoryStore};
use plexus_core::Service;
use plexus_node::{CallObserver, CallRecord, Node};
use plexus_registry::health::ComponentSpec;
use serde_json::Value;

use crate::{AppConfig, AppError};

/// A service family as the node assembles it.
#[plexus_core::async_trait]
pub trait Family: Send + Sync + 'static {
    /// The configuration section it reads (`store`); also its name in logs and errors.
    fn section(&self) -> &'static str;

    /// Checks its section (`None` when absent) against the rest of the
    /// configuration, naming a problem by its full path (`store.url`).
    fn check(&self, section: Option<&Value>, config: &AppConfig) -> Result<(), AppError>;

    /// Registers its section with the configuration store, so that a runtime change
    /// (a reloaded file, `plexus config set`) is checked too.
    async fn register(&self, store: &ConfigStore) -> Result<(), ConfigError>;

    /// Opens its backends and says what it brings to the node; a family that is
    /// switched off brings [`Parts::default`].
    async fn open(&self, section: Option<&Value>, config: &AppConfig) -> Result<Parts, AppError>;
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

    /// Offers a configuration history store.
    pub fn history(mut self, history: Arc<dyn HistoryStore>) -> Self {
        self.history = Some(history);
        self
    }

    /// Adds another family's parts to these (services and components in order; the
    /// first history offered wins).
    pub(crate) fn merge(&mut self, other: Parts) {
        self.services.extend(other.services);
        self.components.extend(other.components);
        self.observers.extend(other.observers);
        self.metrics.extend(other.metrics);
        if self.history.is_none() {
            self.history = other.history;
        }
    }

    /// The observers as the one the node takes.
    pub(crate) fn observer_for_node(&self) -> Option<Arc<dyn CallObserver>> {
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
