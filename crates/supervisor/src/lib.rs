//! OTP-style supervision for Plexus: in-process services, tasks, external child
//! processes and nested supervisors, restarted by strategy within a restart intensity.
//!
//! - **Children** ([`ChildSpec`]): an in-process [`plexus_core::Service`] (started
//!   with `start()`, stopped with `stop()`, "exits" when reported failed), a task (a
//!   future built per start; `Ok` is a normal exit, `Err` or a panic abnormal), an
//!   external process ([`ProcessSpec`]: command, args, env, working directory; exit 0
//!   is normal, anything else or a signal abnormal; its output is logged line by line
//!   under the `tracing` target [`OUTPUT_TARGET`] with the child's name), or a nested
//!   [`Supervisor`]. A process child can come from configuration
//!   ([`ProcessChildConfig`], serde).
//! - **Restart types** ([`Restart`]): permanent children are always restarted,
//!   transient ones only after an abnormal exit, temporary ones never.
//! - **Strategies** ([`Strategy`]): one-for-one restarts the child that exited;
//!   one-for-all stops the others in reverse start order and restarts all in order;
//!   rest-for-one does the same for the child and those started after it.
//! - **Intensity** ([`Intensity`]): more than `max_restarts` restarts within `within`
//!   and the supervisor gives up: it stops every child in reverse order, enters
//!   [`SupervisorState::Failed`], emits [`SupervisorEvent::GaveUp`] and, when nested,
//!   makes its parent see it exit abnormally (escalation).
//! - **Shutdown** ([`Shutdown`]): children stop in reverse start order, each asked
//!   first (a task's [`ChildContext::stopped`], `SIGTERM` to a process's group, a
//!   service's `stop()`) and killed once its timeout has passed; the
//!   [`ShutdownReport`] says which had to be killed.
//! - **Events** ([`SupervisorEvent`]) go to [`SupervisorHandle::events`] receivers and,
//!   with a bus, onto it under `plexus.supervisor.>` (see [`event`]'s topics).
//!
//! Time is read through `tokio::time`, so the intensity window and every timeout
//! follow paused test time. Every bound is a field of [`SupervisorConfig`].
//!
//! Differences from OTP, on purpose: a nested supervisor that gives up exits with
//! [`ExitReason::GaveUp`], which is abnormal, so a transient nested supervisor is
//! restarted (OTP's `shutdown` reason would not restart it); a temporary child that
//! exited stays listed (as stopped or failed) and can be started again with
//! [`SupervisorHandle::restart_child`].

pub mod event;

mod child;
mod config;
mod error;
mod handle;
mod intensity;
mod process;
mod spec;
mod supervisor;

pub use config::SupervisorConfig;
pub use error::{StartError, SupervisorError};
pub use event::{ExitReason, SupervisorEvent};
pub use handle::{
    ChildInfo, ChildState, ChildStop, ShutdownReport, SupervisorHandle, SupervisorState,
    Termination,
};
pub use intensity::Intensity;
pub use process::OUTPUT_TARGET;
pub use spec::{
    ChildContext, ChildKind, ChildSpec, MAX_NAME_LEN, ProcessChildConfig, ProcessSpec, Restart,
    Shutdown,
};
pub use supervisor::{Strategy, Supervisor, SupervisorBuilder};
