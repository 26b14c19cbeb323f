//! [`JobError`]: why a jobs operation did not happen, and how each reason reaches a
//! caller of the `jobs` service.

use plexus_core::ServiceError;
use serde_json::json;

/// Why a jobs operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Bad input, naming the field as a JSON pointer (`/target`, `/params/to`).
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No job with this id.
    #[error("no job {id}")]
    NotFound {
        /// The id asked for.
        id: i64,
    },
    /// The job is not in a state the operation applies to.
    #[error("job {id} is {state}: {reason}")]
    WrongState {
        /// The job.
        id: i64,
        /// Its state.
        state: String,
        /// What the operation needed.
        reason: String,
    },
    /// The database could not be reached (worth a retry).
    #[error("jobs unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The DataStore transaction a job was enqueued in failed (and rolled back).
    #[error("the transaction failed: {0}")]
    Store(#[from] plexus_store::StoreError),
    /// A job was to be enqueued inside a DataStore transaction, but the queue's
    /// backend keeps its jobs outside the store's database, so no commit could
    /// cover both.
    #[error(
        "the {backend} job backend cannot enqueue inside a DataStore transaction: \
         enqueue after the transaction commits, or keep the jobs in the store's \
         database (jobs.backend = \"sqlite\" or \"postgres\")"
    )]
    NotTransactional {
        /// The backend's name.
        backend: &'static str,
    },
    /// The caller lacks a scope the operation needs.
    #[error(transparent)]
    Forbidden(#[from] plexus_core::scope::Forbidden),
    /// `jobs.transaction` on a node that runs no DataStore the queue can reach.
    #[error(
        "this node runs no DataStore for jobs.transaction: enable the DataStore on it, \
         or call datastore.transaction and jobs.enqueue apart"
    )]
    NoDataStore,
    /// The database answered with an error, or kept something unreadable.
    #[error("jobs backend: {reason}")]
    Backend {
        /// What it said.
        reason: String,
    },
}

impl JobError {
    /// Bad input at `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The error a caller of the service sees.
    pub fn to_service_error(&self) -> ServiceError {
        match self {
            Self::Invalid { field, reason } => ServiceError::invalid_params(field, reason),
            Self::NotFound { id } => ServiceError::Failed {
                message: self.to_string(),
                data: Some(json!({"kind": "not_found", "id": id})),
                retryable: false,
            },
            Self::WrongState { id, state, .. } => ServiceError::Failed {
                message: self.to_string(),
                data: Some(json!({"kind": "wrong_state", "id": id, "state": state})),
                retryable: false,
            },
            Self::Unavailable { reason } => ServiceError::unavailable(reason),
            Self::Store(e) if e.is_retryable() => ServiceError::unavailable(e.to_string()),
            Self::Store(e) => ServiceError::Failed {
                message: self.to_string(),
                data: Some(json!({"kind": "store", "store_kind": e.root().kind()})),
                retryable: false,
            },
            Self::NotTransactional { backend } => ServiceError::Failed {
                message: self.to_string(),
                data: Some(json!({"kind": "not_transactional", "backend": backend})),
                retryable: false,
            },
            Self::Forbidden(forbidden) => ServiceError::Forbidden(forbidden.clone()),
            Self::NoDataStore => ServiceError::Failed {
                message: self.to_string(),
                data: Some(json!({"kind": "no_datastore"})),
                retryable: false,
            },
            Self::Backend { .. } => ServiceError::Internal {
                message: self.to_string(),
                data: None,
            },
        }
    }
}

impl From<JobError> for ServiceError {
    fn from(e: JobError) -> Self {
        e.to_service_error()
    }
}

impl From<sqlx::Error> for JobError {
    /// Sorted as the DataStore sorts driver errors: a connection that failed in
    /// any way (I/O, TLS or protocol during a connect, class 08 codes, shutdowns),
    /// a pool that timed out and a busy or locked database are `Unavailable`
    /// (the workers pause and try again); the rest is the backend's.
    fn from(e: sqlx::Error) -> Self {
        use plexus_store::StoreError;
        match StoreError::from_sqlx(e, std::time::Duration::ZERO) {
            StoreError::Unavailable { reason } | StoreError::Busy { reason } => {
                Self::Unavailable { reason }
            }
            StoreError::PoolTimeout { .. } => Self::Unavailable {
                reason: "no database connection free within jobs.acquire_timeout_ms".to_owned(),
            },
            StoreError::Backend { reason } => Self::Backend { reason },
            other => Self::Backend {
                reason: other.to_string(),
            },
        }
    }
}

impl From<plexus_redis::RedisError> for JobError {
    fn from(e: plexus_redis::RedisError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable {
                reason: e.to_string(),
            }
        } else {
            Self::Backend {
                reason: e.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_in_any_form_is_unavailable_and_the_rest_the_backends() {
        // What sqlx says when a proxy closes a new connection during its TLS
        // request: the workers must pause, not fail the job.
        let protocol = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        for lost in [
            protocol,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            sqlx::Error::PoolTimedOut,
        ] {
            let sorted = JobError::from(lost);
            assert!(matches!(sorted, JobError::Unavailable { .. }), "{sorted:?}");
        }
        assert!(matches!(
            JobError::from(sqlx::Error::RowNotFound),
            JobError::Backend { .. }
        ));
    }
}
