//! One run of one child: starting it, watching for its exit, and stopping it.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use plexus_bus::Bus;
use plexus_core::Service;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::handle::SharedState;
use crate::process::{self, Ask, Origin};
use crate::spec::Body;
use crate::{
    ChildContext, ChildSpec, ExitReason, Shutdown, StartError, SupervisorConfig, SupervisorHandle,
};

/// Completes with the child's exit reason; cloned to both the supervisor's watch
/// list and whoever stops the child.
pub(crate) type ExitFuture = Shared<BoxFuture<'static, ExitReason>>;

/// How to stop one run of a child.
pub(crate) enum Control {
    Task {
        stop: watch::Sender<bool>,
        abort: AbortHandle,
    },
    Process {
        ask: watch::Sender<Ask>,
    },
    Service(Arc<dyn Service>),
    Supervisor(SupervisorHandle),
}

/// One run of a child.
pub(crate) struct Incarnation {
    pub(crate) generation: u64,
    pub(crate) pid: Option<u32>,
    pub(crate) control: Control,
    /// `None` for services, which only exit when told they failed.
    pub(crate) exit: Option<ExitFuture>,
}

/// What a start needs from its supervisor.
pub(crate) struct StartContext<'a> {
    pub(crate) supervisor: &'a Arc<str>,
    pub(crate) config: &'a SupervisorConfig,
    pub(crate) bus: Option<&'a Bus>,
}

/// How a stop went.
pub(crate) struct Stopped {
    pub(crate) reason: ExitReason,
    pub(crate) killed: bool,
}

async fn bounded<F: Future>(limit: Option<Duration>, future: F) -> Result<F::Output, StartError> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, future)
            .await
            .map_err(|_| StartError::Timeout(limit)),
        None => Ok(future.await),
    }
}

/// Starts one run of `spec`.
pub(crate) async fn start(
    spec: &ChildSpec,
    generation: u64,
    cx: &StartContext<'_>,
) -> Result<Incarnation, StartError> {
    let (pid, control, exit) = match &spec.body {
        Body::Service(service) => start_service(Arc::clone(service), spec.start_timeout).await?,
        Body::ServiceFactory(factory) => start_service(factory(), spec.start_timeout).await?,
        Body::Task(factory) => {
            let (stop, stopping) = watch::channel(false);
            let ctx = ChildContext::new(Arc::clone(&spec.name), stopping);
            let task = tokio::spawn(factory(ctx));
            let abort = task.abort_handle();
            let exit = async move {
                match task.await {
                    Ok(Ok(())) => ExitReason::Normal,
                    Ok(Err(message)) => ExitReason::Error { message },
                    Err(err) if err.is_panic() => ExitReason::Panic {
                        message: panic_message(err.into_panic()),
                    },
                    Err(_) => ExitReason::Killed,
                }
            }
            .boxed()
            .shared();
            (None, Control::Task { stop, abort }, Some(exit))
        }
        Body::Process(process) => {
            let origin = Origin {
                supervisor: Arc::clone(cx.supervisor),
                child: Arc::clone(&spec.name),
            };
            let running = process::spawn(process, &origin, cx.config.max_line_bytes)?;
            (
                Some(running.pid),
                Control::Process { ask: running.ask },
                Some(running.exit),
            )
        }
        Body::Supervisor(supervisor) => {
            let handle = bounded(spec.start_timeout, supervisor.start_with(cx.bus.cloned()))
                .await?
                .map_err(|err| StartError::Supervisor(Box::new(err)))?;
            let state = Arc::clone(&handle.shared);
            let exit = async move { nested_exit(&state).await }.boxed().shared();
            (None, Control::Supervisor(handle), Some(exit))
        }
    };
    Ok(Incarnation {
        generation,
        pid,
        control,
        exit,
    })
}

async fn start_service(
    service: Arc<dyn Service>,
    limit: Option<Duration>,
) -> Result<(Option<u32>, Control, Option<ExitFuture>), StartError> {
    bounded(limit, service.start())
        .await?
        .map_err(StartError::Service)?;
    Ok((None, Control::Service(service), None))
}

async fn nested_exit(state: &SharedState) -> ExitReason {
    match state.terminated().await {
        crate::Termination::GaveUp { child, reason, .. } => ExitReason::GaveUp {
            child,
            reason: reason.to_string(),
        },
        crate::Termination::Shutdown(_) => ExitReason::Shutdown,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_owned(),
            Err(_) => "a panic with a non-text payload".to_owned(),
        },
    }
}

/// Stops one run under `policy`: ask, wait up to the timeout, then kill.
pub(crate) async fn stop(incarnation: Incarnation, policy: Shutdown) -> Stopped {
    let Incarnation { control, exit, .. } = incarnation;
    let limit = match policy {
        Shutdown::BrutalKill => Some(Duration::ZERO),
        Shutdown::Timeout(limit) => Some(limit),
        Shutdown::Infinity => None,
    };
    match control {
        Control::Service(service) => {
            if policy == Shutdown::BrutalKill {
                return Stopped {
                    reason: ExitReason::Killed,
                    killed: true,
                };
            }
            match bounded(limit, service.stop()).await {
                Ok(Ok(())) => Stopped {
                    reason: ExitReason::Shutdown,
                    killed: false,
                },
                Ok(Err(err)) => Stopped {
                    reason: ExitReason::Error {
                        message: format!("stop failed: {err}"),
                    },
                    killed: false,
                },
                Err(_) => Stopped {
                    reason: ExitReason::Killed,
                    killed: true,
                },
            }
        }
        Control::Supervisor(handle) => {
            handle.shutdown().await;
            Stopped {
                reason: ExitReason::Shutdown,
                killed: false,
            }
        }
        Control::Task { stop, abort } => {
            let Some(exit) = exit else {
                abort.abort();
                return Stopped {
                    reason: ExitReason::Killed,
                    killed: true,
                };
            };
            if policy != Shutdown::BrutalKill {
                stop.send_replace(true);
                if let Ok(reason) = bounded(limit, exit.clone()).await {
                    return Stopped {
                        reason: graceful(reason),
                        killed: false,
                    };
                }
            }
            abort.abort();
            let reason = exit.await;
            Stopped {
                killed: reason == ExitReason::Killed,
                reason,
            }
        }
        Control::Process { ask } => {
            let Some(exit) = exit else {
                ask.send_replace(Ask::Kill);
                return Stopped {
                    reason: ExitReason::Killed,
                    killed: true,
                };
            };
            if policy != Shutdown::BrutalKill {
                ask.send_replace(Ask::Terminate);
                if let Ok(reason) = bounded(limit, exit.clone()).await {
                    return Stopped {
                        reason: graceful(reason),
                        killed: false,
                    };
                }
            }
            ask.send_replace(Ask::Kill);
            let reason = exit.await;
            Stopped {
                reason,
                killed: true,
            }
        }
    }
}

/// A child that returns normally when asked to stop has shut down.
fn graceful(reason: ExitReason) -> ExitReason {
    match reason {
        ExitReason::Normal => ExitReason::Shutdown,
        other => other,
    }
}
