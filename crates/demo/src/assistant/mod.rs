//! The desktop assistant: eight modules wired through the bus.
//!
//! A captured activity flows DataCapture → Storage → AnalysisEngine → Gamification →
//! AI → CuteFigurine, and the figurine's [`FigureAnimated`] tells the Orchestrator that
//! the activity's journey is complete. Each stage publishes a new typed event derived
//! from the one it received, so one correlation id runs end to end and every causation
//! id points at the previous stage's event. Around that flow the Orchestrator starts
//! the modules, pings each one's health by request/reply to its service, changes a
//! setting, raises a Critical alert, and shuts everything down.
//!
//! Every stage records what it received; [`PipelineReport`] counts lost, duplicated
//! and mis-linked events from those records, so its figures are measured.

mod messages;
mod modules;
mod report;
mod services;

use std::sync::Arc;
use std::time::{Duration, Instant};

use plexus_bus::{Bus, BusConfig, BusError, HandlerHandle, ShutdownReport};
use plexus_core::{Envelope, Member, Target, Topic};

pub use messages::*;
use modules::{Shared, control, gamification_achievements, orchestrator, stage};
pub use report::{ChainCheck, PipelineReport, StageCounts, StageRecord, check_chain};
pub use services::ModuleStatus;

/// The eight modules, in the order they are listed in reports.
pub const MODULES: [&str; 8] = [
    "EventBus",
    "Orchestrator",
    "Storage",
    "DataCapture",
    "AnalysisEngine",
    "Gamification",
    "AI",
    "CuteFigurine",
];

/// The six pipeline stages, in flow order.
pub const STAGES: [&str; 6] = [
    "DataCapture",
    "Storage",
    "AnalysisEngine",
    "Gamification",
    "AI",
    "CuteFigurine",
];

/// The topic dead letters go to.
pub const DEAD_LETTERS: Topic = Topic::from_static("assistant.dead");

/// How a pipeline run is shaped.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Activities captured in all.
    pub captured: u64,
    /// Concurrent DataCapture publishers sharing that total.
    pub publishers: u32,
    /// Each subscription's lane capacity (publishers block when a lane is full).
    pub capacity: usize,
    /// How long to wait for any one step (start, completion, stop) before giving up.
    pub step_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            captured: 100_000,
            publishers: 4,
            capacity: 1024,
            step_timeout: Duration::from_secs(120),
        }
    }
}

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    /// The bus refused something.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A step did not finish in time.
    #[error(
        "{what} did not finish within {after:?}; see the per-stage counts for where events stopped"
    )]
    Timeout {
        /// The step.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// A configuration value is out of range.
    #[error("{0}")]
    Config(String),
}

/// Which node runs a module: an index into the buses given to
/// [`Assistant::start_on`] (an index past the end is the last node).
pub type Placement = fn(&str) -> usize;

/// Every module on the one node.
pub fn one_node(_module: &str) -> usize {
    0
}

/// The modules spread over three nodes so that every step of the flow crosses
/// from one node to another: DataCapture, Gamification, the Orchestrator and the
/// EventBus on node 0; Storage and AI on node 1; AnalysisEngine and CuteFigurine
/// on node 2.
pub fn three_nodes(module: &str) -> usize {
    match module {
        "Storage" | "AI" => 1,
        "AnalysisEngine" | "CuteFigurine" => 2,
        _ => 0,
    }
}

/// The member identity of one module.
pub fn member(module: &str) -> Member {
    let kind = match module {
        "EventBus" | "Orchestrator" => "core",
        "Storage" => "persistence",
        "DataCapture" => "sensor",
        "AnalysisEngine" | "AI" => "inference",
        _ => "presentation",
    };
    Member::new(format!("{}-1", module.to_ascii_lowercase()), module, kind)
}

/// The running assistant.
pub struct Assistant {
    shared: Arc<Shared>,
    handlers: Vec<HandlerHandle>,
    step_timeout: Duration,
}

impl Assistant {
    /// Starts all eight modules on `bus` and waits until each has said it started and
    /// has answered a health ping.
    pub async fn start(bus: &Bus, config: &PipelineConfig) -> Result<Self, AssistantError> {
        Self::start_on(std::slice::from_ref(bus), one_node, config).await
    }

    /// Starts the eight modules on several nodes' buses, each on the one
    /// `placement` names. The buses must already share the `assistant.>` topics
    /// (a pub/sub bridge): a module only ever subscribes and publishes on its own
    /// node's bus. Waits as [`Assistant::start`] does; each module's health is
    /// pinged on its own node.
    pub async fn start_on(
        nodes: &[Bus],
        placement: Placement,
        config: &PipelineConfig,
    ) -> Result<Self, AssistantError> {
        if config.publishers == 0 {
            return Err(AssistantError::Config(
                "publishers must be at least 1".to_owned(),
            ));
        }
        if nodes.is_empty() {
            return Err(AssistantError::Config(
                "the assistant needs at least one node's bus".to_owned(),
            ));
        }
        let shared = Arc::new(Shared::new(nodes.to_vec(), placement, config.capacity));
        let mut handlers = orchestrator(&shared)?;
        for module in MODULES {
            handlers.extend(control(&shared, module)?);
        }
        handlers.push(stage::<ActivityCaptured, ActivityStored>(
            &shared,
            1,
            |_, n| ActivityStored { row: n },
        )?);
        handlers.push(stage::<ActivityStored, ActivityAnalyzed>(
            &shared,
            2,
            |e, _| ActivityAnalyzed {
                focus: (e.row.wrapping_mul(37) % 100) as u32,
            },
        )?);
        handlers.push(stage::<ActivityAnalyzed, PointsAwarded>(
            &shared,
            3,
            |e, n| PointsAwarded {
                points: 1 + e.focus / 10,
                total: n,
            },
        )?);
        handlers.push(gamification_achievements(&shared)?);
        handlers.push(stage::<PointsAwarded, AssistantReplied>(
            &shared,
            4,
            |e, _| AssistantReplied {
                line: format!("+{} points!", e.points),
            },
        )?);
        handlers.push(stage::<AssistantReplied, FigureAnimated>(
            &shared,
            5,
            |_, n| FigureAnimated {
                animation: if n % 2 == 0 { "wave" } else { "hop" }.to_owned(),
            },
        )?);

        let assistant = Self {
            shared,
            handlers,
            step_timeout: config.step_timeout,
        };
        for module in MODULES {
            let me = Arc::new(member(module));
            assistant
                .shared
                .bus_of(module)
                .publish(
                    Envelope::event(ModuleStarted {
                        module: module.to_owned(),
                    })
                    .with_source(me),
                )
                .await?;
        }
        assistant
            .wait(
                &assistant.shared.started,
                MODULES.len() as u64,
                "module start",
            )
            .await?;
        for module in MODULES {
            let ping = Envelope::event(HealthPing {
                from: "Orchestrator".to_owned(),
            })
            .with_target(Target::Service(module.into()));
            let pong = assistant
                .shared
                .bus_of(module)
                .request(ping, config.step_timeout)
                .await?;
            let pong = pong
                .payload()
                .decode::<HealthPong>()
                .map_err(|e| AssistantError::Config(e.to_string()))?;
            if pong.module == module {
                assistant.shared.count_health_check();
            }
        }
        let orchestrator = assistant.shared.bus_of("Orchestrator");
        orchestrator
            .publish_event(ConfigChanged {
                key: "figurine.voice".to_owned(),
                value: "squeaky".to_owned(),
            })
            .await?;
        Ok(assistant)
    }

    /// Captures `total` activities from `publishers` concurrent DataCapture tasks and
    /// waits until the figurine has animated every one. `progress` hears how many
    /// journeys are complete, every thousand or so.
    pub async fn capture(
        &self,
        total: u64,
        publishers: u32,
        progress: impl Fn(u64),
    ) -> Result<Duration, AssistantError> {
        let started = Instant::now();
        let target = self.shared.completed.borrow().saturating_add(total);
        let mut tasks = Vec::new();
        for p in 0..publishers {
            let share = total / u64::from(publishers)
                + u64::from(u64::from(p) < total % u64::from(publishers));
            let shared = Arc::clone(&self.shared);
            tasks.push(tokio::spawn(async move { shared.capture(p, share).await }));
        }
        // An alert while the pipeline is busy: Critical, it overtakes the backlog.
        self.shared
            .bus_of("Orchestrator")
            .publish_event(SystemAlert {
                reason: "battery low".to_owned(),
            })
            .await?;
        for task in tasks {
            task.await
                .map_err(|e| AssistantError::Config(format!("a capture task failed: {e}")))??;
        }
        let mut completed = self.shared.completed.subscribe();
        let waited = tokio::time::timeout(self.step_timeout, async {
            loop {
                let done = *completed.borrow_and_update();
                progress(done);
                if done >= target {
                    break;
                }
                if completed.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        waited.map_err(|_| AssistantError::Timeout {
            what: "the pipeline",
            after: self.step_timeout,
        })?;
        Ok(started.elapsed())
    }

    /// Asks every module to stop, waits for each to say so, then shuts the buses
    /// down (the report is the first node's).
    pub async fn stop(self) -> Result<ShutdownReport, AssistantError> {
        self.shared
            .bus_of("Orchestrator")
            .publish_event(ShutdownRequested {
                reason: "demo finished".to_owned(),
            })
            .await?;
        self.wait(&self.shared.stopped, MODULES.len() as u64, "module stop")
            .await?;
        let nodes = self.shared.nodes();
        let report = nodes[0].shutdown(self.step_timeout).await;
        for other in &nodes[1..] {
            other.shutdown(self.step_timeout).await;
        }
        for handler in self.handlers {
            handler.join().await;
        }
        Ok(report)
    }

    /// What every stage has received so far.
    pub fn report(&self, elapsed: Duration, publishers: u32) -> PipelineReport {
        PipelineReport::measure(&self.shared, elapsed, publishers)
    }

    async fn wait(
        &self,
        counter: &tokio::sync::watch::Sender<u64>,
        target: u64,
        what: &'static str,
    ) -> Result<(), AssistantError> {
        let mut seen = counter.subscribe();
        tokio::time::timeout(self.step_timeout, seen.wait_for(|n| *n >= target))
            .await
            .map_err(|_| AssistantError::Timeout {
                what,
                after: self.step_timeout,
            })?
            .map_err(|_| AssistantError::Timeout {
                what,
                after: self.step_timeout,
            })?;
        Ok(())
    }
}

/// The bus configuration the assistant runs on: dead letters kept on [`DEAD_LETTERS`].
pub fn bus_config() -> BusConfig {
    BusConfig::default().with_dead_letter_topic(DEAD_LETTERS)
}

/// Starts the assistant on a fresh bus, captures, stops, and measures.
pub async fn run_pipeline(
    config: &PipelineConfig,
    progress: impl Fn(u64),
) -> Result<PipelineReport, AssistantError> {
    let bus = Bus::with_config(bus_config())?;
    let assistant = Assistant::start(&bus, config).await?;
    // The modules as services of a node: registered, health-checked by pinging each
    // module over the bus.
    let node = services::start_node(&bus, config.step_timeout)
        .await
        .map_err(|e| AssistantError::Config(format!("the node did not start: {e}")))?;
    let elapsed = assistant
        .capture(config.captured, config.publishers, progress)
        .await?;
    let modules = services::module_statuses(&node);
    let system_health = node.system_health().status.as_str().to_owned();
    drop(node);
    let shared = Arc::clone(&assistant.shared);
    let shutdown = assistant.stop().await?;
    let mut report = PipelineReport::measure(&shared, elapsed, config.publishers);
    report.modules = modules;
    report.system_health = system_health;
    report.undelivered_at_shutdown = shutdown.undelivered.len() as u64;
    report.dead_letters = bus.stats().dead_lettered + bus.stats().dead_letter_lost;
    Ok(report)
}
