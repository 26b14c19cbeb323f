//! Heal actions and the record of every attempt.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use plexus_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::clock::micros;

/// What a heal action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealKind {
    /// Restarts a service (the node gives one that goes through its supervisor).
    Restart,
    /// Reconnects a client to what it talks to.
    Reconnect,
    /// Anything else.
    Custom,
}

type HealFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A named async function run to heal a component; `Err` says why it did not work.
#[derive(Clone)]
pub struct HealAction {
    kind: HealKind,
    name: String,
    run: HealFn,
}

impl HealAction {
    fn build<F, Fut>(kind: HealKind, name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            kind,
            name: name.into(),
            run: Arc::new(move || f().boxed()),
        }
    }

    /// An action that restarts a service.
    pub fn restart<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self::build(HealKind::Restart, name, f)
    }

    /// An action that reconnects a client.
    pub fn reconnect<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self::build(HealKind::Reconnect, name, f)
    }

    /// Any other action.
    pub fn custom<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self::build(HealKind::Custom, name, f)
    }

    /// What it does.
    pub fn kind(&self) -> HealKind {
        self.kind
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn run(&self) -> BoxFuture<'static, Result<(), String>> {
        (self.run)()
    }
}

impl fmt::Debug for HealAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealAction")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One heal attempt, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealAttempt {
    /// The component healed.
    pub component: String,
    /// The action's name.
    pub action: String,
    /// The action's kind.
    pub kind: HealKind,
    /// 1 for the first attempt since the component was last well, and so on.
    pub attempt: u32,
    /// When it started.
    pub at: Timestamp,
    /// How long it ran.
    #[serde(rename = "duration_us", with = "micros")]
    pub duration: Duration,
    /// How it ended.
    pub outcome: HealOutcome,
    /// Whether the check after it found the component well again: the recovery was
    /// this attempt's. Set in [`HealthMonitor::heal_history`](crate::health::HealthMonitor::heal_history)
    /// when that check passes (the attempt's own event, sent before, says `false`).
    #[serde(default)]
    pub recovered: bool,
}

/// How a heal attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HealOutcome {
    /// The action reported success (the component's checks decide whether it is well).
    Succeeded,
    /// The action reported failure, or panicked.
    Failed {
        /// What it said.
        error: String,
    },
    /// The action ran past [`crate::health::HealPolicy::timeout`] and was abandoned.
    TimedOut,
}

impl HealOutcome {
    /// Whether the action reported success.
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Succeeded)
    }
}
