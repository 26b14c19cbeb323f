//! Recurring schedules: a cron pattern read in an IANA time zone, and the job each
//! fire enqueues, kept in the backend so every node sees them.
//!
//! No fire runs twice across nodes: every node's dispatcher looks for due
//! schedules, and a fire time's job carries the unique key
//! `cron:<schedule>:<fire ms>` (so a second node's enqueue of it answers the
//! first's job), then the schedule's next fire time is moved with a
//! compare-and-set from the fire time it handled (so only one node moves it). A
//! node that dies between the two leaves the fire time due; the next node's enqueue
//! finds the job already there and moves the time on. After downtime a schedule
//! fires once for the missed times, then keeps to its pattern.
//!
//! Patterns are parsed by `croner` (5 fields, or 6 with seconds first), zones by
//! `chrono-tz`; a fire's job runs as the caller who made the schedule.

use std::str::FromStr;

use chrono::TimeZone;
use chrono_tz::Tz;
use croner::Cron;
use plexus_core::CallContext;
use plexus_core::scope::Scope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::backend::ScheduleRow;
use crate::jobs::Enqueue;
use crate::{JobError, Jobs, check_queue};

/// How long a fire time's unique key holds: a day.
const FIRE_KEY_WINDOW_MS: u64 = 86_400_000;

/// Params of `jobs.schedule`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Its name (a-z, 0-9, `_` and `-`, 1 to 64 bytes); scheduling a name again
    /// replaces it.
    pub name: String,
    /// The cron pattern: `min hour day month weekday`, or 6 fields with seconds
    /// first.
    pub cron: String,
    /// The IANA time zone the pattern is read in (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// The job each fire enqueues, as `jobs.enqueue` takes it, without `run_at`,
    /// `delay_ms` or `unique_key` (the fire time sets them).
    pub job: Enqueue,
}

/// The first fire time of `cron` in `timezone` strictly after `after_ms`.
pub fn next_fire(cron: &str, timezone: &str, after_ms: i64) -> Result<i64, JobError> {
    let pattern = Cron::from_str(cron).map_err(|e| JobError::invalid("/cron", e.to_string()))?;
    let zone = Tz::from_str(timezone)
        .map_err(|_| JobError::invalid("/timezone", "is not an IANA time zone"))?;
    let start = zone
        .timestamp_millis_opt(after_ms)
        .single()
        .ok_or_else(|| JobError::invalid("/cron", "the time is out of range"))?;
    let next = pattern
        .find_next_occurrence(&start, false)
        .map_err(|e| JobError::invalid("/cron", format!("never fires: {e}")))?;
    Ok(next.timestamp_millis())
}

/// The context a fire's job is checked and run as: the schedule's maker.
fn maker(job: &Value) -> CallContext {
    let mut ctx = CallContext::new();
    ctx.caller = job["caller"].as_str().map(str::to_owned);
    ctx.scopes = job["scopes"].as_array().map(|scopes| {
        scopes
            .iter()
            .filter_map(|s| s.as_str()?.parse::<Scope>().ok())
            .collect::<Vec<_>>()
            .into()
    });
    ctx
}

impl Jobs {
    /// Adds (or replaces) a schedule as `ctx`'s caller, after checking its name,
    /// pattern, zone and job (as an enqueue is checked, fields under `/job`).
    pub async fn schedule(
        &self,
        req: Schedule,
        ctx: &CallContext,
    ) -> Result<ScheduleRow, JobError> {
        check_queue(&req.name).map_err(|_| {
            JobError::invalid(
                "/name",
                "is not a schedule name (a-z, 0-9, _ and -, 1 to 64 bytes)",
            )
        })?;
        let timezone = req.timezone.unwrap_or_else(|| "UTC".to_owned());
        let next_at = next_fire(&req.cron, &timezone, self.clock().now_ms())?;
        let job = req.job;
        for (set, field) in [
            (job.run_at.is_some(), "/job/run_at"),
            (job.delay_ms.is_some(), "/job/delay_ms"),
            (job.unique_key.is_some(), "/job/unique_key"),
        ] {
            if set {
                return Err(JobError::invalid(field, "is set by each fire time"));
            }
        }
        self.check(job.clone(), ctx).map_err(|e| match e {
            JobError::Invalid { field, reason } => {
                JobError::invalid(format!("/job{field}"), reason)
            }
            other => other,
        })?;
        let max = self.config().max_schedules;
        let existing = self.backend().schedules(None).await?;
        if existing.len() >= max && !existing.iter().any(|s| s.name == req.name) {
            return Err(JobError::invalid(
                "/name",
                format!("there are jobs.max_schedules ({max}) schedules already"),
            ));
        }
        let row = ScheduleRow {
            name: req.name,
            cron: req.cron,
            timezone,
            job: json!({
                "enqueue": job,
                "caller": ctx.caller,
                "scopes": ctx.scopes.as_ref().map(|s| s.iter().map(ToString::to_string).collect::<Vec<_>>()),
            }),
            next_at,
        };
        self.backend().put_schedule(&row).await?;
        Ok(row)
    }

    /// Removes a schedule; false when there was none.
    pub async fn unschedule(&self, name: &str) -> Result<bool, JobError> {
        self.backend().remove_schedule(name).await
    }

    /// The schedules, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, JobError> {
        self.backend().schedules(None).await
    }

    /// Enqueues the job of every schedule due at `now` (once per fire time across
    /// nodes) and moves each on; answers how many jobs this node added.
    pub(crate) async fn fire_schedules(&self, now: i64) -> usize {
        let due = match self.backend().schedules(Some(now)).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "jobs: reading schedules failed");
                return 0;
            }
        };
        let mut added = 0;
        for schedule in due {
            match self.fire(&schedule, now).await {
                Ok(true) => added += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, schedule = %schedule.name, "jobs: a schedule did not fire");
                }
            }
        }
        added
    }

    async fn fire(&self, s: &ScheduleRow, now: i64) -> Result<bool, JobError> {
        let next = next_fire(&s.cron, &s.timezone, now.max(s.next_at))?;
        let made = async {
            let mut req: Enqueue =
                serde_json::from_value(s.job["enqueue"].clone()).map_err(|e| {
                    JobError::Backend {
                        reason: format!("unreadable job of schedule {}: {e}", s.name),
                    }
                })?;
            req.run_at = Some(s.next_at);
            req.unique_key = Some(format!("cron:{}:{}", s.name, s.next_at));
            req.unique_window_ms = Some(FIRE_KEY_WINDOW_MS);
            let job = self.check(req, &maker(&s.job))?;
            self.backend().enqueue(&job).await
        }
        .await;
        // A job that can no longer be made (its target went away) skips this fire
        // rather than holding the schedule; a database error leaves it due.
        let created = match made {
            Ok((_, created)) => created,
            Err(e @ (JobError::Unavailable { .. } | JobError::Backend { .. })) => return Err(e),
            Err(error) => {
                tracing::warn!(%error, schedule = %s.name, "jobs: a fire's job was refused");
                false
            }
        };
        // Counted as soon as it exists: a worker may run it before the schedule moves on.
        self.metrics().enqueued(created);
        self.backend()
            .advance_schedule(&s.name, s.next_at, next)
            .await?;
        Ok(created)
    }
}
