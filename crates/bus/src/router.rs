//! The routing table: which subscriptions an envelope goes to.
//!
//! Publishers read an immutable snapshot (`ArcSwap`), so publishing takes no lock;
//! subscribing and unsubscribing build a new snapshot under a mutex. Exact patterns
//! are indexed by topic, wildcard patterns are scanned; small tables are scanned whole.

use std::collections::HashMap;
use std::sync::Arc;

use plexus_core::{Envelope, Member, TopicPattern};

use crate::SubscriptionId;
use crate::config::{HeaderFilter, Overflow};
use crate::queue::Queue;

/// Below this many routes a linear scan beats hashing the topic.
const SCAN_LIMIT: usize = 8;

/// One subscription as the router sees it.
pub(crate) struct Route {
    pub(crate) id: SubscriptionId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) pattern: TopicPattern,
    pub(crate) member: Option<Member>,
    pub(crate) filters: Box<[HeaderFilter]>,
    pub(crate) overflow: Overflow,
    pub(crate) queue: Arc<Queue>,
}

impl Route {
    /// Whether `envelope` is for this subscription, its topic aside.
    fn addressed(&self, envelope: &Envelope) -> bool {
        envelope.target().admits(self.member.as_ref())
            && self.filters.iter().all(|f| f.admits(envelope.headers()))
    }
}

/// An immutable snapshot of every route.
#[derive(Default)]
pub(crate) struct Table {
    all: Vec<Arc<Route>>,
    exact: HashMap<Box<str>, Vec<Arc<Route>>>,
    wild: Vec<Arc<Route>>,
}

impl Table {
    pub(crate) fn build(all: Vec<Arc<Route>>) -> Self {
        let mut exact: HashMap<Box<str>, Vec<Arc<Route>>> = HashMap::new();
        let mut wild = Vec::new();
        if all.len() > SCAN_LIMIT {
            for route in &all {
                if route.pattern.is_exact() {
                    exact
                        .entry(route.pattern.as_str().into())
                        .or_default()
                        .push(Arc::clone(route));
                } else {
                    wild.push(Arc::clone(route));
                }
            }
        }
        Self { all, exact, wild }
    }

    pub(crate) fn routes(&self) -> &[Arc<Route>] {
        &self.all
    }

    /// Calls `each` for every route `envelope` goes to.
    pub(crate) fn for_each_match(&self, envelope: &Envelope, mut each: impl FnMut(&Arc<Route>)) {
        let topic = envelope.topic().as_str();
        let mut visit = |route: &Arc<Route>| {
            if route.addressed(envelope) {
                each(route);
            }
        };
        if self.all.len() <= SCAN_LIMIT {
            self.all
                .iter()
                .filter(|r| r.pattern.matches_str(topic))
                .for_each(&mut visit);
            return;
        }
        if let Some(routes) = self.exact.get(topic) {
            routes.iter().for_each(&mut visit);
        }
        self.wild
            .iter()
            .filter(|r| r.pattern.matches_str(topic))
            .for_each(visit);
    }
}
