//! The store's typed errors, and how a driver error becomes one.
//!
//! Every bad input names what is wrong ([`StoreError::InvalidFilter`] carries the
//! JSON pointer inside the filter); every database failure is sorted into a kind the
//! caller can act on: [`StoreError::Unavailable`] (connection lost or refused),
//! [`StoreError::PoolTimeout`], [`StoreError::Busy`] (a transient lock or
//! serialization conflict) or [`StoreError::Backend`]. [`StoreError::kind`] is the
//! stable label used in metrics and in the data of service errors.

use std::time::Duration;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No document has this id.
    #[error("document `{id}` not found in collection `{collection}`")]
    NotFound {
        /// The collection.
        collection: String,
        /// The id asked for.
        id: String,
    },
    /// The document's version is not the one the caller expected.
    #[error(
        "version conflict on `{collection}/{id}`: expected version {expected}, found {actual} (0 means absent)"
    )]
    VersionConflict {
        /// The collection.
        collection: String,
        /// The document id.
        id: String,
        /// The version the caller named (0: must not exist).
        expected: u64,
        /// The version stored (0: no such document).
        actual: u64,
    },
    /// A fenced write carried a lock's token lower than one the store has already
    /// accepted for that lock: its holder lost the lock (its lease expired and
    /// another holder wrote since). Nothing of the write was kept.
    #[error(
        "write fenced off: token {token} of lock `{lock}` is lower than {highest}, already accepted"
    )]
    Fenced {
        /// The lock.
        lock: String,
        /// The write's token.
        token: u64,
        /// The highest token accepted for the lock.
        highest: u64,
    },
    /// An insert found a document with the same id.
    #[error("document `{id}` already exists in collection `{collection}`")]
    AlreadyExists {
        /// The collection.
        collection: String,
        /// The id.
        id: String,
    },
    /// A collection of this name exists with a different spec.
    #[error("collection `{name}` already exists with different indexes")]
    CollectionExists {
        /// The collection.
        name: String,
    },
    /// A write would give two documents the same key in a unique index.
    #[error("unique index `{index}` of collection `{collection}` already holds this key")]
    UniqueViolation {
        /// The collection.
        collection: String,
        /// The index, as declared (empty when the database did not say which).
        index: String,
    },
    /// No collection has this name.
    #[error("unknown collection `{name}`")]
    UnknownCollection {
        /// The name asked for.
        name: String,
    },
    /// The document is not acceptable.
    #[error("invalid document: {reason}")]
    InvalidDocument {
        /// What is wrong with it.
        reason: String,
    },
    /// The document's JSON text is over the configured limit.
    #[error("document is {size} bytes, over the limit of {limit}")]
    DocumentTooLarge {
        /// Its size in bytes.
        size: usize,
        /// `max_document_bytes`.
        limit: usize,
    },
    /// The filter is malformed.
    #[error("invalid filter at `{path}`: {reason}")]
    InvalidFilter {
        /// Where in the filter, as a JSON pointer (`/and/1/gte`); empty for the whole.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Another argument (id, collection or index name, sort, projection, limit,
    /// cursor, transaction) is not acceptable.
    #[error("invalid `{field}`: {reason}")]
    InvalidArgument {
        /// The argument, such as `sort[0].field` or `cursor`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The configuration is not acceptable.
    #[error("invalid store configuration `{field}`: {reason}")]
    Config {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// No pooled connection became free within `acquire_timeout_ms`.
    #[error("no database connection free after {waited:?}")]
    PoolTimeout {
        /// How long the statement waited.
        waited: Duration,
    },
    /// The database cannot be reached or the connection was lost.
    #[error("database unavailable: {reason}")]
    Unavailable {
        /// What the driver said.
        reason: String,
    },
    /// A transient conflict: the database is locked, a deadlock was broken or a
    /// serializable transaction failed. Trying again may succeed.
    #[error("database busy: {reason}")]
    Busy {
        /// What the driver said.
        reason: String,
    },
    /// Operation `index` of a transaction failed; nothing of the transaction was kept.
    #[error("transaction rolled back: operation {index} failed: {source}")]
    Transaction {
        /// The failing operation's position, from 0.
        index: usize,
        /// Why it failed.
        #[source]
        source: Box<StoreError>,
    },
    /// Any other database failure.
    #[error("database error: {reason}")]
    Backend {
        /// What the driver said.
        reason: String,
    },
}

impl StoreError {
    /// A stable snake_case label for metrics and service error data.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::VersionConflict { .. } => "version_conflict",
            Self::Fenced { .. } => "fenced",
            Self::AlreadyExists { .. } => "already_exists",
            Self::CollectionExists { .. } => "collection_exists",
            Self::UniqueViolation { .. } => "unique_violation",
            Self::UnknownCollection { .. } => "unknown_collection",
            Self::InvalidDocument { .. } => "invalid_document",
            Self::DocumentTooLarge { .. } => "document_too_large",
            Self::InvalidFilter { .. } => "invalid_filter",
            Self::InvalidArgument { .. } => "invalid_argument",
            Self::Config { .. } => "config",
            Self::PoolTimeout { .. } => "pool_timeout",
            Self::Unavailable { .. } => "unavailable",
            Self::Busy { .. } => "busy",
            Self::Transaction { .. } => "transaction",
            Self::Backend { .. } => "backend",
        }
    }

    /// Whether the same call may succeed if tried again unchanged.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::PoolTimeout { .. } | Self::Unavailable { .. } | Self::Busy { .. } => true,
            Self::Transaction { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    /// The error at the root: for a failed transaction, the failing operation's error.
    pub fn root(&self) -> &StoreError {
        match self {
            Self::Transaction { source, .. } => source.root(),
            other => other,
        }
    }

    /// A bad argument: `field` names it as the caller wrote it (`sort[0].field`).
    pub fn invalid_argument(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_document(reason: impl Into<String>) -> Self {
        Self::InvalidDocument {
            reason: reason.into(),
        }
    }

    /// Sorts a driver error into a kind. `waited` is how long the statement had
    /// waited for a connection, reported when the pool timed out.
    pub fn from_sqlx(err: sqlx::Error, waited: Duration) -> Self {
        match err {
            sqlx::Error::PoolTimedOut => Self::PoolTimeout { waited },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable {
                reason: err.to_string(),
            },
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let reason = format!("{} (code {code})", db.message());
                if is_busy_code(&code) {
                    Self::Busy { reason }
                } else if is_connection_code(&code) {
                    Self::Unavailable { reason }
                } else {
                    Self::Backend { reason }
                }
            }
            other => Self::Backend {
                reason: other.to_string(),
            },
        }
    }
}

/// Sorts an error met while opening the pool: a timeout there means the server
/// never answered, so it is [`StoreError::Unavailable`].
pub(crate) fn connect_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut => StoreError::Unavailable {
            reason: "no connection could be opened within connect_timeout_ms".to_owned(),
        },
        sqlx::Error::Configuration(e) => StoreError::Config {
            field: "url".to_owned(),
            reason: e.to_string(),
        },
        other => match StoreError::from_sqlx(other, Duration::ZERO) {
            StoreError::Backend { reason } => StoreError::Unavailable { reason },
            sorted => sorted,
        },
    }
}

/// SQLite BUSY/LOCKED (primary codes 5 and 6, with their extended codes) and
/// PostgreSQL serialization failure, deadlock and lock-not-available.
fn is_busy_code(code: &str) -> bool {
    // PostgreSQL SQLSTATEs are five characters; SQLite codes are shorter numbers.
    if code.len() == 5 {
        return matches!(code, "40001" | "40P01" | "55P03");
    }
    code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// PostgreSQL connection exceptions (class 08), shutdowns and too many connections;
/// SQLite's file gone: I/O errors (primary code 10), cannot open (14), and a write to
/// a file moved or unlinked since it was opened (READONLY_DBMOVED, 1032).
fn is_connection_code(code: &str) -> bool {
    if code.len() == 5 {
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 10 | 14) || n == 1032)
}

/// Whether a driver error is a unique-constraint violation, and its text (the
/// constraint name when the driver gives one, else the message) to find the index by.
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => Some(
            db.constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned()),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_connection_codes_are_sorted() {
        assert!(is_busy_code("5"));
        assert!(is_busy_code("517"));
        assert!(is_busy_code("40001"));
        assert!(!is_busy_code("2067"));
        assert!(is_connection_code("08006"));
        assert!(!is_connection_code("23505"));
        assert!(is_connection_code("14"));
        assert!(is_connection_code("1032"));
        assert!(is_connection_code("266"));
        assert!(!is_connection_code("2067"));
        let e = StoreError::from_sqlx(sqlx::Error::PoolTimedOut, Duration::from_millis(7));
        assert!(matches!(e, StoreError::PoolTimeout { waited } if waited.as_millis() == 7));
        assert!(e.is_retryable());
    }
}
