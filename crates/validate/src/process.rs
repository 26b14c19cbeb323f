//! Process services: external commands the harness starts beside the node (an
//! external service registering over `/ws`, say), signals for the `kill` and `stop`
//! faults, and the end of the run, when every one still running is killed and reaped.
//!
//! Each process leads a process group of its own, and the `kill` and `stop` faults
//! signal the whole group, so a wrapper (`sh -c`, `npm start`) and what it started
//! stop and die together. A process's output goes to `process-NAME.log` in the run's data folder; when it
//! does not register in time, the error quotes the end of that log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use plexus_app::Node;
use plexus_core::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::ValidateError;
use crate::scenario::ServiceSpec;

/// What the report says about one process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Its name (`process:NAME`).
    pub name: String,
    /// The command, as started (substituted).
    pub command: String,
    /// The service it registers.
    pub service: String,
    /// How many times it was started (1, plus one per restart).
    pub starts: u32,
    /// Its service's instances when the run ended, with their status and when each
    /// (last) registered, in scenario seconds (negative: before the clock started).
    pub instances: Vec<InstanceSeen>,
    /// How it had ended when the run did, if it ended on its own (not by a fault or
    /// the harness): a crash the report must show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited_on_its_own: Option<String>,
}

/// An instance of a process's service, as the registry had it at the end.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InstanceSeen {
    /// Its id.
    pub instance: String,
    /// Its status at the end (`healthy`, `unhealthy`, …).
    pub status: String,
    /// When it registered, in scenario seconds.
    pub registered_at_s: f64,
}

/// One process service: its command, and the child now running.
pub struct Process {
    name: String,
    service: String,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    ready_within: Duration,
    log: PathBuf,
    state: Mutex<State>,
}

struct State {
    child: Option<Child>,
    /// Killed by the harness (a `kill` fault): its exit is expected.
    killed: bool,
    starts: u32,
    spawned_at: Timestamp,
}

/// Replaces `${gateway_url}` and `${ws_url}`.
fn substitute(text: &str, addr: std::net::SocketAddr) -> String {
    text.replace("${gateway_url}", &format!("http://{addr}"))
        .replace("${ws_url}", &format!("ws://{addr}/ws"))
}

impl Process {
    /// The process of `spec` (a `kind = "process"` service) for the node at `addr`;
    /// its log goes into `dir`. `None` for other kinds.
    pub fn new(spec: &ServiceSpec, addr: std::net::SocketAddr, dir: &Path) -> Option<Self> {
        let ServiceSpec::Process {
            name,
            argv,
            env,
            ready_within_s,
            ..
        } = spec
        else {
            return None;
        };
        Some(Self {
            name: name.clone(),
            service: spec.service().to_owned(),
            argv: argv.iter().map(|a| substitute(a, addr)).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.clone(), substitute(v, addr)))
                .collect(),
            ready_within: Duration::from_secs_f64(*ready_within_s),
            log: dir.join(format!("process-{name}.log")),
            state: Mutex::new(State {
                child: None,
                killed: false,
                starts: 0,
                spawned_at: Timestamp::now(),
            }),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts it (again): output appended to its log, killed if the harness drops it.
    pub async fn spawn(&self) -> Result<(), ValidateError> {
        let what = || format!("process {}", self.name);
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ValidateError::start(what(), format!("{}: {e}", dir.display())))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| ValidateError::start(what(), format!("{}: {e}", self.log.display())))?;
        let err_log = log
            .try_clone()
            .map_err(|e| ValidateError::start(what(), e))?;
        let spawned_at = Timestamp::now();
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            // A group of its own: the signals reach whatever it starts, too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ValidateError::start(what(), format!("`{}`: {e}", self.argv[0])))?;
        let mut state = self.state.lock().await;
        state.spawned_at = spawned_at;
        state.child = Some(child);
        state.killed = false;
        state.starts += 1;
        Ok(())
    }

    /// Waits, at most its `ready_within_s`, until an instance of its service that
    /// registered since the last start is healthy in `app`: looked for again at
    /// every change of the registry, given up when the process exits first.
    pub async fn wait_registered(&self, node: &Node) -> Result<(), ValidateError> {
        let deadline = Instant::now() + self.ready_within;
        let since = self.state.lock().await.spawned_at;
        let registry = node.registry();
        // Watched before the first look, so no change between the two is missed.
        let mut changes = registry.watch();
        let fresh = || {
            registry.instances_named(&self.service).iter().any(|r| {
                r.status == plexus_core::ServiceStatus::Healthy && r.registered_at >= since
            })
        };
        while !fresh() {
            tokio::select! {
                // A change, or a watcher that fell behind: look again.
                change = changes.next() => if change.is_none() {
                    return Err(self.not_ready("the node's registry closed".to_owned()));
                },
                status = self.exit() => {
                    return Err(self.not_ready(format!("it exited ({status})")));
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(self.not_ready(format!(
                        "no healthy instance of `{}` registered within {:?}",
                        self.service, self.ready_within
                    )));
                }
            }
        }
        Ok(())
    }

    /// Waits until the process exits (never, when none runs): its status.
    async fn exit(&self) -> String {
        let mut state = self.state.lock().await;
        match state.child.as_mut() {
            // `Child::wait` is cancel-safe: a change of the registry may win.
            Some(child) => match child.wait().await {
                Ok(status) => status.to_string(),
                Err(error) => format!("waiting on it failed: {error}"),
            },
            None => std::future::pending().await,
        }
    }

    fn not_ready(&self, why: String) -> ValidateError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        ValidateError::start(
            format!("process {}", self.name),
            format!(
                "{why}; `{}`; the end of its output: {}",
                self.argv.join(" "),
                if tail.is_empty() {
                    "(none)".to_owned()
                } else {
                    tail.join(" / ")
                }
            ),
        )
    }

    /// Its exit status, if it has ended.
    async fn exited(&self) -> Option<String> {
        let mut state = self.state.lock().await;
        let child = state.child.as_mut()?;
        child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// SIGKILL to its process group, then reaps it.
    pub async fn kill(&self) {
        let mut state = self.state.lock().await;
        state.killed = true;
        self.signal(&state, Signal::SIGKILL);
        // One already ended (and reaped) has nothing left to wait for.
        if let Some(child) = state.child.as_mut()
            && let Err(error) = child.wait().await
        {
            tracing::warn!(%error, process = %self.name, "reaping failed");
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to its process group.
    pub async fn pause(&self, stop: bool) {
        let state = self.state.lock().await;
        let signal = if stop {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        self.signal(&state, signal);
    }

    /// Sends `signal` to the process group of the running child (none once it has
    /// been reaped: its id may belong to another process by then).
    fn signal(&self, state: &State, signal: Signal) {
        let Some(pid) = state.child.as_ref().and_then(Child::id) else {
            return;
        };
        let Ok(pid) = i32::try_from(pid) else {
            return;
        };
        if let Err(error) = killpg(Pid::from_raw(pid), signal) {
            tracing::warn!(%error, process = %self.name, ?signal, "signal failed");
        }
    }

    /// Ends the run for it: notes whether it had exited on its own and what the
    /// registry holds of its service (times from `t0`, the wall-clock start of the
    /// scenario), then kills (a stopped process is continued first so it can die)
    /// and reaps it.
    pub async fn finish(&self, node: &Node, t0: Timestamp) -> ProcessReport {
        let seconds = |at: Timestamp| {
            let (a, b) = (at.to_system_time(), t0.to_system_time());
            match a.duration_since(b) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            }
        };
        let instances = node
            .registry()
            .instances_named(&self.service)
            .iter()
            .map(|r| InstanceSeen {
                instance: r.descriptor.instance.to_string(),
                status: format!("{:?}", r.status).to_lowercase(),
                registered_at_s: seconds(r.registered_at),
            })
            .collect();
        let on_its_own = {
            let state = self.state.lock().await;
            !state.killed
        };
        let exited = self.exited().await;
        self.pause(false).await;
        self.kill().await;
        let state = self.state.lock().await;
        ProcessReport {
            name: self.name.clone(),
            command: self.argv.join(" "),
            service: self.service.clone(),
            starts: state.starts,
            instances,
            exited_on_its_own: exited.filter(|_| on_its_own),
        }
    }
}
