//! The bounds a supervisor works within.

use crate::SupervisorError;

/// Queue sizes and limits of one supervisor. Every bound it keeps is a field here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// How many [`crate::SupervisorEvent`]s the event channel holds for each
    /// receiver ([`crate::SupervisorHandle::events`]); a receiver that falls further
    /// behind skips the oldest and is told how many it missed. Default 256.
    pub event_capacity: usize,
    /// How many events wait to be published on the bus. The supervisor never waits
    /// for the bus: when this queue is full an event is not published, a warning is
    /// logged and [`crate::SupervisorHandle::unpublished_events`] counts it.
    /// Default 256.
    pub bus_queue_capacity: usize,
    /// How many commands (report a failure, restart a child, shut down) wait for the
    /// supervisor at once; callers beyond that wait their turn. Default 64.
    pub command_capacity: usize,
    /// The longest line of a child process's output logged as one event, in bytes;
    /// the rest of a longer line is dropped and the event is marked `truncated`.
    /// Default 8192.
    pub max_line_bytes: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            event_capacity: 256,
            bus_queue_capacity: 256,
            command_capacity: 64,
            max_line_bytes: 8192,
        }
    }
}

impl SupervisorConfig {
    /// The largest value accepted for any capacity field.
    pub const MAX_CAPACITY: usize = 1 << 20;
    /// The largest value accepted for [`max_line_bytes`](Self::max_line_bytes).
    pub const MAX_LINE_BYTES: usize = 1 << 20;

    /// Checks every field; `supervisor` names the supervisor in the error.
    pub fn validate(&self, supervisor: &str) -> Result<(), SupervisorError> {
        let fields = [
            ("event_capacity", self.event_capacity, Self::MAX_CAPACITY),
            (
                "bus_queue_capacity",
                self.bus_queue_capacity,
                Self::MAX_CAPACITY,
            ),
            (
                "command_capacity",
                self.command_capacity,
                Self::MAX_CAPACITY,
            ),
            ("max_line_bytes", self.max_line_bytes, Self::MAX_LINE_BYTES),
        ];
        for (field, value, max) in fields {
            if value == 0 || value > max {
                return Err(SupervisorError::InvalidConfig {
                    supervisor: supervisor.to_owned(),
                    field,
                    reason: format!("is {value}; it must be between 1 and {max}"),
                });
            }
        }
        Ok(())
    }
}
