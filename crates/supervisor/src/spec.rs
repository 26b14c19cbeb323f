//! What a supervisor runs: child specifications, restart types and shutdown policies.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use plexus_core::Service;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{ExitReason, Supervisor, SupervisorError};

/// The longest supervisor or child name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// When a child that exited is started again (OTP's `restart` of a child spec).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted, whatever the reason it exited.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit ([`ExitReason::is_abnormal`]).
    Transient,
    /// Never restarted, not even when a sibling's failure makes the supervisor stop
    /// it under [`crate::Strategy::OneForAll`] or [`crate::Strategy::RestForOne`].
    Temporary,
}

impl Restart {
    /// Whether a child of this type is restarted after exiting for `reason`.
    pub fn restarts_after(self, reason: &ExitReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        }
    }
}

/// How a child is stopped (OTP's `shutdown` of a child spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Killed at once: a task is aborted, a process gets `SIGKILL`, a service's
    /// `stop()` is not called.
    BrutalKill,
    /// Asked to stop (a task's [`ChildContext::stopped`] fires, a process gets
    /// `SIGTERM`, a service's `stop()` is called) and killed if it has not stopped
    /// within the duration.
    Timeout(Duration),
    /// Asked to stop and waited for as long as it takes. The only policy for a
    /// nested supervisor, whose own children's timeouts bound its shutdown.
    Infinity,
}

impl Default for Shutdown {
    /// Five seconds, as in OTP.
    fn default() -> Self {
        Shutdown::Timeout(Duration::from_secs(5))
    }
}

/// What kind of thing a child is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// An in-process [`Service`].
    Service,
    /// A future built by a factory.
    Task,
    /// An external operating-system process.
    Process,
    /// A nested supervisor.
    Supervisor,
}

impl ChildKind {
    /// The kind as lower-case text.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::Service => "service",
            ChildKind::Task => "task",
            ChildKind::Process => "process",
            ChildKind::Supervisor => "supervisor",
        }
    }
}

impl fmt::Display for ChildKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An external command to run as a child, as it can be written in configuration:
///
/// ```
/// # use plexus_supervisor::ProcessSpec;
/// let spec: ProcessSpec = serde_json::from_str(
///     r#"{"command": "/bin/sh", "args": ["-c", "echo hi"], "env": {"LANG": "C"}, "cwd": "/tmp"}"#,
/// ).unwrap();
/// assert_eq!(spec, ProcessSpec::new("/bin/sh").arg("-c").arg("echo hi").env("LANG", "C").cwd("/tmp"));
/// ```
///
/// The process gets a null stdin and its own process group; its stdout and stderr are
/// logged line by line. Stopping it sends `SIGTERM` to the group, then `SIGKILL`; when
/// the process exits, whatever is left of its group is killed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// The program: a path, or a name looked up in `PATH`.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables added to (or replacing those of) the supervisor's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory; the supervisor's own when unset.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

impl ProcessSpec {
    /// Runs `command` with no arguments.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            ..Self::default()
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
}

/// A process child as written in configuration: its name, restart type, shutdown
/// timeout and command. Turned into a [`ChildSpec`] with `ChildSpec::from`.
///
/// ```
/// # use plexus_supervisor::{ChildKind, ChildSpec, ProcessChildConfig, Restart, Shutdown};
/// # use std::time::Duration;
/// let config: ProcessChildConfig = toml::from_str(r#"
///     name = "indexer"
///     restart = "transient"
///     shutdown_timeout_ms = 2000
///     process = { command = "/usr/bin/indexer", args = ["--watch", "/srv"] }
/// "#).unwrap();
/// let spec = ChildSpec::from(config);
/// assert_eq!((spec.name(), spec.kind(), spec.restart_type()), ("indexer", ChildKind::Process, Restart::Transient));
/// assert_eq!(spec.shutdown_policy(), Shutdown::Timeout(Duration::from_secs(2)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessChildConfig {
    /// The child's name, unique within its supervisor.
    pub name: String,
    /// When it is restarted; permanent when unset.
    #[serde(default)]
    pub restart: Restart,
    /// How long it has to exit after `SIGTERM` before it gets `SIGKILL`, in
    /// milliseconds; five seconds when unset, `SIGKILL` at once when 0.
    #[serde(default)]
    pub shutdown_timeout_ms: Option<u64>,
    /// What to run.
    pub process: ProcessSpec,
}

impl From<ProcessChildConfig> for ChildSpec {
    fn from(config: ProcessChildConfig) -> Self {
        let spec = ChildSpec::process(config.name, config.process).restart(config.restart);
        match config.shutdown_timeout_ms {
            Some(0) => spec.shutdown(Shutdown::BrutalKill),
            Some(ms) => spec.shutdown_timeout(Duration::from_millis(ms)),
            None => spec,
        }
    }
}

/// What a task child is given: its name, and a way to learn that it should stop.
#[derive(Clone, Debug)]
pub struct ChildContext {
    name: Arc<str>,
    stop: watch::Receiver<bool>,
}

impl ChildContext {
    pub(crate) fn new(name: Arc<str>, stop: watch::Receiver<bool>) -> Self {
        Self { name, stop }
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the supervisor has asked the task to stop.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Completes when the supervisor asks the task to stop. A task that does not
    /// return soon after is aborted once its [`Shutdown`] timeout has passed.
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        // An error means the supervisor is gone: stop as well.
        let _ = stop.wait_for(|stopping| *stopping).await;
    }
}

pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
pub(crate) type TaskFactory = Arc<dyn Fn(ChildContext) -> TaskFuture + Send + Sync>;
pub(crate) type ServiceFactory = Arc<dyn Fn() -> Arc<dyn Service> + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Body {
    Service(Arc<dyn Service>),
    ServiceFactory(ServiceFactory),
    Task(TaskFactory),
    Process(ProcessSpec),
    Supervisor(Supervisor),
}

/// One child of a supervisor: what it is, when it is restarted and how it is stopped.
///
/// Built with one of the constructors, then adjusted:
///
/// ```
/// # use std::time::Duration;
/// # use plexus_supervisor::{ChildSpec, ProcessSpec, Restart};
/// let worker = ChildSpec::process("worker", ProcessSpec::new("/bin/sleep").arg("60"))
///     .restart(Restart::Transient)
///     .shutdown_timeout(Duration::from_secs(2));
/// assert_eq!(worker.name(), "worker");
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) name: Arc<str>,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) body: Body,
}

impl ChildSpec {
    fn with_body(name: impl Into<String>, body: Body) -> Self {
        let shutdown = match body {
            Body::Supervisor(_) => Shutdown::Infinity,
            _ => Shutdown::default(),
        };
        Self {
            name: Arc::from(name.into()),
            restart: Restart::default(),
            shutdown,
            start_timeout: None,
            body,
        }
    }

    /// An in-process service, the same instance on every restart. It is started with
    /// `start()` and stopped with `stop()`; it "exits" when someone reports it failed
    /// ([`crate::SupervisorHandle::report_failure`]) or when `start()` fails on a
    /// restart.
    pub fn service(name: impl Into<String>, service: Arc<dyn Service>) -> Self {
        Self::with_body(name, Body::Service(service))
    }

    /// An in-process service built afresh by `factory` for every start.
    pub fn service_factory<F>(name: impl Into<String>, factory: F) -> Self
    where
        F: Fn() -> Arc<dyn Service> + Send + Sync + 'static,
    {
        Self::with_body(name, Body::ServiceFactory(Arc::new(factory)))
    }

    /// A task: `factory` builds the future to run on every start. Its return is its
    /// exit: `Ok(())` is normal, `Err` or a panic abnormal. It should return soon
    /// after [`ChildContext::stopped`] fires.
    pub fn task<F, Fut>(name: impl Into<String>, factory: F) -> Self
    where
        F: Fn(ChildContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let factory: TaskFactory = Arc::new(move |ctx| Box::pin(factory(ctx)));
        Self::with_body(name, Body::Task(factory))
    }

    /// An external process. Exit status 0 is a normal exit; any other status, or
    /// death by a signal, is abnormal.
    pub fn process(name: impl Into<String>, spec: ProcessSpec) -> Self {
        Self::with_body(name, Body::Process(spec))
    }

    /// A nested supervisor, named after it. When it gives up, this supervisor sees
    /// the child exit abnormally ([`ExitReason::GaveUp`]) and applies its own
    /// strategy and intensity. Its shutdown policy is always [`Shutdown::Infinity`].
    pub fn supervisor(supervisor: Supervisor) -> Self {
        let name = supervisor.name().to_owned();
        Self::with_body(name, Body::Supervisor(supervisor))
    }

    /// Sets when the child is restarted (default [`Restart::Permanent`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped (default five seconds, then kill). Ignored for a
    /// nested supervisor.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        if !matches!(self.body, Body::Supervisor(_)) {
            self.shutdown = shutdown;
        }
        self
    }

    /// Shorthand for `shutdown(Shutdown::Timeout(timeout))`.
    pub fn shutdown_timeout(self, timeout: Duration) -> Self {
        self.shutdown(Shutdown::Timeout(timeout))
    }

    /// Bounds how long a start may take (a service's `start()`, a nested supervisor's
    /// start); unbounded by default. A start that takes longer fails with
    /// [`crate::StartError::Timeout`] and is dropped where it stood: a service is not
    /// stopped, and a nested supervisor cut off mid-start leaves its tasks told to stop
    /// and its processes killed, but any service it had started running.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = Some(timeout);
        self
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What kind of child this is.
    pub fn kind(&self) -> ChildKind {
        match self.body {
            Body::Service(_) | Body::ServiceFactory(_) => ChildKind::Service,
            Body::Task(_) => ChildKind::Task,
            Body::Process(_) => ChildKind::Process,
            Body::Supervisor(_) => ChildKind::Supervisor,
        }
    }

    /// Its restart type.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// Its shutdown policy.
    pub fn shutdown_policy(&self) -> Shutdown {
        self.shutdown
    }

    pub(crate) fn validate(&self, supervisor: &str) -> Result<(), SupervisorError> {
        validate_name(&self.name)?;
        let invalid = |reason: String| SupervisorError::InvalidChild {
            supervisor: supervisor.to_owned(),
            child: self.name.to_string(),
            reason,
        };
        if let Body::Process(spec) = &self.body {
            if spec.command.trim().is_empty() {
                return Err(invalid("the process command is empty".to_owned()));
            }
            let nul = |s: &str| s.contains('\0');
            if nul(&spec.command)
                || spec.args.iter().any(|a| nul(a))
                || spec.env.iter().any(|(k, v)| nul(k) || nul(v))
            {
                return Err(invalid(
                    "the command, an argument or an environment entry holds a NUL byte".to_owned(),
                ));
            }
            if spec.env.keys().any(|k| k.is_empty() || k.contains('=')) {
                return Err(invalid(
                    "an environment variable name is empty or holds `=`".to_owned(),
                ));
            }
        }
        if let Some(Duration::ZERO) = self.start_timeout {
            return Err(invalid("the start timeout is zero".to_owned()));
        }
        Ok(())
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("start_timeout", &self.start_timeout)
            .finish_non_exhaustive()
    }
}

/// Checks a supervisor or child name: 1 to [`MAX_NAME_LEN`] bytes, no control
/// characters.
pub(crate) fn validate_name(name: &str) -> Result<(), SupervisorError> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_NAME_LEN {
        "is longer than 128 bytes"
    } else if name.chars().any(char::is_control) {
        "holds a control character"
    } else {
        return Ok(());
    };
    Err(SupervisorError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}
