//! [`DslFamily`]: the command language entering the node through the family door.
//! Its `[dsl]` section builds the engine and the `dsl` service; once the node runs,
//! the service is attached to it so programs see its registry and call through its
//! call path.

use std::sync::Arc;

use plexus_node::family::{NodeSection, Parts, SectionFamily};

use crate::config::{DslConfig, SECTION};
use crate::{Dsl, DslService};

/// The command-language family.
#[derive(Clone, Copy, Debug, Default)]
pub struct DslFamily;

#[plexus_core::async_trait]
impl SectionFamily for DslFamily {
    type Config = DslConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: DslConfig,
        _node: &NodeSection,
    ) -> Result<Parts, plexus_node::family::FamilyError> {
        if !settings.enabled {
            return Ok(Parts::default());
        }
        let service = DslService::new(Dsl::new(settings));
        let attach = service.clone();
        Ok(Parts::default()
            .service(Arc::new(service))
            .metrics(move |node| attach.attach(node)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::Family;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn on_by_default_off_when_disabled_and_bad_settings_are_named() {
        let node = NodeSection::default();
        assert_eq!(DslFamily.open(None, &node).await.unwrap().services.len(), 1);
        let off = json!({"enabled": false});
        assert!(
            DslFamily
                .open(Some(&off), &node)
                .await
                .unwrap()
                .services
                .is_empty()
        );
        let bad = json!({"max_calls": 0});
        let Err(e) = DslFamily.open(Some(&bad), &node).await else {
            panic!("max_calls = 0 was accepted");
        };
        assert!(e.to_string().contains("dsl.max_calls"), "{e}");
    }
}
