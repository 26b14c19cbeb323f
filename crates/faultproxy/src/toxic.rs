//! Toxics: named faults that shape a proxy's traffic, as Toxiproxy names them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault on the traffic of every connection, in both directions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Toxic {
    /// Each chunk waits `ms`, give or take up to `jitter_ms` (uniformly drawn).
    Latency {
        /// The added delay.
        ms: u64,
        /// The most the delay varies either way.
        #[serde(default)]
        jitter_ms: u64,
    },
    /// At most this many bytes per second.
    Bandwidth {
        /// The rate.
        bytes_per_second: u64,
    },
    /// Chunks are cut into slices of `bytes`, `delay_us` apart.
    Slicer {
        /// The slice size.
        bytes: usize,
        /// The pause between slices.
        #[serde(default)]
        delay_us: u64,
    },
    /// Connections are reset (TCP RST) after `after_ms`; new ones too.
    ResetPeer {
        /// How long a connection lives first.
        #[serde(default)]
        after_ms: u64,
    },
    /// Nothing is forwarded; connections stay open.
    Blackhole,
    /// Nothing is forwarded, and each connection is closed after `ms` (0: never).
    Timeout {
        /// How long a connection hangs before it is closed.
        ms: u64,
    },
}

/// A toxic that cannot apply, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid toxic: {field}: {reason}")]
pub struct ToxicError {
    /// The field at fault.
    pub field: &'static str,
    /// Why.
    pub reason: &'static str,
}

impl ToxicError {
    pub(crate) fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}

/// The longest delay a toxic may add, in milliseconds (ten minutes).
const MAX_MS: u64 = 600_000;

impl Toxic {
    /// Checks the toxic's numbers.
    pub fn validate(&self) -> Result<(), ToxicError> {
        match *self {
            Toxic::Latency { ms, jitter_ms } if ms > MAX_MS || jitter_ms > MAX_MS => {
                Err(ToxicError::new("ms", "at most 600000"))
            }
            Toxic::Bandwidth {
                bytes_per_second: 0,
            } => Err(ToxicError::new("bytes_per_second", "must be positive")),
            Toxic::Slicer { bytes: 0, .. } => Err(ToxicError::new("bytes", "must be positive")),
            Toxic::Slicer { delay_us, .. } if delay_us > MAX_MS * 1000 => {
                Err(ToxicError::new("delay_us", "at most 600000000"))
            }
            Toxic::ResetPeer { after_ms: ms } | Toxic::Timeout { ms } if ms > MAX_MS => {
                Err(ToxicError::new("ms", "at most 600000"))
            }
            _ => Ok(()),
        }
    }
}

/// How a connection stops forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stall {
    /// Until the toxics change.
    Forever,
    /// Then closed after this long.
    Close(Duration),
    /// Then reset after this long.
    Reset(Duration),
}

/// The toxics in force, folded into what a copy loop does.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shaping {
    pub(crate) stall: Option<Stall>,
    latency_ms: u64,
    jitter_ms: u64,
    bytes_per_second: Option<u64>,
    pub(crate) slice: Option<usize>,
    pub(crate) slice_delay: Duration,
}

impl Shaping {
    /// Folds `toxics`: delays add up; the strongest stall (reset, then close, then
    /// forever) wins; the smallest bandwidth and slice win.
    pub(crate) fn of<'a>(toxics: impl Iterator<Item = &'a Toxic>) -> Self {
        let mut s = Shaping::default();
        for toxic in toxics {
            match *toxic {
                Toxic::Latency { ms, jitter_ms } => {
                    s.latency_ms += ms;
                    s.jitter_ms += jitter_ms;
                }
                Toxic::Bandwidth { bytes_per_second } => {
                    s.bytes_per_second = Some(
                        s.bytes_per_second
                            .map_or(bytes_per_second, |b| b.min(bytes_per_second)),
                    );
                }
                Toxic::Slicer { bytes, delay_us } => {
                    s.slice = Some(s.slice.map_or(bytes, |b| b.min(bytes)));
                    s.slice_delay = s.slice_delay.max(Duration::from_micros(delay_us));
                }
                Toxic::ResetPeer { after_ms } => {
                    s.stall = Some(Stall::Reset(Duration::from_millis(after_ms)));
                }
                Toxic::Timeout { ms } => {
                    if !matches!(s.stall, Some(Stall::Reset(_))) {
                        s.stall = Some(if ms == 0 {
                            Stall::Forever
                        } else {
                            Stall::Close(Duration::from_millis(ms))
                        });
                    }
                }
                Toxic::Blackhole => {
                    if s.stall.is_none() {
                        s.stall = Some(Stall::Forever);
                    }
                }
            }
        }
        s
    }

    /// The wait before forwarding a chunk of `n` bytes, if any.
    pub(crate) fn delay(&self, n: usize) -> Option<Duration> {
        let mut ms = self.latency_ms as f64;
        if self.jitter_ms > 0 {
            let j = self.jitter_ms as f64;
            ms += rand::random_range(-j..=j);
        }
        let mut delay = Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        if let Some(rate) = self.bytes_per_second {
            delay += Duration::from_secs_f64(n as f64 / rate as f64);
        }
        (!delay.is_zero()).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toxics_fold_into_one_shaping() {
        let toxics = [
            Toxic::Latency {
                ms: 10,
                jitter_ms: 0,
            },
            Toxic::Latency {
                ms: 5,
                jitter_ms: 0,
            },
            Toxic::Blackhole,
            Toxic::ResetPeer { after_ms: 3 },
        ];
        let s = Shaping::of(toxics.iter());
        assert_eq!(s.delay(1), Some(Duration::from_millis(15)));
        assert_eq!(s.stall, Some(Stall::Reset(Duration::from_millis(3))));
        let b = Shaping::of(
            [Toxic::Bandwidth {
                bytes_per_second: 1000,
            }]
            .iter(),
        );
        assert_eq!(b.delay(500), Some(Duration::from_millis(500)));
    }

    #[test]
    fn bad_numbers_are_refused_by_name() {
        let e = Toxic::Bandwidth {
            bytes_per_second: 0,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "bytes_per_second");
        let json = r#"{"kind":"latency","ms":5,"jiter_ms":1}"#;
        assert!(serde_json::from_str::<Toxic>(json).is_err());
    }
}
