//! What a supervisor tells the world: exit reasons and the events it publishes.
//!
//! Every event goes to the receivers of [`crate::SupervisorHandle::events`] and, when
//! the supervisor has a bus, onto it under `plexus.supervisor.>` as a typed payload
//! (JSON when it leaves the process), one topic per kind of event.

use std::fmt;

use plexus_core::Topic;
use serde::{Deserialize, Serialize};

use crate::ChildKind;

/// Topic of [`SupervisorEvent::ChildStarted`].
pub const TOPIC_CHILD_STARTED: Topic = Topic::from_static("plexus.supervisor.child_started");
/// Topic of [`SupervisorEvent::ChildExited`].
pub const TOPIC_CHILD_EXITED: Topic = Topic::from_static("plexus.supervisor.child_exited");
/// Topic of [`SupervisorEvent::ChildStopped`].
pub const TOPIC_CHILD_STOPPED: Topic = Topic::from_static("plexus.supervisor.child_stopped");
/// Topic of [`SupervisorEvent::ChildRestarted`].
pub const TOPIC_CHILD_RESTARTED: Topic = Topic::from_static("plexus.supervisor.child_restarted");
/// Topic of [`SupervisorEvent::GaveUp`].
pub const TOPIC_GAVE_UP: Topic = Topic::from_static("plexus.supervisor.gave_up");
/// Topic of [`SupervisorEvent::Stopped`].
pub const TOPIC_STOPPED: Topic = Topic::from_static("plexus.supervisor.stopped");

/// Why a child stopped running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExitReason {
    /// It finished by itself with success: a task returned `Ok`, a process exited 0.
    Normal,
    /// The supervisor stopped it and it stopped in time.
    Shutdown,
    /// The supervisor killed it (brutal kill, or it outlived its shutdown timeout).
    Killed,
    /// A task returned `Err`.
    Error {
        /// The error it returned.
        message: String,
    },
    /// A task panicked.
    Panic {
        /// The panic message, when it was text.
        message: String,
    },
    /// A process exited with a non-zero status.
    Exited {
        /// The status.
        code: i32,
    },
    /// A process was ended by a signal.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Its name, such as `SIGKILL`.
        name: String,
    },
    /// Someone reported the child failed ([`crate::SupervisorHandle::report_failure`]).
    Failed {
        /// What they said.
        reason: String,
    },
    /// Starting it again failed.
    StartFailed {
        /// Why.
        error: String,
    },
    /// A nested supervisor gave up.
    GaveUp {
        /// The nested supervisor's child whose exit made it give up.
        child: String,
        /// That child's exit reason, as text.
        reason: String,
    },
}

impl ExitReason {
    /// Whether the exit counts as a failure. Only [`Normal`](Self::Normal) and
    /// [`Shutdown`](Self::Shutdown) do not, as in OTP (`normal`, `shutdown`).
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("exited normally"),
            ExitReason::Shutdown => f.write_str("shut down"),
            ExitReason::Killed => f.write_str("killed by the supervisor"),
            ExitReason::Error { message } => write!(f, "returned an error: {message}"),
            ExitReason::Panic { message } => write!(f, "panicked: {message}"),
            ExitReason::Exited { code } => write!(f, "exited with status {code}"),
            ExitReason::Signaled { signal, name } => {
                write!(f, "killed by signal {name} ({signal})")
            }
            ExitReason::Failed { reason } => write!(f, "reported failed: {reason}"),
            ExitReason::StartFailed { error } => write!(f, "failed to start: {error}"),
            ExitReason::GaveUp { child, reason } => {
                write!(f, "gave up after child `{child}` {reason}")
            }
        }
    }
}

/// Something that happened in a supervisor. Serialized with an `event` tag
/// (`{"event": "gave_up", "supervisor": "…", …}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SupervisorEvent {
    /// A child was started while the supervisor started.
    ChildStarted {
        /// The supervisor.
        supervisor: String,
        /// The child.
        child: String,
        /// Its kind.
        kind: ChildKind,
        /// Its process id, for a process.
        pid: Option<u32>,
    },
    /// A child exited by itself, was reported failed, or failed to start again.
    ChildExited {
        /// The supervisor.
        supervisor: String,
        /// The child.
        child: String,
        /// Why.
        reason: ExitReason,
        /// Whether the exit counts as a failure.
        abnormal: bool,
        /// Its process id, for a process.
        pid: Option<u32>,
    },
    /// The supervisor stopped a running child: for a sibling's restart, a manual
    /// restart, giving up, or its own shutdown.
    ChildStopped {
        /// The supervisor.
        supervisor: String,
        /// The child.
        child: String,
        /// How it ended.
        reason: ExitReason,
        /// Whether it had to be killed.
        killed: bool,
    },
    /// A child was started again.
    ChildRestarted {
        /// The supervisor.
        supervisor: String,
        /// The child.
        child: String,
        /// How many times it has been restarted so far, this one included.
        restarts: u32,
        /// Its new process id, for a process.
        pid: Option<u32>,
    },
    /// More restarts than the intensity allows: the supervisor stopped every child
    /// and terminated.
    GaveUp {
        /// The supervisor.
        supervisor: String,
        /// The child whose exit tipped it over.
        child: String,
        /// Restarts counted within the window, the refused one included.
        restarts: u32,
        /// The intensity: restarts allowed within the window.
        max_restarts: u32,
        /// The window, in milliseconds.
        window_ms: u64,
        /// Why that child exited.
        reason: ExitReason,
    },
    /// The supervisor shut down on request.
    Stopped {
        /// The supervisor.
        supervisor: String,
        /// The children that had to be killed.
        killed: Vec<String>,
    },
}

impl SupervisorEvent {
    /// The bus topic of this event.
    pub fn topic(&self) -> Topic {
        match self {
            SupervisorEvent::ChildStarted { .. } => TOPIC_CHILD_STARTED,
            SupervisorEvent::ChildExited { .. } => TOPIC_CHILD_EXITED,
            SupervisorEvent::ChildStopped { .. } => TOPIC_CHILD_STOPPED,
            SupervisorEvent::ChildRestarted { .. } => TOPIC_CHILD_RESTARTED,
            SupervisorEvent::GaveUp { .. } => TOPIC_GAVE_UP,
            SupervisorEvent::Stopped { .. } => TOPIC_STOPPED,
        }
    }

    /// The supervisor the event is about.
    pub fn supervisor(&self) -> &str {
        match self {
            SupervisorEvent::ChildStarted { supervisor, .. }
            | SupervisorEvent::ChildExited { supervisor, .. }
            | SupervisorEvent::ChildStopped { supervisor, .. }
            | SupervisorEvent::ChildRestarted { supervisor, .. }
            | SupervisorEvent::GaveUp { supervisor, .. }
            | SupervisorEvent::Stopped { supervisor, .. } => supervisor,
        }
    }

    /// The child the event is about, if it is about one.
    pub fn child(&self) -> Option<&str> {
        match self {
            SupervisorEvent::ChildStarted { child, .. }
            | SupervisorEvent::ChildExited { child, .. }
            | SupervisorEvent::ChildStopped { child, .. }
            | SupervisorEvent::ChildRestarted { child, .. }
            | SupervisorEvent::GaveUp { child, .. } => Some(child),
            SupervisorEvent::Stopped { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_and_shutdown_are_normal() {
        assert!(!ExitReason::Normal.is_abnormal());
        assert!(!ExitReason::Shutdown.is_abnormal());
        assert!(ExitReason::Killed.is_abnormal());
        assert!(ExitReason::Exited { code: 1 }.is_abnormal());
        assert!(ExitReason::Failed { reason: "x".into() }.is_abnormal());
    }

    #[test]
    fn events_serialize_with_tags() {
        let event = SupervisorEvent::GaveUp {
            supervisor: "root".into(),
            child: "worker".into(),
            restarts: 4,
            max_restarts: 3,
            window_ms: 10_000,
            reason: ExitReason::Exited { code: 1 },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "gave_up");
        assert_eq!(json["reason"]["kind"], "exited");
        assert_eq!(json["reason"]["code"], 1);
        let back: SupervisorEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(event.topic().as_str(), "plexus.supervisor.gave_up");
    }
}
