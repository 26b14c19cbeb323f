//! The configuration's typed errors.

use std::path::PathBuf;

use crate::FieldError;

/// What a [`crate::HistoryStore`] may fail with: any error of the backend.
pub type HistoryError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything reading, validating, changing or watching the configuration can fail at.
///
/// A refused change leaves the configuration in force untouched.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A section refused the candidate: it does not deserialize or does not validate.
    #[error("invalid configuration: {}{}", first_error(.field, .reason), more(.errors))]
    Invalid {
        /// The dotted path of the first field in error
        /// (`services.storage.breaker.failure_rate`).
        field: String,
        /// Why that field is wrong.
        reason: String,
        /// Every field in error, the first included.
        errors: Vec<FieldError>,
    },
    /// TOML text does not parse.
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        /// Where the text came from: a file path, or `<string>`.
        origin: String,
        /// The line of the error, from 1.
        line: usize,
        /// The column of the error, from 1 (in characters).
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error of the operating system.
        #[source]
        source: std::io::Error,
    },
    /// An input is larger than its bound.
    #[error("{what} is {size} bytes; the limit is {limit} (ConfigOptions::{option})")]
    TooLarge {
        /// What was measured: `the configuration document`, `author`, a file path…
        what: String,
        /// Its size in bytes.
        size: usize,
        /// The bound.
        limit: usize,
        /// The option that sets the bound.
        option: &'static str,
    },
    /// The document nests deeper than [`crate::ConfigOptions::max_depth`].
    #[error(
        "the configuration nests deeper than {limit} levels at `{field}` (ConfigOptions::max_depth)"
    )]
    TooDeep {
        /// The first field found past the limit.
        field: String,
        /// The bound.
        limit: usize,
    },
    /// The root of a document is not a table.
    #[error("the configuration must be a table of keys, got {kind}")]
    NotATable {
        /// What it is instead (`array`, `string`, …).
        kind: &'static str,
    },
    /// A dotted path is malformed or leads through something that is not a table.
    #[error("path {path:?} {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment override could not be applied.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A version asked for is not in the history kept.
    #[error("no version {version} in the history kept (versions {oldest} to {newest})")]
    UnknownVersion {
        /// The version asked for.
        version: u64,
        /// The oldest version kept.
        oldest: u64,
        /// The newest version.
        newest: u64,
    },
    /// No section is registered at this path.
    #[error("no section is registered at {path:?}")]
    NotRegistered {
        /// The path asked for.
        path: String,
    },
    /// A section is registered at this path with another type.
    #[error("section {path:?} is registered as {registered}, not {requested}")]
    TypeMismatch {
        /// The section's path.
        path: String,
        /// The type it was registered with.
        registered: &'static str,
        /// The type asked for.
        requested: &'static str,
    },
    /// The history store could not record the change; the change was not made.
    #[error("the history store failed, so the change was not made: {0}")]
    History(#[source] HistoryError),
    /// A file could not be watched.
    #[error("cannot watch {}: {reason}", .path.display())]
    Watch {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An option is out of its allowed range.
    #[error("option `{field}` {reason}")]
    Options {
        /// The option's name.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

fn first_error(field: &str, reason: &str) -> String {
    FieldError::new(field, reason).to_string()
}

fn more(errors: &[FieldError]) -> String {
    match errors.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}

impl ConfigError {
    /// The dotted path of the field this error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } | ConfigError::TooDeep { field, .. } => Some(field),
            ConfigError::InvalidPath { path, .. } => Some(path),
            _ => None,
        }
    }

    /// A [`ConfigError::Invalid`] from a non-empty list of field errors.
    pub(crate) fn invalid(errors: Vec<FieldError>) -> Self {
        let (field, reason) = errors
            .first()
            .map(|e| (e.field.clone(), e.reason.clone()))
            .unwrap_or_default();
        ConfigError::Invalid {
            field,
            reason,
            errors,
        }
    }
}
