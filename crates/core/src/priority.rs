//! Event priorities: the four delivery lanes of every subscriber.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How urgently an event must be delivered. `Critical > High > Normal > Low`.
///
/// Each subscriber keeps one bounded lane per priority and always takes from the
/// highest non-empty lane, so a `Critical` event overtakes a backlog of lower ones
/// even when their lanes are full.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background work that may wait.
    Low = 0,
    /// The default.
    #[default]
    Normal = 1,
    /// Ahead of normal traffic.
    High = 2,
    /// Ahead of everything: alarms, shutdown, health transitions.
    Critical = 3,
}

impl Priority {
    /// Every priority, highest first: the order lanes are drained in.
    pub const HIGHEST_FIRST: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    /// The lane index of this priority: `Low` is 0, `Critical` is 3.
    pub const fn lane(self) -> usize {
        self as usize
    }

    /// The lower-case name used on the wire and in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Priority`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority {0:?}: expected one of critical, high, normal, low")]
pub struct ParsePriorityError(String);

impl FromStr for Priority {
    type Err = ParsePriorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "critical" => Ok(Priority::Critical),
            _ => Err(ParsePriorityError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_is_highest_and_lanes_follow_order() {
        assert!(Priority::Critical > Priority::High);
        assert!(Priority::High > Priority::Normal);
        assert!(Priority::Normal > Priority::Low);
        let lanes: Vec<usize> = Priority::HIGHEST_FIRST.iter().map(|p| p.lane()).collect();
        assert_eq!(lanes, [3, 2, 1, 0]);
    }

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!("Critical".parse::<Priority>(), Ok(Priority::Critical));
        assert!("urgent".parse::<Priority>().is_err());
    }
}
