//! The errors of a validation run, by tier: the scenario file, the system under test,
//! the report.

use std::path::PathBuf;

/// Why a validation could not run (a failed assertion is not an error: it is in the
/// report).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The scenario file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The scenario is not valid TOML or does not fit the format.
    #[error("scenario {origin}: {path}: {reason}")]
    Scenario {
        /// The file or built-in name.
        origin: String,
        /// Where in the scenario (`loads[0].rate`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No built-in scenario of that name.
    #[error("no scenario file or built-in scenario called `{0}` (built-in: seed-001, seed-002)")]
    Unknown(String),
    /// The node, a service, a proxy or the generator could not start.
    #[error("cannot start {what}: {reason}")]
    Start {
        /// What failed.
        what: String,
        /// Why.
        reason: String,
    },
    /// Writing the report failed.
    #[error("cannot write the report to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ValidateError {
    /// A scenario error at `path`.
    pub(crate) fn scenario(origin: &str, path: impl Into<String>, reason: impl ToString) -> Self {
        Self::Scenario {
            origin: origin.to_owned(),
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// Something could not start.
    pub(crate) fn start(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Start {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Whether the scenario itself is at fault (a usage error: exit status 2).
    pub fn is_scenario(&self) -> bool {
        matches!(
            self,
            Self::Read { .. } | Self::Scenario { .. } | Self::Unknown(_)
        )
    }
}
