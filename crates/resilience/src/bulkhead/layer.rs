//! The bulkhead as a [`tower::Layer`].

use tower::Layer;

use super::{Bulkhead, BulkheadService};

/// Puts services behind one shared [`Bulkhead`].
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// A layer over `bulkhead`.
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.bulkhead.layer(inner)
    }
}
