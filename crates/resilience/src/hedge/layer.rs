//! Hedging as a [`tower::Layer`].

use tower::Layer;

use super::{Hedge, Idempotent};
use crate::BoxError;

/// Wraps services with a [`Hedge`] policy.
#[derive(Clone, Debug)]
pub struct HedgeLayer<Req> {
    hedge: Hedge<Req>,
}

impl<Req> HedgeLayer<Req> {
    /// A layer applying `hedge`.
    pub fn new(hedge: Hedge<Req>) -> Self {
        Self { hedge }
    }
}

impl<S, Req> Layer<S> for HedgeLayer<Req>
where
    S: tower::Service<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Clone,
{
    type Service = tower::hedge::Hedge<S, Idempotent<Req>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.hedge.layer(inner)
    }
}
