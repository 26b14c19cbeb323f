//! The DataStore family (`[store]`), from `plexus-datastore`: the `datastore` and
//! `audit` services, the database as a health component, and the configuration
//! history in the database.

pub use plexus_datastore::DataStoreFamily;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{Family, NodeSection};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_store_section_is_a_configuration_error() {
        let node = NodeSection::default();
        let section = json!({"url": "mysql://x"});
        let err = DataStoreFamily.check(Some(&section), &node).unwrap_err();
        assert!(err.to_string().contains("store.url"), "{err}");
        assert!(crate::AppError::from(err).is_config());
    }
}
