//! [`InferenceFamily`]: the InferenceEngine entering the node through the family
//! door. Its `[inference]` section builds the engine (providers, aliases,
//! breakers), the `inference` service, its metrics and the OpenAI-compatible HTTP
//! routes the gateway serves; once the node runs, the engine is attached to it
//! (spend records and streams go out on its bus).

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};

use crate::config::{InferenceConfig, SECTION};
use crate::{Inference, InferenceMetrics, InferenceService};

/// The InferenceEngine family.
#[derive(Clone, Copy, Debug, Default)]
pub struct InferenceFamily;

#[plexus_core::async_trait]
impl SectionFamily for InferenceFamily {
    type Config = InferenceConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: InferenceConfig,
        _node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !settings.enabled {
            return Ok(Parts::default());
        }
        let metrics = InferenceMetrics::new();
        let providers = settings.providers.len();
        let engine = Inference::new(settings, metrics.clone())
            .map_err(|e| FamilyError::invalid(SECTION, e.to_string()))?;
        tracing::info!(providers, "inference engine open");
        let attach = engine.clone();
        Ok(Parts::default()
            .service(Arc::new(InferenceService::new(engine.clone())))
            .routes(crate::http::router(engine))
            .metrics(move |node| {
                node.metrics()
                    .with_registry(|registry| metrics.register(registry));
                attach.attach(node);
            }))
    }
}
