//! Runtime configuration for Plexus: typed, validated, versioned, hot-reloaded.
//!
//! - **One document.** The configuration is a tree of tables (TOML in, JSON out),
//!   read from a TOML file with `PLEXUS_*` environment overrides on top
//!   ([`source`] documents the mapping), addressed by dotted paths
//!   (`services.storage.breaker.failure_rate`) for `get`, `set` and `remove`.
//! - **Typed sections.** A part of the document is declared as a Rust type that
//!   deserializes and implements [`Validate`]
//!   ([`ConfigStore::register_section`]); its [`Section`] handle reads the value in
//!   force lock-free and lets a service wait for new values without a restart.
//! - **Validated before applied.** Every change (a new document, a `set`, a
//!   rollback, a file reload) is checked against every registered section whose
//!   part it touches. A bad change is refused with [`ConfigError::Invalid`], which
//!   names the full dotted path of the field and why; the version in force stays.
//! - **Versioned.** Each accepted change is a new version with its author, reason
//!   and changed paths; the newest [`ConfigOptions::max_history`] are kept and any
//!   of them can be rolled back to. A [`HistoryStore`] records versions so a
//!   persistent backend can outlive the process ([`MemoryHistory`] by default).
//! - **Announced.** `plexus.config.changed`, `plexus.config.rejected` and
//!   `plexus.config.rolled_back` go on the bus given in [`ConfigOptions::bus`]
//!   (typed in process, JSON across) and on the local stream
//!   [`ConfigStore::events`].
//! - **Watched.** [`ConfigStore::watch_file`] reloads the node's file when it
//!   changes.
//!
//! Every bound (history length, document size and depth, author and reason
//! length, watcher debounce, local event buffer) is a field of [`ConfigOptions`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use plexus_config::{ConfigError, ConfigOptions, ConfigStore, FieldErrors, Validate};
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! #[derive(Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct Breaker {
//!     failure_rate: f64,
//!     minimum_calls: u32,
//! }
//! impl Default for Breaker {
//!     fn default() -> Self {
//!         Self { failure_rate: 0.5, minimum_calls: 10 }
//!     }
//! }
//! impl Validate for Breaker {
//!     fn validate(&self) -> Result<(), FieldErrors> {
//!         let mut errors = FieldErrors::new();
//!         errors
//!             .range("failure_rate", self.failure_rate, 0.0..=1.0)
//!             .at_least("minimum_calls", self.minimum_calls, 1);
//!         errors.into_result()
//!     }
//! }
//!
//! let store = ConfigStore::builder()
//!     .toml("[services.storage.breaker]\nfailure_rate = 0.5\n")
//!     .build()
//!     .await?;
//! let mut breaker = store
//!     .register_section::<Breaker>("services.storage.breaker")
//!     .await?;
//!
//! // A valid change is version 2, and the section sees it at once.
//! store.set("services.storage.breaker.failure_rate", json!(0.8), "ops").await?;
//! assert_eq!(breaker.changed().await.unwrap().failure_rate, 0.8);
//!
//! // An invalid one is refused, naming the field; 0.8 stays in force.
//! let refused = store.set("services.storage.breaker.failure_rate", json!(1.5), "ops").await;
//! let Err(ConfigError::Invalid { field, reason, .. }) = refused else { panic!() };
//! assert_eq!(field, "services.storage.breaker.failure_rate");
//! assert_eq!(reason, "must be between 0 and 1, got 1.5");
//! assert_eq!(breaker.current().failure_rate, 0.8);
//!
//! // Rolling back to version 1 is version 3, with version 1's content.
//! let rolled_back = store.rollback(1, "ops").await?;
//! assert_eq!((rolled_back.version, rolled_back.rollback_of), (3, Some(1)));
//! assert_eq!(breaker.current().failure_rate, 0.5);
//! # Ok::<(), ConfigError>(())
//! # }).unwrap();
//! ```

mod error;
mod event;
mod history;
mod options;
mod path;
pub mod secrets;
mod section;
pub mod source;
mod store;
mod validate;
mod watch;

pub use error::{ConfigError, HistoryError};
pub use event::{ConfigChanged, ConfigEvent, ConfigRejected, ConfigRolledBack};
pub use history::{ConfigVersion, HistoryStore, MemoryHistory};
pub use options::ConfigOptions;
pub use path::merge;
pub use section::Section;
pub use source::{EnvOverride, EnvOverrides, parse_toml, parse_value};
pub use store::{ConfigStore, ConfigStoreBuilder, STARTUP_AUTHOR};
pub use validate::{FieldError, FieldErrors, Validate};
pub use watch::FileWatch;
