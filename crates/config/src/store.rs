//! The store: the document in force, its typed sections, its history, and the one
//! path every change takes (check, validate every section, record, put in force,
//! announce).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use plexus_core::{Envelope, Event, Timestamp};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::event::{ConfigChanged, ConfigEvent, ConfigRejected, ConfigRolledBack};
use crate::section::{Prepared, Slot, TypedSlot, read_section};
use crate::source::{EnvOverrides, parse_toml, read_file};
use crate::{
    ConfigError, ConfigOptions, ConfigVersion, FieldErrors, HistoryStore, MemoryHistory, Section,
    Validate, path,
};

/// A section and its next value, checked and waiting to be put in force.
type Ready = (Arc<dyn Slot>, Prepared);

/// The author of the versions the store makes itself when it starts.
pub const STARTUP_AUTHOR: &str = "startup";

/// The runtime configuration of one node: a document (TOML in, JSON out), typed
/// sections read from it, a bounded versioned history, and change events.
///
/// Cheap to clone: clones share one store. Every change goes through one path,
/// one change at a time: the candidate is checked against the bounds of
/// [`ConfigOptions`], every registered section whose part changed is read and
/// validated, the version is recorded in the [`HistoryStore`], and only then is it
/// put in force and announced ([`ConfigChanged`] on the bus and on
/// [`ConfigStore::events`]). A refused change leaves the version in force as it
/// was and announces [`ConfigRejected`]. Events are published in version order,
/// before the change returns: a bus subscriber on `plexus.config.>` whose queue
/// is full holds up the next change for as long as its overflow policy says.
#[derive(Clone)]
pub struct ConfigStore {
    inner: Arc<Inner>,
}

struct Inner {
    options: ConfigOptions,
    overrides: EnvOverrides,
    current: ArcSwap<ConfigVersion>,
    window: Mutex<VecDeque<ConfigVersion>>,
    /// Held for the whole of a change or a registration: one at a time.
    changes: tokio::sync::Mutex<()>,
    sections: RwLock<BTreeMap<String, Arc<dyn Slot>>>,
    /// What paths hold when the document does not say: read by
    /// [`ConfigStore::effective`], never a version.
    defaults: RwLock<Value>,
    events: broadcast::Sender<ConfigEvent>,
    history: Arc<dyn HistoryStore>,
}

impl std::fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigStore")
            .field("version", &self.current_version())
            .field(
                "sections",
                &self.inner.sections.read().keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Where the first document comes from.
#[derive(Debug)]
enum Base {
    Document(Value),
    Toml(String),
    File(PathBuf),
}

/// Where environment overrides come from.
#[derive(Debug)]
enum Env {
    None,
    Vars(Vec<(String, String)>),
    Process,
}

/// Builds a [`ConfigStore`] from a document, TOML text or a TOML file, environment
/// overrides, and a history store.
pub struct ConfigStoreBuilder {
    options: ConfigOptions,
    base: Base,
    env: Env,
    history: Option<Arc<dyn HistoryStore>>,
}

impl std::fmt::Debug for ConfigStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigStoreBuilder")
            .field("options", &self.options)
            .field("base", &self.base)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl ConfigStoreBuilder {
    /// Starts from `document` (the default is an empty table).
    pub fn document(mut self, document: Value) -> Self {
        self.base = Base::Document(document);
        self
    }

    /// Starts from TOML text.
    pub fn toml(mut self, text: impl Into<String>) -> Self {
        self.base = Base::Toml(text.into());
        self
    }

    /// Starts from a TOML file (at most [`ConfigOptions::max_document_bytes`]).
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.base = Base::File(path.into());
        self
    }

    /// Applies overrides from these (name, value) pairs, read as the process
    /// environment would be (see [`crate::source`]).
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Env::Vars(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Applies overrides from the process environment.
    pub fn process_env(mut self) -> Self {
        self.env = Env::Process;
        self
    }

    /// Records versions in `history` and resumes from what it holds.
    pub fn history(mut self, history: Arc<dyn HistoryStore>) -> Self {
        self.history = Some(history);
        self
    }

    /// Sets the options.
    pub fn options(mut self, options: ConfigOptions) -> Self {
        self.options = options;
        self
    }

    /// Reads the sources and builds the store.
    ///
    /// With an empty history, the document read becomes version 1. With a history
    /// that holds versions, the newest becomes the version in force and, if the
    /// document read differs from it, the document read is recorded on top as a
    /// new version by [`STARTUP_AUTHOR`]: the sources given at start-up win.
    pub async fn build(self) -> Result<ConfigStore, ConfigError> {
        let (options, overrides, document) = self.read_sources()?;
        let history: Arc<dyn HistoryStore> = match self.history {
            Some(history) => history,
            None => Arc::new(MemoryHistory::new(options.max_history)),
        };
        let loaded = history.load().await.map_err(ConfigError::History)?;
        let (window, new) = first_versions(document, loaded, options.max_history);
        if let Some(version) = &new {
            history
                .append(version)
                .await
                .map_err(ConfigError::History)?;
        }
        Ok(ConfigStore::assemble(options, overrides, window, history))
    }

    fn read_sources(&self) -> Result<(ConfigOptions, EnvOverrides, Value), ConfigError> {
        let options = self.options.clone();
        options.validate()?;
        let overrides = match &self.env {
            Env::None => EnvOverrides::new(),
            Env::Vars(vars) => EnvOverrides::from_vars(
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &options.env_prefix,
                &options.env_exclude,
            )?,
            Env::Process => {
                EnvOverrides::from_process_env(&options.env_prefix, &options.env_exclude)?
            }
        };
        let mut document = match &self.base {
            Base::Document(document) => document.clone(),
            Base::Toml(text) => parse_toml(text, "<string>")?,
            Base::File(file) => read_toml_file(file, options.max_document_bytes)?,
        };
        check_shape(&document, &options)?;
        overrides.apply_to(&mut document)?;
        check_shape(&document, &options)?;
        Ok((options, overrides, document))
    }
}

fn read_toml_file(file: &Path, limit: usize) -> Result<Value, ConfigError> {
    let text = read_file(file, limit)?;
    parse_toml(&text, &file.display().to_string())
}

/// The history window to start from and, when the start-up document is new, the
/// version that records it.
fn first_versions(
    document: Value,
    mut loaded: Vec<ConfigVersion>,
    max_history: usize,
) -> (VecDeque<ConfigVersion>, Option<ConfigVersion>) {
    let excess = loaded.len().saturating_sub(max_history);
    loaded.drain(..excess);
    let mut window: VecDeque<ConfigVersion> = loaded.into();
    let new = match window.back() {
        None => Some(new_version(
            1,
            &Value::Object(Map::new()),
            document,
            STARTUP_AUTHOR,
            "initial configuration",
            None,
        )),
        Some(last) if *last.document != document => Some(new_version(
            last.version + 1,
            &last.document,
            document,
            STARTUP_AUTHOR,
            &format!(
                "the start-up configuration differs from version {}",
                last.version
            ),
            None,
        )),
        Some(_) => None,
    };
    if let Some(version) = &new {
        window.push_back(version.clone());
        if window.len() > max_history {
            window.pop_front();
        }
    }
    (window, new)
}

fn new_version(
    number: u64,
    before: &Value,
    document: Value,
    author: &str,
    reason: &str,
    rollback_of: Option<u64>,
) -> ConfigVersion {
    ConfigVersion {
        version: number,
        at: Timestamp::now(),
        author: author.to_owned(),
        reason: reason.to_owned(),
        changed: path::diff(before, &document),
        rollback_of,
        document: Arc::new(document),
    }
}

/// The bounds every document must keep: a table at the root, not too deep, not
/// too large.
fn check_shape(document: &Value, options: &ConfigOptions) -> Result<(), ConfigError> {
    if !document.is_object() {
        return Err(ConfigError::NotATable {
            kind: path::kind(document),
        });
    }
    if let Some(field) = path::too_deep(document, options.max_depth) {
        return Err(ConfigError::TooDeep {
            field,
            limit: options.max_depth,
        });
    }
    let size = path::encoded_len(document);
    if size > options.max_document_bytes {
        return Err(ConfigError::TooLarge {
            what: "the configuration document".to_owned(),
            size,
            limit: options.max_document_bytes,
            option: "max_document_bytes",
        });
    }
    Ok(())
}

impl ConfigStore {
    /// A store whose version 1 is `initial`, with history in memory and no
    /// environment overrides.
    pub fn new(initial: Value, options: ConfigOptions) -> Result<Self, ConfigError> {
        Self::in_memory(ConfigStore::builder().options(options).document(initial))
    }

    /// A store whose version 1 is the TOML file at `path` with the process's
    /// `PLEXUS_*` environment overrides on top, with history in memory.
    pub fn load(path: impl Into<PathBuf>, options: ConfigOptions) -> Result<Self, ConfigError> {
        Self::in_memory(
            ConfigStore::builder()
                .options(options)
                .file(path)
                .process_env(),
        )
    }

    /// A builder, for TOML text, injected environment variables or a persistent
    /// history.
    pub fn builder() -> ConfigStoreBuilder {
        ConfigStoreBuilder {
            options: ConfigOptions::default(),
            base: Base::Document(Value::Object(Map::new())),
            env: Env::None,
            history: None,
        }
    }

    fn in_memory(builder: ConfigStoreBuilder) -> Result<Self, ConfigError> {
        let (options, overrides, document) = builder.read_sources()?;
        let history = Arc::new(MemoryHistory::new(options.max_history));
        let (window, new) = first_versions(document, Vec::new(), options.max_history);
        if let Some(version) = new {
            history.push(version);
        }
        Ok(Self::assemble(options, overrides, window, history))
    }

    fn assemble(
        options: ConfigOptions,
        overrides: EnvOverrides,
        window: VecDeque<ConfigVersion>,
        history: Arc<dyn HistoryStore>,
    ) -> Self {
        let current = window.back().cloned().unwrap_or_else(|| {
            new_version(
                1,
                &Value::Object(Map::new()),
                Value::Object(Map::new()),
                STARTUP_AUTHOR,
                "empty configuration",
                None,
            )
        });
        let (events, _) = broadcast::channel(options.event_capacity);
        Self {
            inner: Arc::new(Inner {
                options,
                overrides,
                current: ArcSwap::from_pointee(current),
                window: Mutex::new(window),
                changes: tokio::sync::Mutex::new(()),
                sections: RwLock::new(BTreeMap::new()),
                defaults: RwLock::new(Value::Object(serde_json::Map::new())),
                events,
                history,
            }),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &ConfigOptions {
        &self.inner.options
    }

    /// The environment overrides applied to every read of the file.
    pub fn env_overrides(&self) -> &EnvOverrides {
        &self.inner.overrides
    }

    // ----- reading -----

    /// The number of the version in force.
    pub fn current_version(&self) -> u64 {
        self.inner.current.load().version
    }

    /// The version in force, with its document.
    pub fn current(&self) -> ConfigVersion {
        ConfigVersion::clone(&self.inner.current.load())
    }

    /// The whole document in force.
    pub fn document(&self) -> Arc<Value> {
        Arc::clone(&self.inner.current.load().document)
    }

    /// The value at a dotted path in the document in force (`Ok(None)`: not set).
    /// Arrays are indexed by number (`hosts.0`).
    pub fn get(&self, path: &str) -> Result<Option<Value>, ConfigError> {
        let keys = path::keys(path)?;
        Ok(path::get(&self.inner.current.load().document, &keys).cloned())
    }

    /// The value at `path` in force, defaults included: the document's value merged
    /// over the defaults declared with [`declare_defaults`](Self::declare_defaults)
    /// (objects key by key, anything else replaced). The whole document with an
    /// empty path.
    pub fn effective(&self, path: &str) -> Result<Option<Value>, ConfigError> {
        let keys = if path.is_empty() {
            Vec::new()
        } else {
            path::keys(path)?
        };
        let mut whole = self.inner.defaults.read().clone();
        path::merge(&mut whole, &self.inner.current.load().document);
        Ok(path::get(&whole, &keys).cloned())
    }

    /// Declares what `path` holds when the document does not say (a section's
    /// defaults, as JSON), so [`effective`](Self::effective) and the CLI's `config
    /// get` show every setting in force. Defaults are not a version and are never
    /// written to the history.
    pub fn declare_defaults(&self, path: &str, defaults: Value) -> Result<(), ConfigError> {
        let keys = path::keys(path)?;
        let mut all = self.inner.defaults.write();
        if !all.is_object() {
            *all = Value::Object(serde_json::Map::new());
        }
        path::set(&mut all, &keys, defaults)
            .map_err(|reason| ConfigError::invalid(vec![crate::FieldError::new(path, reason)]))
    }

    /// The versions kept, oldest first (at most [`ConfigOptions::max_history`]).
    pub fn history(&self) -> Vec<ConfigVersion> {
        self.inner.window.lock().iter().cloned().collect()
    }

    /// One version, if it is still kept.
    pub fn version(&self, version: u64) -> Option<ConfigVersion> {
        self.inner
            .window
            .lock()
            .iter()
            .find(|v| v.version == version)
            .cloned()
    }

    /// The local event stream: every change, rejection and rollback, in order. A
    /// listener that falls more than [`ConfigOptions::event_capacity`] events
    /// behind misses the oldest and is told how many (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<ConfigEvent> {
        self.inner.events.subscribe()
    }

    // ----- sections -----

    /// Declares a typed section at `path`, whose value is `T::default()` while
    /// the path is absent. See [`ConfigStore::register_section_with_default`].
    pub async fn register_section<T>(&self, path: &str) -> Result<Section<T>, ConfigError>
    where
        T: DeserializeOwned + Validate + Default + Send + Sync + 'static,
    {
        self.register_section_with_default(path, T::default()).await
    }

    /// Declares a typed section at `path` whose value is `default` while the path
    /// is absent (or null), and returns a handle on it.
    ///
    /// The document in force must hold a valid `T` there (or nothing): otherwise
    /// [`ConfigError::Invalid`] names the field, and nothing is registered. From
    /// then on every change must keep the section valid. Registering a path again
    /// with the same type returns a handle on the section already there (the new
    /// default is not used); with another type it is a
    /// [`ConfigError::TypeMismatch`].
    pub async fn register_section_with_default<T>(
        &self,
        path: &str,
        default: T,
    ) -> Result<Section<T>, ConfigError>
    where
        T: DeserializeOwned + Validate + Send + Sync + 'static,
    {
        let keys = path::keys(path)?;
        let _one_at_a_time = self.inner.changes.lock().await;
        if self.inner.sections.read().contains_key(path) {
            return self.section(path);
        }
        default
            .validate()
            .map_err(|errors| ConfigError::invalid(errors.under(path).into_vec()))?;
        let default = Arc::new(default);
        let current = self.inner.current.load_full();
        let initial = read_section(path, path::get(&current.document, &keys), &default)
            .map_err(|errors| self.invalid(errors, &current.document))?;
        let slot = Arc::new(TypedSlot::new(path, default, initial));
        let handle = slot.handle();
        self.inner.sections.write().insert(path.to_owned(), slot);
        Ok(handle)
    }

    /// A handle on the section registered at `path` with type `T`.
    pub fn section<T>(&self, path: &str) -> Result<Section<T>, ConfigError>
    where
        T: DeserializeOwned + Validate + Send + Sync + 'static,
    {
        let sections = self.inner.sections.read();
        let slot = sections
            .get(path)
            .ok_or_else(|| ConfigError::NotRegistered {
                path: path.to_owned(),
            })?;
        slot.as_any()
            .downcast_ref::<TypedSlot<T>>()
            .map(TypedSlot::handle)
            .ok_or_else(|| ConfigError::TypeMismatch {
                path: path.to_owned(),
                registered: slot.type_name(),
                requested: std::any::type_name::<T>(),
            })
    }

    /// The paths of the registered sections, sorted.
    pub fn sections(&self) -> Vec<String> {
        self.inner.sections.read().keys().cloned().collect()
    }

    // ----- changing -----

    /// Replaces the whole document. The candidate must keep every registered
    /// section valid; then it becomes a new version and is announced. A document
    /// equal to the one in force changes nothing and returns the version in force.
    pub async fn apply(
        &self,
        document: Value,
        author: &str,
        reason: &str,
    ) -> Result<ConfigVersion, ConfigError> {
        let _one_at_a_time = self.inner.changes.lock().await;
        self.change(Ok(document), author, reason, None).await
    }

    /// Sets the value at a dotted path (creating missing tables on the way) and
    /// applies the result as [`ConfigStore::apply`] does.
    pub async fn set(
        &self,
        path: &str,
        value: Value,
        author: &str,
    ) -> Result<ConfigVersion, ConfigError> {
        let _one_at_a_time = self.inner.changes.lock().await;
        let candidate = path::keys(path).and_then(|keys| {
            let mut document = Value::clone(&self.inner.current.load().document);
            path::set(&mut document, &keys, value)
                .map(|()| document)
                .map_err(|reason| ConfigError::InvalidPath {
                    path: path.to_owned(),
                    reason,
                })
        });
        self.change(candidate, author, &format!("set {path}"), None)
            .await
    }

    /// Removes the value at a dotted path (a section there falls back to its
    /// default) and applies the result as [`ConfigStore::apply`] does.
    pub async fn remove(&self, path: &str, author: &str) -> Result<ConfigVersion, ConfigError> {
        let _one_at_a_time = self.inner.changes.lock().await;
        let candidate = path::keys(path).and_then(|keys| {
            let mut document = Value::clone(&self.inner.current.load().document);
            match path::remove(&mut document, &keys) {
                Some(_) => Ok(document),
                None => Err(ConfigError::InvalidPath {
                    path: path.to_owned(),
                    reason: "is not set".to_owned(),
                }),
            }
        });
        self.change(candidate, author, &format!("remove {path}"), None)
            .await
    }

    /// Makes the content of version `version` the configuration in force again,
    /// as a new version (validated like any change, since the sections' rules may
    /// have changed since). Announces [`ConfigChanged`] then [`ConfigRolledBack`].
    pub async fn rollback(&self, version: u64, author: &str) -> Result<ConfigVersion, ConfigError> {
        let _one_at_a_time = self.inner.changes.lock().await;
        let target = self.version(version).map(|v| v.document).ok_or_else(|| {
            let window = self.inner.window.lock();
            ConfigError::UnknownVersion {
                version,
                oldest: window.front().map_or(0, |v| v.version),
                newest: window.back().map_or(0, |v| v.version),
            }
        });
        let candidate = target.map(|document| Value::clone(&document));
        self.change(
            candidate,
            author,
            &format!("rollback to version {version}"),
            Some(version),
        )
        .await
    }

    /// Reads the TOML file at `file`, applies the environment overrides the store
    /// was built with, and applies the result as [`ConfigStore::apply`] does, by
    /// author `file:<path>`. A file that cannot be read or parsed is refused like
    /// an invalid change.
    pub async fn reload_file(&self, file: impl AsRef<Path>) -> Result<ConfigVersion, ConfigError> {
        let file = file.as_ref().to_owned();
        let author = format!("file:{}", file.display());
        let limit = self.inner.options.max_document_bytes;
        let reading = file.clone();
        let read = tokio::task::spawn_blocking(move || read_toml_file(&reading, limit))
            .await
            .unwrap_or_else(|join| {
                Err(ConfigError::Io {
                    path: file.clone(),
                    source: std::io::Error::other(join.to_string()),
                })
            })
            .and_then(|mut document| {
                self.inner.overrides.apply_to(&mut document)?;
                Ok(document)
            });
        let _one_at_a_time = self.inner.changes.lock().await;
        self.change(read, &author, &format!("reloaded {}", file.display()), None)
            .await
    }

    /// The one path of every change; the caller holds `changes`.
    async fn change(
        &self,
        candidate: Result<Value, ConfigError>,
        author: &str,
        reason: &str,
        rollback_of: Option<u64>,
    ) -> Result<ConfigVersion, ConfigError> {
        match self
            .try_change(candidate, author, reason, rollback_of)
            .await
        {
            Ok(version) => Ok(version),
            Err(error) => {
                tracing::warn!(%error, author, "configuration change refused");
                self.announce(ConfigEvent::Rejected(ConfigRejected {
                    field: error.field().map(str::to_owned),
                    reason: error.to_string(),
                    author: author.to_owned(),
                }))
                .await;
                Err(error)
            }
        }
    }

    async fn try_change(
        &self,
        candidate: Result<Value, ConfigError>,
        author: &str,
        reason: &str,
        rollback_of: Option<u64>,
    ) -> Result<ConfigVersion, ConfigError> {
        let options = &self.inner.options;
        for (what, text) in [("author", author), ("reason", reason)] {
            if text.len() > options.max_text_bytes {
                return Err(ConfigError::TooLarge {
                    what: what.to_owned(),
                    size: text.len(),
                    limit: options.max_text_bytes,
                    option: "max_text_bytes",
                });
            }
        }
        let candidate = candidate?;
        check_shape(&candidate, options)?;
        let current = self.inner.current.load_full();
        if rollback_of.is_none() && *current.document == candidate {
            return Ok(ConfigVersion::clone(&current));
        }
        let prepared = self.prepare(&current.document, &candidate)?;
        let version = new_version(
            current.version + 1,
            &current.document,
            candidate,
            author,
            reason,
            rollback_of,
        );
        // Recorded before it takes effect: a version in force is always in the history.
        self.inner
            .history
            .append(&version)
            .await
            .map_err(ConfigError::History)?;
        self.inner.current.store(Arc::new(version.clone()));
        for (slot, value) in prepared {
            slot.commit(value);
        }
        {
            let mut window = self.inner.window.lock();
            window.push_back(version.clone());
            while window.len() > options.max_history {
                window.pop_front();
            }
        }
        tracing::info!(
            version = version.version,
            author,
            reason,
            changed = ?version.changed,
            "configuration changed"
        );
        self.announce(ConfigEvent::Changed(ConfigChanged {
            version: version.version,
            author: version.author.clone(),
            reason: version.reason.clone(),
            paths: version.changed.clone(),
        }))
        .await;
        if let Some(to) = rollback_of {
            self.announce(ConfigEvent::RolledBack(ConfigRolledBack {
                to,
                version: version.version,
                author: version.author.clone(),
            }))
            .await;
        }
        Ok(version)
    }

    /// Reads and validates every section whose part of the document changes.
    fn prepare(&self, before: &Value, after: &Value) -> Result<Vec<Ready>, ConfigError> {
        let sections = self.inner.sections.read();
        let mut errors = FieldErrors::new();
        let mut prepared = Vec::new();
        for (path, slot) in sections.iter() {
            let keys: Vec<&str> = path.split('.').collect();
            let value = path::get(after, &keys);
            if path::get(before, &keys) == value {
                continue;
            }
            match slot.prepare(value) {
                Ok(value) => prepared.push((Arc::clone(slot), value)),
                Err(found) => {
                    errors.extend_under("", found);
                }
            }
        }
        if errors.is_empty() {
            Ok(prepared)
        } else {
            Err(self.invalid(errors, after))
        }
    }

    /// [`ConfigError::Invalid`], each reason naming the environment variable that
    /// set the value at fault, when one did.
    fn invalid(&self, mut errors: FieldErrors, document: &Value) -> ConfigError {
        for error in errors.iter_mut() {
            if let Some(var) = self.inner.overrides.origin_of(&error.field, document) {
                error.reason = format!("{} (set by environment variable {var})", error.reason);
            }
        }
        ConfigError::invalid(errors.into_vec())
    }

    async fn announce(&self, event: ConfigEvent) {
        // Nobody listening locally is fine.
        let _ = self.inner.events.send(event.clone());
        let Some(bus) = &self.inner.options.bus else {
            return;
        };
        let published = match event {
            ConfigEvent::Changed(e) => publish(bus, e).await,
            ConfigEvent::Rejected(e) => publish(bus, e).await,
            ConfigEvent::RolledBack(e) => publish(bus, e).await,
        };
        if let Err(error) = published {
            tracing::warn!(%error, "could not publish a configuration event on the bus");
        }
    }
}

async fn publish<E: Event>(bus: &plexus_bus::Bus, event: E) -> Result<(), plexus_bus::BusError> {
    bus.publish(Envelope::event(event)).await.map(|_| ())
}
