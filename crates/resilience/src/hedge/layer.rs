//! Hedging as a [`tower::Layer`].

use tower::Layer;

use super::{Hedge, HedgeService};

/// Wraps services with a [`Hedge`] policy; every service it makes shares the policy's
/// latency record.
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

impl<S, Req> Layer<S> for HedgeLayer<Req> {
    type Service = HedgeService<S, Req>;

    fn layer(&self, inner: S) -> Self::Service {
        self.hedge.layer(inner)
    }
}
