//! The supervisor: its definition, its start, and the task that watches its children.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use plexus_bus::Bus;
use plexus_core::{Envelope, Payload};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::child::{self, Control, Incarnation, StartContext};
use crate::handle::{Command, SharedState};
use crate::intensity::RestartWindow;
use crate::spec::validate_name;
use crate::{
    ChildInfo, ChildSpec, ChildState, ChildStop, ExitReason, Intensity, Restart, ShutdownReport,
    StartError, SupervisorConfig, SupervisorError, SupervisorEvent, SupervisorHandle,
    SupervisorState, Termination,
};

/// Which children are restarted when one of them exits and is to be restarted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Only that child.
    #[default]
    OneForOne,
    /// Every child: the others are stopped in reverse start order, then all are
    /// started again in start order (temporary ones are not).
    OneForAll,
    /// That child and every child started after it: those are stopped in reverse
    /// order, then started again in order (temporary ones are not).
    RestForOne,
}

/// The definition of a supervisor: its children, strategy, intensity and bounds.
///
/// A definition can be started any number of times ([`start`](Self::start)); each
/// start runs a fresh set of children with a fresh restart history, which is how a
/// parent restarts a nested supervisor.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use plexus_supervisor::{ChildSpec, Strategy, Supervisor, SupervisorState};
///
/// let supervisor = Supervisor::builder("app")
///     .strategy(Strategy::OneForOne)
///     .intensity(3, Duration::from_secs(10))
///     .child(ChildSpec::task("ticker", |ctx| async move {
///         ctx.stopped().await;
///         Ok(())
///     }))
///     .build()?;
/// let handle = supervisor.start().await?;
/// assert_eq!(handle.state(), SupervisorState::Running);
/// let report = handle.shutdown().await;
/// assert_eq!(report.order(), ["ticker"]);
/// # Ok::<(), plexus_supervisor::SupervisorError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Supervisor {
    def: Arc<Definition>,
}

struct Definition {
    name: Arc<str>,
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<ChildSpec>,
    bus: Option<Bus>,
    config: SupervisorConfig,
    events: broadcast::Sender<SupervisorEvent>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.def.name)
            .field("strategy", &self.def.strategy)
            .field("intensity", &self.def.intensity)
            .field("children", &self.def.children)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Supervisor`].
#[derive(Debug)]
pub struct SupervisorBuilder {
    name: String,
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<ChildSpec>,
    bus: Option<Bus>,
    config: SupervisorConfig,
}

impl SupervisorBuilder {
    /// Sets the restart strategy (default [`Strategy::OneForOne`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Allows at most `max_restarts` restarts within any `within` window; one more
    /// and the supervisor gives up. Default: one restart in five seconds, as in OTP.
    pub fn intensity(mut self, max_restarts: u32, within: std::time::Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            within,
        };
        self
    }

    /// Adds a child; children start in the order they are added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Adds children in order.
    pub fn children(mut self, children: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.children.extend(children);
        self
    }

    /// Publishes events on `bus` under `plexus.supervisor.>`. A nested supervisor
    /// without a bus of its own uses its parent's.
    pub fn bus(mut self, bus: Bus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Sets the bounds ([`SupervisorConfig`]).
    pub fn config(mut self, config: SupervisorConfig) -> Self {
        self.config = config;
        self
    }

    /// Checks the definition: names, unique child names, commands, bounds.
    pub fn build(self) -> Result<Supervisor, SupervisorError> {
        validate_name(&self.name)?;
        self.config.validate(&self.name)?;
        if self.intensity.within.is_zero() {
            return Err(SupervisorError::InvalidConfig {
                supervisor: self.name,
                field: "intensity.within",
                reason: "is zero; the restart window must be longer than that".to_owned(),
            });
        }
        let mut seen = HashSet::new();
        for child in &self.children {
            child.validate(&self.name)?;
            if !seen.insert(child.name()) {
                return Err(SupervisorError::DuplicateChild {
                    supervisor: self.name,
                    child: child.name().to_owned(),
                });
            }
        }
        let (events, _) = broadcast::channel(self.config.event_capacity);
        Ok(Supervisor {
            def: Arc::new(Definition {
                name: Arc::from(self.name),
                strategy: self.strategy,
                intensity: self.intensity,
                children: self.children,
                bus: self.bus,
                config: self.config,
                events,
            }),
        })
    }
}

impl Supervisor {
    /// Starts building a supervisor called `name`.
    pub fn builder(name: impl Into<String>) -> SupervisorBuilder {
        SupervisorBuilder {
            name: name.into(),
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            children: Vec::new(),
            bus: None,
            config: SupervisorConfig::default(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// Its strategy.
    pub fn strategy(&self) -> Strategy {
        self.def.strategy
    }

    /// Its intensity.
    pub fn intensity(&self) -> Intensity {
        self.def.intensity
    }

    /// Receives every event of every start of this definition, from now on; take one
    /// before [`start`](Self::start) to see the children start.
    pub fn events(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.def.events.subscribe()
    }

    /// Starts the children in order and then watches them. If a child fails to start,
    /// the ones already started are stopped in reverse order and the error names it.
    pub async fn start(&self) -> Result<SupervisorHandle, SupervisorError> {
        self.start_with(None).await
    }

    /// Starts with `inherited` as the bus when the definition has none.
    pub(crate) fn start_with(
        &self,
        inherited: Option<Bus>,
    ) -> BoxFuture<'static, Result<SupervisorHandle, SupervisorError>> {
        let def = Arc::clone(&self.def);
        async move { Actor::start(def, inherited).await }.boxed()
    }
}

/// Where the supervisor task is after handling something.
enum Flow {
    Continue,
    Terminated,
}

struct Slot {
    running: Option<Incarnation>,
    /// Exited or stopped and waiting to be started again.
    pending: bool,
}

type ExitStream = FuturesUnordered<BoxFuture<'static, (usize, u64, ExitReason)>>;

/// The task that owns the children of one started supervisor.
struct Actor {
    def: Arc<Definition>,
    bus: Option<Bus>,
    shared: Arc<SharedState>,
    slots: Vec<Slot>,
    window: RestartWindow,
    exits: ExitStream,
    generation: u64,
    publish: Option<mpsc::Sender<SupervisorEvent>>,
}

impl Actor {
    async fn start(
        def: Arc<Definition>,
        inherited: Option<Bus>,
    ) -> Result<SupervisorHandle, SupervisorError> {
        let bus = def.bus.clone().or(inherited);
        let children = def
            .children
            .iter()
            .map(|spec| ChildInfo {
                name: spec.name().to_owned(),
                kind: spec.kind(),
                restart: spec.restart,
                state: ChildState::Stopped,
                restarts: 0,
                pid: None,
                last_exit: None,
            })
            .collect();
        let shared = Arc::new(SharedState {
            name: Arc::clone(&def.name),
            children: Mutex::new(children),
            nested: Mutex::new(vec![None; def.children.len()]),
            state: watch::Sender::new(SupervisorState::Starting),
            termination: Mutex::new(None),
            events: def.events.clone(),
            unpublished: AtomicU64::new(0),
        });
        let publish = bus.clone().map(|bus| {
            let (tx, rx) = mpsc::channel(def.config.bus_queue_capacity);
            tokio::spawn(forward(bus, rx));
            tx
        });
        let mut actor = Actor {
            slots: def
                .children
                .iter()
                .map(|_| Slot {
                    running: None,
                    pending: false,
                })
                .collect(),
            window: RestartWindow::new(def.intensity),
            def,
            bus,
            shared,
            exits: FuturesUnordered::new(),
            generation: 0,
            publish,
        };
        for index in 0..actor.slots.len() {
            if let Err(source) = actor.start_child(index).await {
                let child = actor.def.children[index].name().to_owned();
                let report = actor.stop_all().await;
                actor.shared.terminate(Termination::Shutdown(report));
                return Err(SupervisorError::StartFailed {
                    supervisor: actor.def.name.to_string(),
                    child,
                    source,
                });
            }
            let info = actor.info(index);
            actor.emit(SupervisorEvent::ChildStarted {
                supervisor: actor.def.name.to_string(),
                child: info.name,
                kind: info.kind,
                pid: info.pid,
            });
        }
        actor.shared.state.send_replace(SupervisorState::Running);
        let (commands, mailbox) = mpsc::channel(actor.def.config.command_capacity);
        let handle = SupervisorHandle {
            commands,
            shared: Arc::clone(&actor.shared),
        };
        tokio::spawn(actor.run(mailbox));
        Ok(handle)
    }

    async fn run(mut self, mut mailbox: mpsc::Receiver<Command>) {
        loop {
            let flow = tokio::select! {
                Some((index, generation, reason)) = self.exits.next(), if !self.exits.is_empty() => {
                    if self.is_current(index, generation) {
                        self.child_exited(index, reason).await
                    } else {
                        Flow::Continue
                    }
                }
                command = mailbox.recv() => match command {
                    None => {
                        let report = self.shutdown().await;
                        tracing::debug!(supervisor = %self.def.name, stopped = report.stopped.len(),
                            "every handle was dropped; shut down");
                        Flow::Terminated
                    }
                    Some(command) => self.command(command).await,
                },
            };
            if let Flow::Terminated = flow {
                return;
            }
        }
    }

    async fn command(&mut self, command: Command) -> Flow {
        match command {
            Command::Shutdown { reply } => {
                let report = self.shutdown().await;
                let _ = reply.send(report);
                Flow::Terminated
            }
            Command::ReportFailure {
                child,
                reason,
                reply,
            } => {
                let index = match self.find(&child) {
                    Ok(index) => index,
                    Err(err) => {
                        let _ = reply.send(Err(err));
                        return Flow::Continue;
                    }
                };
                let Some(incarnation) = self.slots[index].running.take() else {
                    let _ = reply.send(Err(SupervisorError::ChildNotRunning {
                        supervisor: self.def.name.to_string(),
                        state: self.info(index).state,
                        child,
                    }));
                    return Flow::Continue;
                };
                tracing::warn!(supervisor = %self.def.name, child = %child, %reason,
                    "child reported failed; stopping it");
                child::stop(incarnation, self.def.children[index].shutdown).await;
                let flow = self
                    .child_exited(index, ExitReason::Failed { reason })
                    .await;
                let _ = reply.send(Ok(self.info(index)));
                flow
            }
            Command::RestartChild { child, reply } => {
                let result = match self.find(&child) {
                    Ok(index) => self.restart_manually(index).await,
                    Err(err) => Err(err),
                };
                let _ = reply.send(result);
                Flow::Continue
            }
        }
    }

    fn find(&self, child: &str) -> Result<usize, SupervisorError> {
        self.def
            .children
            .iter()
            .position(|spec| spec.name() == child)
            .ok_or_else(|| SupervisorError::NoSuchChild {
                supervisor: self.def.name.to_string(),
                child: child.to_owned(),
            })
    }

    fn is_current(&self, index: usize, generation: u64) -> bool {
        self.slots[index]
            .running
            .as_ref()
            .is_some_and(|run| run.generation == generation)
    }

    fn info(&self, index: usize) -> ChildInfo {
        self.shared.children.lock()[index].clone()
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut ChildInfo)) {
        change(&mut self.shared.children.lock()[index]);
    }

    fn emit(&self, event: SupervisorEvent) {
        // No receiver is not an error: events are offered, not owed.
        let _ = self.shared.events.send(event.clone());
        if let Some(publish) = &self.publish
            && let Err(err) = publish.try_send(event)
        {
            self.shared.unpublished.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(supervisor = %self.def.name, error = %err,
                    "supervisor event not published: the bus queue is full");
        }
    }

    /// Starts one run of child `index` and watches it.
    async fn start_child(&mut self, index: usize) -> Result<(), StartError> {
        self.generation += 1;
        let generation = self.generation;
        self.update(index, |info| info.state = ChildState::Starting);
        let spec = &self.def.children[index];
        let cx = StartContext {
            supervisor: &self.def.name,
            config: &self.def.config,
            bus: self.bus.as_ref(),
        };
        let incarnation = match child::start(spec, generation, &cx).await {
            Ok(incarnation) => incarnation,
            Err(err) => {
                let failed = ExitReason::StartFailed {
                    error: err.to_string(),
                };
                self.update(index, |info| {
                    info.state = ChildState::Failed;
                    info.pid = None;
                    info.last_exit = Some(failed);
                });
                return Err(err);
            }
        };
        if let Some(exit) = &incarnation.exit {
            self.exits.push(
                exit.clone()
                    .map(move |reason| (index, generation, reason))
                    .boxed(),
            );
        }
        let nested = match &incarnation.control {
            Control::Supervisor(handle) => Some(handle.clone()),
            _ => None,
        };
        self.shared.nested.lock()[index] = nested;
        let pid = incarnation.pid;
        self.update(index, |info| {
            info.state = ChildState::Running;
            info.pid = pid;
        });
        let slot = &mut self.slots[index];
        slot.running = Some(incarnation);
        slot.pending = false;
        Ok(())
    }

    /// Stops child `index` if it runs, telling the world how it went.
    async fn stop_child(&mut self, index: usize) -> Option<ChildStop> {
        let incarnation = self.slots[index].running.take()?;
        let spec = &self.def.children[index];
        let stopped = child::stop(incarnation, spec.shutdown).await;
        self.shared.nested.lock()[index] = None;
        let reason = stopped.reason.clone();
        self.update(index, |info| {
            info.state = ChildState::Stopped;
            info.pid = None;
            info.last_exit = Some(reason);
        });
        if stopped.killed {
            tracing::warn!(supervisor = %self.def.name, child = %spec.name,
                "child did not stop in time and was killed");
        }
        self.emit(SupervisorEvent::ChildStopped {
            supervisor: self.def.name.to_string(),
            child: spec.name.to_string(),
            reason: stopped.reason.clone(),
            killed: stopped.killed,
        });
        Some(ChildStop {
            child: spec.name.to_string(),
            reason: stopped.reason,
            killed: stopped.killed,
        })
    }

    /// Stops every running child in reverse start order.
    async fn stop_all(&mut self) -> ShutdownReport {
        let mut stopped = Vec::new();
        for index in (0..self.slots.len()).rev() {
            if std::mem::take(&mut self.slots[index].pending) {
                self.update(index, |info| info.state = ChildState::Stopped);
            }
            if let Some(stop) = self.stop_child(index).await {
                stopped.push(stop);
            }
        }
        ShutdownReport {
            supervisor: self.def.name.to_string(),
            stopped,
        }
    }

    async fn shutdown(&mut self) -> ShutdownReport {
        self.shared
            .state
            .send_replace(SupervisorState::ShuttingDown);
        let report = self.stop_all().await;
        self.emit(SupervisorEvent::Stopped {
            supervisor: self.def.name.to_string(),
            killed: report.killed().into_iter().map(str::to_owned).collect(),
        });
        self.shared.terminate(Termination::Shutdown(report.clone()));
        report
    }

    /// Child `index` has exited (its run already taken out of its slot, or ended).
    async fn child_exited(&mut self, index: usize, reason: ExitReason) -> Flow {
        self.slots[index].running = None;
        let pid = self.info(index).pid;
        self.shared.nested.lock()[index] = None;
        let spec = &self.def.children[index];
        let restart = spec.restart.restarts_after(&reason);
        let abnormal = reason.is_abnormal();
        let state = match (restart, abnormal) {
            (true, _) => ChildState::Restarting,
            (false, true) => ChildState::Failed,
            (false, false) => ChildState::Stopped,
        };
        let last = reason.clone();
        self.update(index, |info| {
            info.state = state;
            info.pid = None;
            info.last_exit = Some(last);
        });
        if abnormal {
            tracing::warn!(supervisor = %self.def.name, child = %spec.name, %reason, restart,
                "child exited abnormally");
        } else {
            tracing::info!(supervisor = %self.def.name, child = %spec.name, %reason, restart,
                "child exited");
        }
        self.emit(SupervisorEvent::ChildExited {
            supervisor: self.def.name.to_string(),
            child: spec.name.to_string(),
            reason: reason.clone(),
            abnormal,
            pid,
        });
        if !restart {
            return Flow::Continue;
        }
        self.restart_after(index, reason).await
    }

    /// Restarts after child `failed` exited for `reason`, as the strategy says,
    /// unless that is one restart too many.
    async fn restart_after(&mut self, mut failed: usize, mut reason: ExitReason) -> Flow {
        loop {
            if let Err(restarts) = self.window.record(Instant::now()) {
                self.give_up(failed, reason, restarts).await;
                return Flow::Terminated;
            }
            let siblings = match self.def.strategy {
                crate::Strategy::OneForOne => failed..failed,
                crate::Strategy::OneForAll => 0..self.slots.len(),
                crate::Strategy::RestForOne => failed + 1..self.slots.len(),
            };
            for index in siblings.clone().rev() {
                if index == failed {
                    continue;
                }
                self.stop_child(index).await;
                if self.def.children[index].restart == Restart::Temporary {
                    // Temporary children are never restarted; one still marked
                    // pending from an earlier pass is dropped too.
                    self.slots[index].pending = false;
                } else {
                    self.slots[index].pending = true;
                    self.update(index, |info| info.state = ChildState::Restarting);
                }
            }
            self.slots[failed].pending = true;
            match self.start_pending().await {
                Ok(()) => return Flow::Continue,
                Err((index, why)) => {
                    failed = index;
                    reason = why;
                }
            }
        }
    }

    /// Starts, in order, every child waiting to be started again. Stops at the first
    /// that fails, and says which and why; it stays pending.
    async fn start_pending(&mut self) -> Result<(), (usize, ExitReason)> {
        for index in 0..self.slots.len() {
            if !self.slots[index].pending {
                continue;
            }
            match self.start_child(index).await {
                Ok(()) => {
                    self.slots[index].pending = false;
                    self.restarted(index);
                }
                Err(err) => {
                    let reason = ExitReason::StartFailed {
                        error: err.to_string(),
                    };
                    tracing::warn!(supervisor = %self.def.name,
                        child = %self.def.children[index].name, %reason, "restart failed");
                    self.update(index, |info| {
                        info.state = ChildState::Restarting;
                    });
                    self.emit(SupervisorEvent::ChildExited {
                        supervisor: self.def.name.to_string(),
                        child: self.def.children[index].name.to_string(),
                        reason: reason.clone(),
                        abnormal: true,
                        pid: None,
                    });
                    return Err((index, reason));
                }
            }
        }
        Ok(())
    }

    fn restarted(&mut self, index: usize) {
        let mut restarts = 0;
        let mut pid = None;
        self.update(index, |info| {
            info.restarts = info.restarts.saturating_add(1);
            restarts = info.restarts;
            pid = info.pid;
        });
        tracing::info!(supervisor = %self.def.name, child = %self.def.children[index].name,
            restarts, "child restarted");
        self.emit(SupervisorEvent::ChildRestarted {
            supervisor: self.def.name.to_string(),
            child: self.def.children[index].name.to_string(),
            restarts,
            pid,
        });
    }

    async fn restart_manually(&mut self, index: usize) -> Result<ChildInfo, SupervisorError> {
        self.stop_child(index).await;
        match self.start_child(index).await {
            Ok(()) => {
                self.restarted(index);
                Ok(self.info(index))
            }
            Err(source) => {
                let child = self.def.children[index].name.to_string();
                self.emit(SupervisorEvent::ChildExited {
                    supervisor: self.def.name.to_string(),
                    child: child.clone(),
                    reason: ExitReason::StartFailed {
                        error: source.to_string(),
                    },
                    abnormal: true,
                    pid: None,
                });
                Err(SupervisorError::StartFailed {
                    supervisor: self.def.name.to_string(),
                    child,
                    source,
                })
            }
        }
    }

    async fn give_up(&mut self, failed: usize, reason: ExitReason, restarts: u32) {
        let child = self.def.children[failed].name.to_string();
        let intensity = self.def.intensity;
        tracing::error!(supervisor = %self.def.name, child = %child, %reason, restarts,
            max_restarts = intensity.max_restarts, window = ?intensity.within,
            "too many restarts; the supervisor gives up");
        self.shared
            .state
            .send_replace(SupervisorState::ShuttingDown);
        let report = self.stop_all().await;
        let last = reason.clone();
        self.update(failed, |info| {
            info.state = ChildState::Failed;
            info.last_exit = Some(last);
        });
        self.emit(SupervisorEvent::GaveUp {
            supervisor: self.def.name.to_string(),
            child: child.clone(),
            restarts,
            max_restarts: intensity.max_restarts,
            window_ms: u64::try_from(intensity.within.as_millis()).unwrap_or(u64::MAX),
            reason: reason.clone(),
        });
        self.shared.terminate(Termination::GaveUp {
            child,
            reason,
            restarts,
            report,
        });
    }
}

/// Publishes queued events on the bus, in order, until the supervisor is gone.
async fn forward(bus: Bus, mut events: mpsc::Receiver<SupervisorEvent>) {
    while let Some(event) = events.recv().await {
        let topic = event.topic();
        let supervisor = event.supervisor().to_owned();
        if let Err(err) = bus
            .publish(Envelope::new(topic, Payload::typed(event)))
            .await
        {
            tracing::warn!(supervisor = %supervisor, error = %err,
                "supervisor event not published on the bus");
        }
    }
}
