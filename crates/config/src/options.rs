//! The store's options: every bound it imposes, where events go, how the
//! environment is read.

use std::time::Duration;

use plexus_bus::Bus;

use crate::ConfigError;

/// How a [`crate::ConfigStore`] behaves. Every bound is here, with its default.
#[derive(Clone, Debug)]
pub struct ConfigOptions {
    /// How many versions the history keeps in memory, newest last (default 100,
    /// at least 1). Older versions can no longer be read or rolled back to.
    pub max_history: usize,
    /// The largest document, measured as compact JSON, and the largest
    /// configuration file, in bytes (default 1 MiB).
    pub max_document_bytes: usize,
    /// How deep tables and arrays may nest, the root table counting as one
    /// (default 32).
    pub max_depth: usize,
    /// The longest author or reason recorded with a version, in bytes (default 1024).
    pub max_text_bytes: usize,
    /// How long a watched file must be left alone after a change before it is read
    /// again (default 100 ms): an editor's several writes make one reload.
    pub watch_debounce: Duration,
    /// How many events the local event stream ([`crate::ConfigStore::events`])
    /// buffers for a slow listener before that listener starts missing the oldest
    /// (default 256).
    pub event_capacity: usize,
    /// The prefix of environment variables read as overrides (default `PLEXUS_`).
    pub env_prefix: String,
    /// Variables starting with one of these are not overrides (default
    /// `["PLEXUS_TEST_"]`).
    pub env_exclude: Vec<String>,
    /// The bus change events are published on, under `plexus.config.>`; `None`
    /// (the default) keeps them local.
    pub bus: Option<Bus>,
}

impl Default for ConfigOptions {
    fn default() -> Self {
        Self {
            max_history: 100,
            max_document_bytes: 1 << 20,
            max_depth: 32,
            max_text_bytes: 1024,
            watch_debounce: Duration::from_millis(100),
            event_capacity: 256,
            env_prefix: "PLEXUS_".to_owned(),
            env_exclude: vec!["PLEXUS_TEST_".to_owned()],
            bus: None,
        }
    }
}

impl ConfigOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes change events on `bus`.
    pub fn with_bus(mut self, bus: Bus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Keeps `versions` versions of history.
    pub fn with_max_history(mut self, versions: usize) -> Self {
        self.max_history = versions;
        self
    }

    /// Sets the file watcher's debounce.
    pub fn with_watch_debounce(mut self, debounce: Duration) -> Self {
        self.watch_debounce = debounce;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_history", self.max_history),
            ("max_document_bytes", self.max_document_bytes),
            ("max_depth", self.max_depth),
            ("max_text_bytes", self.max_text_bytes),
            ("event_capacity", self.event_capacity),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::Options {
                    field,
                    reason: "must be at least 1".to_owned(),
                });
            }
        }
        if self.env_prefix.is_empty() {
            return Err(ConfigError::Options {
                field: "env_prefix",
                reason: "must not be empty: every variable would become configuration".to_owned(),
            });
        }
        Ok(())
    }
}
