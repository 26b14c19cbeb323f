//! The handle to a running supervisor: what it reports and what it can be asked.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::{ChildKind, ExitReason, Restart, SupervisorError, SupervisorEvent};
use strum::{Display as StrumDisplay, IntoStaticStr};

/// Where a supervisor is in its life.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, StrumDisplay,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SupervisorState {
    /// Starting its children.
    Starting,
    /// Watching its children.
    Running,
    /// Stopping its children on request.
    #[strum(serialize = "shutting down")]
    ShuttingDown,
    /// Shut down on request.
    Stopped,
    /// Gave up: more restarts than its intensity allows.
    Failed,
}

impl SupervisorState {
    /// Whether the supervisor has terminated ([`Stopped`](Self::Stopped) or
    /// [`Failed`](Self::Failed)).
    pub fn is_terminal(self) -> bool {
        matches!(self, SupervisorState::Stopped | SupervisorState::Failed)
    }

    /// The state as lower-case text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where one child is in its life.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, StrumDisplay,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Being started.
    Starting,
    /// Running.
    Running,
    /// Exited or stopped, and about to be started again.
    Restarting,
    /// Not running and not to be restarted: it exited normally, or the supervisor
    /// stopped it.
    Stopped,
    /// Not running and not to be restarted after an abnormal exit (a temporary or
    /// transient child, or the child that made the supervisor give up).
    Failed,
}

impl ChildState {
    /// The state as lower-case text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A snapshot of one child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildInfo {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// Where it is.
    pub state: ChildState,
    /// How many times it has been started again since the supervisor started.
    pub restarts: u32,
    /// Its process id while it runs, for a process.
    pub pid: Option<u32>,
    /// Why it last stopped running, if it ever did.
    pub last_exit: Option<ExitReason>,
}

/// How one child was stopped during a shutdown or a give-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStop {
    /// The child.
    pub child: String,
    /// How it ended.
    pub reason: ExitReason,
    /// Whether it had to be killed.
    pub killed: bool,
}

/// What a supervisor's shutdown did: the running children it stopped, in the order
/// it stopped them (reverse start order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownReport {
    /// The supervisor.
    pub supervisor: String,
    /// Each child that was running, in stop order.
    pub stopped: Vec<ChildStop>,
}

impl ShutdownReport {
    /// The children that had to be killed.
    pub fn killed(&self) -> Vec<&str> {
        self.stopped
            .iter()
            .filter(|stop| stop.killed)
            .map(|stop| stop.child.as_str())
            .collect()
    }

    /// The names of the stopped children in stop order.
    pub fn order(&self) -> Vec<&str> {
        self.stopped
            .iter()
            .map(|stop| stop.child.as_str())
            .collect()
    }
}

/// How a supervisor ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Termination {
    /// It was shut down (on request, or because every handle to it was dropped).
    Shutdown(ShutdownReport),
    /// It gave up after too many restarts.
    GaveUp {
        /// The child whose exit tipped it over.
        child: String,
        /// Why that child exited.
        reason: ExitReason,
        /// Restarts counted within the window, the refused one included.
        restarts: u32,
        /// How the remaining children were stopped.
        report: ShutdownReport,
    },
}

impl Termination {
    /// How the children were stopped.
    pub fn report(&self) -> &ShutdownReport {
        match self {
            Termination::Shutdown(report) | Termination::GaveUp { report, .. } => report,
        }
    }
}

pub(crate) enum Command {
    ReportFailure {
        child: String,
        reason: String,
        reply: oneshot::Sender<Result<ChildInfo, SupervisorError>>,
    },
    RestartChild {
        child: String,
        reply: oneshot::Sender<Result<ChildInfo, SupervisorError>>,
    },
    Shutdown {
        reply: oneshot::Sender<ShutdownReport>,
    },
}

/// What the supervisor task and its handles share.
pub(crate) struct SharedState {
    pub(crate) name: Arc<str>,
    pub(crate) children: Mutex<Vec<ChildInfo>>,
    pub(crate) nested: Mutex<Vec<Option<SupervisorHandle>>>,
    pub(crate) state: watch::Sender<SupervisorState>,
    pub(crate) termination: Mutex<Option<Termination>>,
    pub(crate) events: broadcast::Sender<SupervisorEvent>,
    pub(crate) unpublished: AtomicU64,
}

impl SharedState {
    /// Waits until the supervisor has terminated and says how.
    pub(crate) async fn terminated(&self) -> Termination {
        let mut state = self.state.subscribe();
        // The sender lives in `self`, so this cannot fail while we wait.
        let _ = state.wait_for(|s| s.is_terminal()).await;
        match &*self.termination.lock() {
            Some(termination) => termination.clone(),
            None => Termination::Shutdown(ShutdownReport {
                supervisor: self.name.to_string(),
                stopped: Vec::new(),
            }),
        }
    }

    /// Records how the supervisor ended, then moves it to its final state.
    pub(crate) fn terminate(&self, termination: Termination) {
        let state = match termination {
            Termination::Shutdown(_) => SupervisorState::Stopped,
            Termination::GaveUp { .. } => SupervisorState::Failed,
        };
        *self.termination.lock() = Some(termination);
        self.state.send_replace(state);
    }
}

/// A running supervisor. Cheap to clone; when every handle (and the parent holding
/// it, for a nested supervisor) is dropped, the supervisor shuts down.
#[derive(Clone)]
pub struct SupervisorHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) shared: Arc<SharedState>,
}

impl fmt::Debug for SupervisorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorHandle")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl SupervisorHandle {
    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Where the supervisor is now.
    pub fn state(&self) -> SupervisorState {
        *self.shared.state.borrow()
    }

    /// Every child, in start order.
    pub fn children(&self) -> Vec<ChildInfo> {
        self.shared.children.lock().clone()
    }

    /// One child by name.
    pub fn child(&self, name: &str) -> Option<ChildInfo> {
        self.shared
            .children
            .lock()
            .iter()
            .find(|c| c.name == name)
            .cloned()
    }

    /// The handle of a nested supervisor child while it runs.
    pub fn nested(&self, name: &str) -> Option<SupervisorHandle> {
        let index = self
            .shared
            .children
            .lock()
            .iter()
            .position(|c| c.name == name)?;
        self.shared.nested.lock().get(index).cloned().flatten()
    }

    /// Receives every event from now on. A receiver that falls more than
    /// [`crate::SupervisorConfig::event_capacity`] events behind skips the oldest.
    pub fn events(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.shared.events.subscribe()
    }

    /// Events that could not be queued for the bus because its queue was full.
    pub fn unpublished_events(&self) -> u64 {
        self.shared.unpublished.load(Ordering::Relaxed)
    }

    /// Tells the supervisor that `child` has failed, as a health check's "restart"
    /// heal action does. The child is stopped under its shutdown policy and treated as
    /// having exited abnormally with [`ExitReason::Failed`]: its restart type, the
    /// strategy and the intensity decide what follows. Returns the child as it is
    /// once that is done.
    pub async fn report_failure(
        &self,
        child: &str,
        reason: impl Into<String>,
    ) -> Result<ChildInfo, SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.ask(
            Command::ReportFailure {
                child: child.to_owned(),
                reason: reason.into(),
                reply,
            },
            answer,
        )
        .await?
    }

    /// Stops `child` if it runs and starts it again, whatever its restart type and
    /// without applying the strategy or counting against the intensity (OTP's
    /// `terminate_child` then `restart_child`). Works on a child that is no longer
    /// running, too.
    pub async fn restart_child(&self, child: &str) -> Result<ChildInfo, SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.ask(
            Command::RestartChild {
                child: child.to_owned(),
                reply,
            },
            answer,
        )
        .await?
    }

    /// Shuts the supervisor down: stops the running children in reverse start order,
    /// each under its shutdown policy, and says how each went. On a supervisor that
    /// has already terminated, returns the report of how it did.
    pub async fn shutdown(&self) -> ShutdownReport {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
            && let Ok(report) = answer.await
        {
            return report;
        }
        self.terminated().await.report().clone()
    }

    /// Waits until the supervisor terminates (shut down or gave up) and says how.
    pub async fn terminated(&self) -> Termination {
        self.shared.terminated().await
    }

    async fn ask<T>(
        &self,
        command: Command,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, SupervisorError> {
        let gone = || SupervisorError::Terminated {
            supervisor: self.shared.name.to_string(),
            state: self.state(),
        };
        self.commands.send(command).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }
}
