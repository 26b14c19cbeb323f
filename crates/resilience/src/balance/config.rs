//! The balancer's configuration.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How the balancer chooses among the available instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each instance in turn.
    #[default]
    RoundRobin,
    /// At random, in proportion to each instance's weight.
    Weighted,
    /// The instance with the fewest calls in flight (ties taken in turn).
    LeastOutstanding,
    /// Two instances at random; the one with fewer calls in flight.
    PowerOfTwoChoices,
    /// The instance owning the request's key on a hash ring, so one key keeps going
    /// to one instance while the set allows it.
    ConsistentHash,
}

/// The balancer's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalancerConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// Points on the hash ring per unit of weight (consistent hashing only).
    pub virtual_nodes: u32,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::RoundRobin,
            virtual_nodes: 100,
        }
    }
}

impl BalancerConfig {
    /// Rejects nonsense, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::error::check_positive("virtual_nodes", self.virtual_nodes.into())?;
        if self.virtual_nodes > 10_000 {
            return Err(ConfigError::new(
                "virtual_nodes",
                "is over the maximum 10000",
            ));
        }
        Ok(())
    }
}
