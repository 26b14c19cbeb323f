//! System health: one status for the whole system, with the reason for each component.
//!
//! Each component gets a verdict, by the first rule that applies:
//!
//! 1. a heal action is running on it → **Transitioning** ("being healed by …");
//! 2. its status is Unknown (not checked yet, or no threshold reached yet) →
//!    **Transitioning** ("not checked yet" / "starting");
//! 3. Unhealthy and [`Criticality::Critical`] → **Critical**;
//! 4. Unhealthy and [`Criticality::Optional`] → **Degraded**;
//! 5. Degraded → **Degraded**;
//! 6. Healthy → **Healthy**.
//!
//! The system's status is then **Unknown** when there are no components or none has
//! left Unknown (and none is being healed); otherwise the worst verdict, in the
//! order Critical, Transitioning, Degraded, Healthy. A critical component down
//! outweighs everything; something in motion (starting, being healed) outweighs a
//! settled degradation, because it says the picture is about to change.

use plexus_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::health::{ComponentHealth, ComponentKind, ComponentStatus, Criticality};
use strum::{Display as StrumDisplay, IntoStaticStr};

/// The whole system's health.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, StrumDisplay,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SystemStatus {
    /// Every component is healthy.
    Healthy,
    /// Working, with a degraded component or an optional one down.
    Degraded,
    /// A critical component is down.
    Critical,
    /// A component is starting or being healed.
    Transitioning,
    /// Nothing checked yet.
    Unknown,
}

impl SystemStatus {
    /// The status as lower-case text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// How bad it is, for taking the worst: higher is worse.
    fn severity(self) -> u8 {
        match self {
            Self::Unknown | Self::Healthy => 0,
            Self::Degraded => 1,
            Self::Transitioning => 2,
            Self::Critical => 3,
        }
    }
}

/// One component's part in the system's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentVerdict {
    /// The component.
    pub component: String,
    /// Its kind.
    pub kind: ComponentKind,
    /// Critical or optional.
    pub criticality: Criticality,
    /// Its own status.
    pub status: ComponentStatus,
    /// What it makes of the system.
    pub verdict: SystemStatus,
    /// Why, for people.
    pub reason: String,
}

/// The system's health and the reason per component. Serializable for `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemHealth {
    /// The system's status.
    pub status: SystemStatus,
    /// Every component's verdict, sorted by component name.
    pub components: Vec<ComponentVerdict>,
    /// When it was computed.
    pub at: Timestamp,
}

impl SystemHealth {
    /// Aggregates `components` by the rules in the [module docs](self).
    pub fn aggregate(components: &[ComponentHealth], at: Timestamp) -> Self {
        let mut verdicts: Vec<ComponentVerdict> = components.iter().map(verdict).collect();
        verdicts.sort_by(|a, b| a.component.cmp(&b.component));
        let settled = components
            .iter()
            .any(|c| c.healing || c.status != ComponentStatus::Unknown);
        let status = if !settled {
            SystemStatus::Unknown
        } else {
            verdicts
                .iter()
                .map(|v| v.verdict)
                .max_by_key(|s| s.severity())
                .unwrap_or(SystemStatus::Unknown)
        };
        Self {
            status,
            components: verdicts,
            at,
        }
    }

    /// The verdict for `component`, if it is part of the system.
    pub fn component(&self, component: &str) -> Option<&ComponentVerdict> {
        self.components.iter().find(|v| v.component == component)
    }
}

fn verdict(c: &ComponentHealth) -> ComponentVerdict {
    let (verdict, reason) = if c.healing {
        let action = c.heal_action.as_deref().unwrap_or("its heal action");
        (
            SystemStatus::Transitioning,
            format!(
                "being healed by `{action}` (attempt {})",
                c.heals_since_recovery.saturating_add(1)
            ),
        )
    } else {
        match (c.status, c.criticality) {
            (ComponentStatus::Unknown, _) if c.checks == 0 => {
                (SystemStatus::Transitioning, "not checked yet".to_owned())
            }
            (ComponentStatus::Unknown, _) => (
                SystemStatus::Transitioning,
                format!("starting: {} checks, no threshold reached yet", c.checks),
            ),
            (ComponentStatus::Unhealthy, Criticality::Critical) => (
                SystemStatus::Critical,
                format!("critical component unhealthy: {}", c.detail),
            ),
            (ComponentStatus::Unhealthy, Criticality::Optional) => (
                SystemStatus::Degraded,
                format!("optional component unhealthy: {}", c.detail),
            ),
            (ComponentStatus::Degraded, _) => {
                (SystemStatus::Degraded, format!("degraded: {}", c.detail))
            }
            (ComponentStatus::Healthy, _) => (SystemStatus::Healthy, "healthy".to_owned()),
        }
    };
    ComponentVerdict {
        component: c.component.clone(),
        kind: c.kind,
        criticality: c.criticality,
        status: c.status,
        verdict,
        reason,
    }
}
