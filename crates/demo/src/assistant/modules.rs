//! The modules' handlers: the pipeline stages, the Orchestrator, and the control
//! handlers every module runs (health, shutdown, and the figurine's extras).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use plexus_bus::{Bus, BusError, HandlerHandle, Overflow, SubscribeOptions};
use plexus_core::{Envelope, Event, Member, Payload};
use tokio::sync::watch;

use super::messages::*;
use super::{Placement, STAGES, StageRecord, member};

/// Applications the capture publishers pretend to watch.
const APPS: [&str; 4] = ["editor", "browser", "terminal", "mail"];

/// State the modules share: the nodes' buses and which module runs on which,
/// what each stage received, and counters.
pub(crate) struct Shared {
    nodes: Vec<Bus>,
    placement: Placement,
    capacity: usize,
    pub(crate) logs: [Mutex<Vec<StageRecord>>; 6],
    pub(crate) completions: Mutex<Vec<StageRecord>>,
    counts: [AtomicU64; 6],
    pub(crate) completed: watch::Sender<u64>,
    pub(crate) started: watch::Sender<u64>,
    pub(crate) stopped: watch::Sender<u64>,
    pub(crate) health_checks: AtomicU64,
    pub(crate) config_changes: AtomicU64,
    pub(crate) achievements: AtomicU64,
    pub(crate) alerts: AtomicU64,
}

impl Shared {
    /// `nodes` must not be empty; `placement` indexes into it (an index past the
    /// end is the last node).
    pub(crate) fn new(nodes: Vec<Bus>, placement: Placement, capacity: usize) -> Self {
        debug_assert!(!nodes.is_empty());
        Self {
            nodes,
            placement,
            capacity,
            logs: std::array::from_fn(|_| Mutex::new(Vec::new())),
            completions: Mutex::new(Vec::new()),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            completed: watch::Sender::new(0),
            started: watch::Sender::new(0),
            stopped: watch::Sender::new(0),
            health_checks: AtomicU64::new(0),
            config_changes: AtomicU64::new(0),
            achievements: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
        }
    }

    /// The bus of the node `module` runs on.
    pub(crate) fn bus_of(&self, module: &str) -> &Bus {
        let last = self.nodes.len().saturating_sub(1);
        &self.nodes[(self.placement)(module).min(last)]
    }

    /// Every node's bus.
    pub(crate) fn nodes(&self) -> &[Bus] {
        &self.nodes
    }

    /// Subscription options for a module: its identity, blocking backpressure.
    fn options(&self, module: &str) -> SubscribeOptions {
        SubscribeOptions::new()
            .member(member(module))
            .name(module)
            .capacity(self.capacity)
            .overflow(Overflow::Block {
                timeout: Duration::from_secs(60),
            })
    }

    fn record(&self, stage: usize, envelope: &Envelope) {
        self.logs[stage].lock().push(StageRecord::of(envelope));
    }

    pub(crate) fn count_health_check(&self) {
        self.health_checks.fetch_add(1, Ordering::Relaxed);
    }

    /// One DataCapture publisher: records and publishes `count` activities.
    pub(crate) async fn capture(&self, publisher: u32, count: u64) -> Result<(), BusError> {
        let me = Arc::new(Member::new(
            format!("datacapture-{}", publisher + 1),
            "DataCapture",
            "sensor",
        ));
        for seq in 0..count {
            let envelope = Envelope::event(ActivityCaptured {
                publisher,
                seq,
                app: APPS[(seq % 4) as usize].to_owned(),
            })
            .with_source(Arc::clone(&me));
            self.record(0, &envelope);
            self.bus_of("DataCapture").publish(envelope).await?;
        }
        Ok(())
    }
}

fn bump(counter: &watch::Sender<u64>) {
    counter.send_modify(|n| *n += 1);
}

/// A pipeline stage: records each `In` it receives and publishes the `Out` derived
/// from it. `make` gets the event and how many this stage has handled, this one
/// included.
pub(crate) fn stage<In: Event, Out: Event>(
    shared: &Arc<Shared>,
    index: usize,
    make: fn(&In, u64) -> Out,
) -> Result<HandlerHandle, BusError> {
    let module = STAGES[index];
    let me = Arc::new(member(module));
    let s = Arc::clone(shared);
    shared.bus_of(module).handle_event::<In, _, _, _, BusError>(
        shared.options(module),
        move |event: Arc<In>, envelope: Arc<Envelope>| {
            let s = Arc::clone(&s);
            let me = Arc::clone(&me);
            async move {
                s.record(index, &envelope);
                let n = s.counts[index].fetch_add(1, Ordering::Relaxed) + 1;
                let next = envelope.follow_up_event(make(&event, n)).with_source(me);
                s.bus_of(module).publish(next).await?;
                Ok(())
            }
        },
    )
}

/// Gamification also watches its own points and unlocks an achievement every
/// 10,000 of them, at High priority.
pub(crate) fn gamification_achievements(shared: &Arc<Shared>) -> Result<HandlerHandle, BusError> {
    let s = Arc::clone(shared);
    shared
        .bus_of("Gamification")
        .handle_event::<PointsAwarded, _, _, _, BusError>(
            shared
                .options("Gamification")
                .name("Gamification.achievements"),
            move |points: Arc<PointsAwarded>, envelope: Arc<Envelope>| {
                let s = Arc::clone(&s);
                async move {
                    if points.total.is_multiple_of(10_000) {
                        let unlocked = envelope.follow_up_event(AchievementUnlocked {
                            name: format!("{} activities", points.total),
                            total: points.total,
                        });
                        s.bus_of("Gamification").publish(unlocked).await?;
                    }
                    Ok(())
                }
            },
        )
}

/// The Orchestrator: counts modules started and stopped, and completed journeys.
pub(crate) fn orchestrator(shared: &Arc<Shared>) -> Result<Vec<HandlerHandle>, BusError> {
    let options = || shared.options("Orchestrator");
    let bus = shared.bus_of("Orchestrator");
    let s = Arc::clone(shared);
    let started =
        bus.handle_event::<ModuleStarted, _, _, _, BusError>(options(), move |_, _| {
            bump(&s.started);
            async { Ok(()) }
        })?;
    let s = Arc::clone(shared);
    let stopped =
        bus.handle_event::<ModuleStopped, _, _, _, BusError>(options(), move |_, _| {
            bump(&s.stopped);
            async { Ok(()) }
        })?;
    let s = Arc::clone(shared);
    let completed = bus.handle_event::<FigureAnimated, _, _, _, BusError>(
        options(),
        move |_, envelope: Arc<Envelope>| {
            s.completions.lock().push(StageRecord::of(&envelope));
            bump(&s.completed);
            async { Ok(()) }
        },
    )?;
    Ok(vec![started, stopped, completed])
}

/// What every module runs: a health answer (addressed to its service) and a stop
/// handler; the figurine also reacts to alerts, settings and achievements.
pub(crate) fn control(
    shared: &Arc<Shared>,
    module: &'static str,
) -> Result<Vec<HandlerHandle>, BusError> {
    let bus = shared.bus_of(module);
    let stage = STAGES.iter().position(|s| *s == module);
    let s = Arc::clone(shared);
    let health =
        bus.handle_event::<HealthPing, _, _, _, BusError>(shared.options(module), move |_, _| {
            let handled = stage.map_or(0, |i| s.counts[i].load(Ordering::Relaxed));
            let pong = HealthPong {
                module: module.to_owned(),
                handled,
            };
            async move { Ok(Payload::typed(pong)) }
        })?;
    let s = Arc::clone(shared);
    let me = Arc::new(member(module));
    let stop = bus.handle_event::<ShutdownRequested, _, _, _, BusError>(
        shared.options(module),
        move |_, envelope: Arc<Envelope>| {
            let s = Arc::clone(&s);
            let me = Arc::clone(&me);
            async move {
                let stopped = envelope.follow_up_event(ModuleStopped {
                    module: module.to_owned(),
                });
                s.bus_of(module).publish(stopped.with_source(me)).await?;
                Ok(())
            }
        },
    )?;
    let mut handlers = vec![health, stop];
    if module == "CuteFigurine" {
        handlers.push(counter::<SystemAlert>(shared, module, |s| &s.alerts)?);
        handlers.push(counter::<ConfigChanged>(shared, module, |s| {
            &s.config_changes
        })?);
        handlers.push(counter::<AchievementUnlocked>(shared, module, |s| {
            &s.achievements
        })?);
    }
    Ok(handlers)
}

/// A handler that counts events of type `E` into the counter `which` picks.
fn counter<E: Event>(
    shared: &Arc<Shared>,
    module: &str,
    which: fn(&Shared) -> &AtomicU64,
) -> Result<HandlerHandle, BusError> {
    let s = Arc::clone(shared);
    shared.bus_of(module).handle_event::<E, _, _, _, BusError>(
        shared.options(module),
        move |_, _| {
            which(&s).fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        },
    )
}
