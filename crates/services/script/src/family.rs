//! [`ScriptFamily`]: the script engine entering the node through the family door.
//! Its `[script]` section builds the engine (starting its pool of threads), the
//! `script` service and its metrics; once the node runs, the service is attached to
//! it so scripts can call through the call path and stored scripts reach the
//! DataStore, and its triggers subscribe to the bus.

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};

use crate::config::{SECTION, ScriptConfig};
use crate::{ScriptEngine, ScriptMetrics, ScriptService};

/// The ScriptEngine family.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScriptFamily;

#[plexus_core::async_trait]
impl SectionFamily for ScriptFamily {
    type Config = ScriptConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: ScriptConfig,
        _node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !settings.enabled {
            return Ok(Parts::default());
        }
        let metrics = ScriptMetrics::new();
        let threads = settings.max_concurrent;
        let triggers = settings.triggers.clone();
        let engine = ScriptEngine::new(settings, metrics.clone())
            .map_err(|e| FamilyError::invalid("script.max_concurrent", e.to_string()))?;
        tracing::info!(threads, "script engine open");
        let service = ScriptService::new(engine.clone());
        let attach = service.clone();
        Ok(Parts::default()
            .service(Arc::new(service))
            .metrics(move |node| {
                node.metrics()
                    .with_registry(|registry| metrics.register(registry));
                attach.attach(node);
                crate::trigger::start(&engine, node, &triggers);
            }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::Family;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn on_by_default_and_off_when_disabled() {
        let node = NodeSection::default();
        let parts = ScriptFamily.open(None, &node).await.unwrap();
        assert_eq!(parts.services.len(), 1);
        let off = json!({"enabled": false});
        let parts = ScriptFamily.open(Some(&off), &node).await.unwrap();
        assert!(parts.services.is_empty());
    }
}
