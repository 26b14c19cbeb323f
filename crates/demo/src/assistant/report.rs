//! What a pipeline run measured: per-stage counts, loss, duplication, broken links.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use plexus_core::{CorrelationId, EventId};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::STAGES;
use super::modules::Shared;

/// What one stage received (DataCapture: what it published).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageRecord {
    /// The event's id.
    pub id: EventId,
    /// Its correlation id.
    pub correlation: CorrelationId,
    /// Its causation id.
    pub causation: Option<EventId>,
}

impl StageRecord {
    /// The record of `envelope`.
    pub fn of(envelope: &plexus_core::Envelope) -> Self {
        Self {
            id: envelope.id(),
            correlation: envelope.correlation_id(),
            causation: envelope.causation_id(),
        }
    }
}

/// Per-stage counts in flow order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageCounts(pub Vec<(&'static str, u64)>);

impl Serialize for StageCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (stage, count) in &self.0 {
            map.serialize_entry(stage, count)?;
        }
        map.end()
    }
}

/// The measured outcome of a pipeline run. Every figure is counted from what the
/// stages recorded, not derived from what was asked for.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineReport {
    /// Activities DataCapture published.
    pub captured: u64,
    /// Events each stage received, in flow order (DataCapture: published).
    pub stages: StageCounts,
    /// Deliveries missing: for each receiving stage (and the Orchestrator's receipt
    /// of the final animation), captured activities it never saw.
    pub lost: u64,
    /// Stage deliveries beyond the first for the same activity.
    pub duplicated: u64,
    /// Captured activities per second, first capture to last animation.
    pub events_per_s: f64,
    /// Received events whose causation id does not point at the previous stage's
    /// event of the same correlation id (or whose correlation id is unknown).
    pub chain_broken: u64,
    /// Seconds from first capture to last animation.
    pub elapsed_s: f64,
    /// Concurrent capture publishers.
    pub publishers: u32,
    /// Health pings answered by the module they were addressed to.
    pub health_checks: u64,
    /// Settings changes the figurine applied.
    pub config_changes: u64,
    /// Achievements unlocked.
    pub achievements: u64,
    /// Critical alerts the figurine received.
    pub alerts: u64,
    /// Modules that reported starting.
    pub modules_started: u64,
    /// Modules that reported stopping.
    pub modules_stopped: u64,
    /// Events still queued when the bus shut down.
    pub undelivered_at_shutdown: u64,
    /// Dead letters (handler failures, overflow, unmatched).
    pub dead_letters: u64,
    /// Each module's status in the node's registry after the run.
    pub modules: Vec<super::ModuleStatus>,
    /// The system's health, as the node's health aggregator has it after the run.
    pub system_health: String,
}

impl PipelineReport {
    pub(crate) fn measure(shared: &Shared, elapsed: Duration, publishers: u32) -> Self {
        let logs: Vec<Vec<StageRecord>> = shared.logs.iter().map(|l| l.lock().clone()).collect();
        let captured = logs[0].len() as u64;
        // What Storage..CuteFigurine received, then the figurine's output as the
        // Orchestrator received it: six links of one chain per captured activity.
        let mut received = logs[1..].to_vec();
        received.push(shared.completions.lock().clone());
        let counts = check_chain(captured, &received);
        let secs = elapsed.as_secs_f64();
        Self {
            captured,
            stages: StageCounts(
                STAGES
                    .iter()
                    .zip(&logs)
                    .map(|(stage, log)| (*stage, log.len() as u64))
                    .collect(),
            ),
            lost: counts.lost,
            duplicated: counts.duplicated,
            events_per_s: if secs > 0.0 {
                captured as f64 / secs
            } else {
                0.0
            },
            chain_broken: counts.broken,
            elapsed_s: secs,
            publishers,
            health_checks: shared.health_checks.load(Ordering::Relaxed),
            config_changes: shared.config_changes.load(Ordering::Relaxed),
            achievements: shared.achievements.load(Ordering::Relaxed),
            alerts: shared.alerts.load(Ordering::Relaxed),
            modules_started: *shared.started.borrow(),
            modules_stopped: *shared.stopped.borrow(),
            undelivered_at_shutdown: 0,
            dead_letters: 0,
            modules: Vec::new(),
            system_health: "unknown".to_owned(),
        }
    }
}

/// Loss, duplication and broken links across the stage logs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChainCheck {
    /// Deliveries missing.
    pub lost: u64,
    /// Deliveries repeated.
    pub duplicated: u64,
    /// Links that do not point at the previous stage's event.
    pub broken: u64,
}

/// Checks stage logs in flow order against `roots` root events: the first log holds
/// the roots (correlation id = own id, no cause); each later one must hold, for every
/// correlation id, one event caused by the previous log's event. A log holding fewer
/// than `roots` distinct correlation ids lost the difference.
pub fn check_chain(roots: u64, logs: &[Vec<StageRecord>]) -> ChainCheck {
    let mut check = ChainCheck::default();
    let mut previous: Option<HashMap<CorrelationId, StageRecord>> = None;
    for log in logs {
        let mut by_correlation = HashMap::with_capacity(log.len());
        for record in log {
            if by_correlation.insert(record.correlation, *record).is_some() {
                check.duplicated += 1;
            }
            let linked = match &previous {
                None => {
                    record.causation.is_none()
                        && CorrelationId::from(record.id) == record.correlation
                }
                Some(prev) => prev
                    .get(&record.correlation)
                    .is_some_and(|cause| record.causation == Some(cause.id)),
            };
            if !linked {
                check.broken += 1;
            }
        }
        check.lost += roots.saturating_sub(by_correlation.len() as u64);
        previous = Some(by_correlation);
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_core::{Envelope, Payload, Topic};

    fn record(e: &Envelope) -> StageRecord {
        StageRecord {
            id: e.id(),
            correlation: e.correlation_id(),
            causation: e.causation_id(),
        }
    }

    #[test]
    fn the_checker_finds_loss_duplication_and_broken_links() {
        let t = Topic::from_static("t");
        let a = Envelope::new(t.clone(), Payload::Empty);
        let b = Envelope::new(t.clone(), Payload::Empty);
        let a1 = a.follow_up(t.clone(), Payload::Empty);
        let b1 = b.follow_up(t.clone(), Payload::Empty);
        let good = vec![vec![record(&a), record(&b)], vec![record(&a1), record(&b1)]];
        assert_eq!(check_chain(2, &good), ChainCheck::default());

        let lost = vec![vec![record(&a), record(&b)], vec![record(&a1)]];
        assert_eq!(check_chain(2, &lost).lost, 1);
        assert_eq!(
            check_chain(3, &good).lost,
            2,
            "one root missing from both logs"
        );

        let dup = vec![vec![record(&a)], vec![record(&a1), record(&a1)]];
        assert_eq!(check_chain(1, &dup).duplicated, 1);

        // Right correlation, wrong cause: derived from the root, not the previous stage.
        let a2_wrong = a.follow_up(t, Payload::Empty);
        let broken = vec![vec![record(&a)], vec![record(&a1)], vec![record(&a2_wrong)]];
        assert_eq!(check_chain(1, &broken).broken, 1);
    }
}
