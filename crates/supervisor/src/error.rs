//! Why a supervisor could not be built, started or asked to do something.

use std::time::Duration;

use plexus_core::ServiceError;

use crate::{ChildState, SupervisorState};

/// Why a supervisor refused a definition, a start or a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// A supervisor or child name is unusable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two children of one supervisor have the same name.
    #[error(
        "supervisor `{supervisor}` has two children named `{child}`; child names must be unique"
    )]
    DuplicateChild {
        /// The supervisor.
        supervisor: String,
        /// The repeated name.
        child: String,
    },
    /// A child specification cannot work.
    #[error("child `{child}` of supervisor `{supervisor}`: {reason}")]
    InvalidChild {
        /// The supervisor.
        supervisor: String,
        /// The child.
        child: String,
        /// What is wrong.
        reason: String,
    },
    /// A configuration field is out of range.
    #[error("supervisor `{supervisor}`: `{field}` {reason}")]
    InvalidConfig {
        /// The supervisor.
        supervisor: String,
        /// The field, as named in [`crate::SupervisorConfig`] or the builder.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A child failed to start while the supervisor was starting; the children
    /// started before it were stopped again, in reverse order.
    #[error("supervisor `{supervisor}` could not start child `{child}`: {source}")]
    StartFailed {
        /// The supervisor.
        supervisor: String,
        /// The child that did not start.
        child: String,
        /// Why.
        #[source]
        source: StartError,
    },
    /// No child has this name.
    #[error("supervisor `{supervisor}` has no child named `{child}`")]
    NoSuchChild {
        /// The supervisor.
        supervisor: String,
        /// The name asked for.
        child: String,
    },
    /// The child is not running, so it cannot be reported as failed.
    #[error("child `{child}` of supervisor `{supervisor}` is not running (it is {state})")]
    ChildNotRunning {
        /// The supervisor.
        supervisor: String,
        /// The child.
        child: String,
        /// What it is doing instead.
        state: ChildState,
    },
    /// The supervisor has terminated (shut down or gave up) and takes no more commands.
    #[error("supervisor `{supervisor}` is {state} and takes no more commands")]
    Terminated {
        /// The supervisor.
        supervisor: String,
        /// Its final state.
        state: SupervisorState,
    },
}

/// Why one child could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// An in-process service's `start()` returned an error.
    #[error("service start failed: {0}")]
    Service(#[source] ServiceError),
    /// The start did not finish within the child's start timeout.
    #[error("start did not finish within {0:?}")]
    Timeout(Duration),
    /// An external process could not be spawned.
    #[error("could not spawn `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A nested supervisor could not start.
    #[error("nested supervisor did not start: {0}")]
    Supervisor(#[source] Box<SupervisorError>),
}
