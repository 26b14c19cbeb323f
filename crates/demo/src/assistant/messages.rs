//! The fourteen typed messages of the desktop assistant.
//!
//! Six carry one captured activity through the pipeline, each derived from the one
//! before with [`plexus_core::Envelope::follow_up_event`]; eight run the modules
//! (lifecycle, health, configuration, achievements, alerts, shutdown).

use plexus_core::{Event, Priority, Topic};
use serde::{Deserialize, Serialize};

macro_rules! message {
    ($(#[$doc:meta])* $name:ident $(: $prio:ident)? = $topic:literal { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $(
                #[allow(missing_docs)]
                pub $field: $ty,
            )*
        }

        impl Event for $name {
            const TOPIC: Topic = Topic::from_static($topic);
            $(const PRIORITY: Priority = Priority::$prio;)?
        }
    };
}

message!(
    /// DataCapture saw the user do something.
    ActivityCaptured = "assistant.capture.activity" { publisher: u32, seq: u64, app: String }
);
message!(
    /// Storage persisted a captured activity.
    ActivityStored = "assistant.storage.stored" { row: u64 }
);
message!(
    /// AnalysisEngine scored a stored activity.
    ActivityAnalyzed = "assistant.analysis.scored" { focus: u32 }
);
message!(
    /// Gamification turned a score into points.
    PointsAwarded = "assistant.gamification.points" { points: u32, total: u64 }
);
message!(
    /// AI wrote a line for the figurine to say.
    AssistantReplied = "assistant.ai.replied" { line: String }
);
message!(
    /// CuteFigurine acted out the reply: the end of one activity's journey.
    FigureAnimated = "assistant.figurine.animated" { animation: String }
);
message!(
    /// A module is up.
    ModuleStarted = "assistant.lifecycle.started" { module: String }
);
message!(
    /// A module has stopped.
    ModuleStopped = "assistant.lifecycle.stopped" { module: String }
);
message!(
    /// The Orchestrator asks a module whether it is well (a request).
    HealthPing = "assistant.health.ping" { from: String }
);
message!(
    /// A module's answer to a [`HealthPing`].
    HealthPong = "assistant.health.pong" { module: String, handled: u64 }
);
message!(
    /// A setting changed.
    ConfigChanged = "assistant.config.changed" { key: String, value: String }
);
message!(
    /// Gamification unlocked an achievement (ahead of normal traffic).
    AchievementUnlocked: High = "assistant.gamification.achievement" { name: String, total: u64 }
);
message!(
    /// Something needs attention now.
    SystemAlert: Critical = "assistant.system.alert" { reason: String }
);
message!(
    /// The Orchestrator asks every module to stop.
    ShutdownRequested: Critical = "assistant.system.shutdown" { reason: String }
);
