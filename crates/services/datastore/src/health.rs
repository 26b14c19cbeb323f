//! The database as a health component (`database`, a dependency): a failed
//! [`Store::ping`] is a check failure, and the heal action reconnects
//! ([`Store::reconnect`]), so the node's monitor sees the database go and come back.

use plexus_registry::health::{CheckError, ComponentKind, ComponentSpec, HealAction, check_fn};
use plexus_store::Store;

/// The component's name in `node.health` and `/health`.
pub const COMPONENT: &str = "database";

/// The health component of `store`'s database, with its reconnect heal action.
pub fn database_component(store: Store) -> ComponentSpec {
    let heal_store = store.clone();
    ComponentSpec::new(
        COMPONENT,
        ComponentKind::Dependency,
        check_fn(move || {
            let store = store.clone();
            async move {
                store
                    .ping()
                    .await
                    .map(|_| plexus_core::HealthReport::healthy())
                    .map_err(|e| CheckError::new(e.to_string()))
            }
        }),
    )
    .with_heal(HealAction::reconnect("reconnect", move || {
        let store = heal_store.clone();
        async move { store.reconnect().await }
    }))
}
