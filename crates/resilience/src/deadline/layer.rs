//! Deadlines as a [`tower::Layer`].

use std::time::Duration;

use tower::Layer;

use super::{Deadline, DeadlineService};

/// Gives every call a deadline `timeout` from when it is made.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    deadline: Deadline,
}

impl DeadlineLayer {
    /// A layer with this timeout.
    pub fn new(timeout: Duration) -> Self {
        Self {
            deadline: Deadline::new(timeout),
        }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.deadline.layer(inner)
    }
}
