//! Faults at scenario times: switched on at `at_s`, off `duration_s` later, on the
//! test service (through its [`FaultSwitch`]) or on a fault proxy (as a toxic, or
//! the proxy's `Down` mode), or on a process service (SIGKILL, SIGSTOP, SIGCONT).
//! The times each was really applied and lifted are kept
//! for the report and the breaker assertions.

use std::collections::BTreeMap;
use std::time::Duration;

use plexus_faultproxy::{FaultProxy, Mode, Toxic};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::process::Process;
use crate::scenario::{FaultKind, FaultSpec};
use crate::testsvc::{FaultSwitch, ServiceFault};

/// The toxic a proxy fault puts in force; `None` for service faults and `Down`.
pub fn toxic(kind: &FaultKind) -> Option<Toxic> {
    Some(match *kind {
        FaultKind::Latency { ms, jitter_ms } => Toxic::Latency { ms, jitter_ms },
        FaultKind::Reset => Toxic::ResetPeer { after_ms: 0 },
        FaultKind::Blackhole => Toxic::Blackhole,
        FaultKind::Bandwidth { bytes_per_second } => Toxic::Bandwidth { bytes_per_second },
        FaultKind::Slicer { bytes, delay_us } => Toxic::Slicer { bytes, delay_us },
        FaultKind::Timeout { ms } => Toxic::Timeout { ms },
        FaultKind::ErrorRate { .. }
        | FaultKind::Hang
        | FaultKind::Unavailable
        | FaultKind::Panic
        | FaultKind::Down
        | FaultKind::Kill { .. }
        | FaultKind::Stop => {
            return None;
        }
    })
}

fn service_fault(kind: &FaultKind) -> ServiceFault {
    match *kind {
        FaultKind::ErrorRate { rate } => ServiceFault::ErrorRate(rate),
        FaultKind::Latency { ms, .. } => ServiceFault::Latency(Duration::from_millis(ms)),
        FaultKind::Hang => ServiceFault::Hang,
        FaultKind::Unavailable => ServiceFault::Unavailable,
        FaultKind::Panic => ServiceFault::Panic,
        _ => ServiceFault::None,
    }
}

/// What a fault was, and when it really applied.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Its name.
    pub name: String,
    /// `service:NAME` or `proxy:NAME`.
    pub target: String,
    /// What it does, as in the scenario.
    pub kind: String,
    /// When it was due, in scenario seconds.
    pub planned_at_s: f64,
    /// When it was due to end.
    pub planned_end_s: f64,
    /// When it applied (`None`: skipped).
    pub applied_at_s: Option<f64>,
    /// When it was lifted.
    pub lifted_at_s: Option<f64>,
    /// Why it was skipped, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What went wrong applying or lifting it (a process that could not restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What faults can act on.
#[derive(Default)]
pub struct Targets<'a> {
    /// Test services by name.
    pub services: BTreeMap<String, FaultSwitch>,
    /// Running proxies by name.
    pub proxies: BTreeMap<String, &'a FaultProxy>,
    /// Proxies not started, with the reason.
    pub missing: BTreeMap<String, String>,
    /// Process services by name.
    pub processes: BTreeMap<String, &'a Process>,
}

impl Targets<'_> {
    /// Applies (`on`) or lifts `fault`; what went wrong, if anything did.
    async fn apply(&self, fault: &FaultSpec, on: bool) -> Option<String> {
        match fault.target.split_once(':') {
            Some(("process", name)) => {
                let process = self.processes.get(name)?;
                match (&fault.kind, on) {
                    (FaultKind::Kill { .. }, true) => process.kill().await,
                    (FaultKind::Kill { restart: true }, false) => {
                        if let Err(e) = process.spawn().await {
                            tracing::warn!(error = %e, fault = %fault.name, "restart failed");
                            return Some(format!("restart failed: {e}"));
                        }
                    }
                    (FaultKind::Stop, on) => process.pause(on).await,
                    _ => {}
                }
            }
            Some(("service", name)) => {
                if let Some(switch) = self.services.get(name) {
                    switch.set(if on {
                        service_fault(&fault.kind)
                    } else {
                        ServiceFault::None
                    });
                }
            }
            Some(("proxy", name)) => {
                let proxy = self.proxies.get(name)?;
                match (toxic(&fault.kind), on) {
                    (Some(t), true) => {
                        if let Err(error) = proxy.add_toxic(&fault.name, t) {
                            tracing::warn!(%error, fault = %fault.name, "toxic refused");
                        }
                    }
                    (Some(_), false) => {
                        proxy.remove_toxic(&fault.name);
                    }
                    (None, on) => proxy.set_mode(if on { Mode::Down } else { Mode::Forward }),
                }
            }
            _ => {}
        }
        None
    }

    fn skipped(&self, fault: &FaultSpec) -> Option<String> {
        let (_, name) = fault.target.split_once(':')?;
        fault
            .target
            .starts_with("proxy:")
            .then(|| self.missing.get(name).cloned())
            .flatten()
    }
}

/// Applies and lifts `faults` at their times from `t0`; returns what happened.
pub async fn run(faults: &[FaultSpec], targets: &Targets<'_>, t0: Instant) -> Vec<FaultRecord> {
    let mut records: Vec<FaultRecord> = faults
        .iter()
        .map(|f| FaultRecord {
            name: f.name.clone(),
            target: f.target.clone(),
            kind: describe(&f.kind),
            planned_at_s: f.at_s,
            planned_end_s: f.at_s + f.duration_s,
            applied_at_s: None,
            lifted_at_s: None,
            skipped: targets.skipped(f),
            note: None,
        })
        .collect();
    // (time, index, on), in time order; a fault's end before another's start at the same time.
    let mut events: Vec<(f64, usize, bool)> = faults
        .iter()
        .enumerate()
        .filter(|(i, _)| records[*i].skipped.is_none())
        .flat_map(|(i, f)| [(f.at_s, i, true), (f.at_s + f.duration_s, i, false)])
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    for (at, i, on) in events {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(at)).await;
        if let Some(note) = targets.apply(&faults[i], on).await {
            records[i].note = Some(note);
        }
        let now = t0.elapsed().as_secs_f64();
        if on {
            records[i].applied_at_s = Some(now);
        } else {
            records[i].lifted_at_s = Some(now);
        }
    }
    records
}

/// A fault's kind as the scenario would write it.
pub fn describe(kind: &FaultKind) -> String {
    match kind {
        FaultKind::ErrorRate { rate } => format!("error_rate {rate}"),
        FaultKind::Latency { ms, jitter_ms: 0 } => format!("latency {ms} ms"),
        FaultKind::Latency { ms, jitter_ms } => format!("latency {ms} ms ± {jitter_ms} ms"),
        FaultKind::Hang => "hang".into(),
        FaultKind::Unavailable => "unavailable".into(),
        FaultKind::Panic => "panic".into(),
        FaultKind::Reset => "reset".into(),
        FaultKind::Blackhole => "blackhole".into(),
        FaultKind::Bandwidth { bytes_per_second } => format!("bandwidth {bytes_per_second} B/s"),
        FaultKind::Slicer { bytes, delay_us } => format!("slicer {bytes} B / {delay_us} us"),
        FaultKind::Timeout { ms } => format!("timeout {ms} ms"),
        FaultKind::Down => "down".into(),
        FaultKind::Kill { restart: false } => "kill (SIGKILL)".into(),
        FaultKind::Kill { restart: true } => "kill (SIGKILL), restarted at the end".into(),
        FaultKind::Stop => "stop (SIGSTOP, then SIGCONT)".into(),
    }
}
