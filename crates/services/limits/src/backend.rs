//! [`LimiterBackend`]: what a backend does. It keeps each key's state and applies a
//! rule's arithmetic ([`rule`](crate::rule)) to it atomically; the checks of input
//! and the counting are the [`Limiter`](crate::Limiter)'s.

use std::fmt::Debug;

use crate::{LimitError, Raw, Rule};

/// One decision to make: `cost` units of `key` under `rule`, taken only when
/// `consume` (and allowed).
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// The rule (its name keeps its keys apart from other rules').
    pub rule: &'a Rule,
    /// The caller's key.
    pub key: &'a str,
    /// The units asked for (at least 1, at most the rule's capacity).
    pub cost: u64,
    /// Take the units if allowed (`acquire`), or only say (`check`).
    pub consume: bool,
}

/// Where a limiter keeps its state.
#[plexus_core::async_trait]
pub trait LimiterBackend: Debug + Send + Sync + 'static {
    /// Its name (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Decides `ask` atomically: no other call on the same key and rule sees the
    /// state between the decision and the taking.
    async fn decide(&self, ask: Ask<'_>) -> Result<Raw, LimitError>;

    /// Forgets what `key` took under `rule`; whether there was anything.
    async fn reset(&self, rule: &Rule, key: &str) -> Result<bool, LimitError>;
}
