//! The Cache family (`[cache]`), from `plexus-cache`: the `cache` service on moka,
//! or on the Redis of `[redis]` (whose connection brings the `redis` health
//! component).

pub use plexus_cache::CacheFamily;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{Family, NodeSection};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_cache_section_is_a_configuration_error() {
        let node = NodeSection::default();
        let section = json!({"backend": "memcached"});
        let err = CacheFamily::default()
            .check(Some(&section), &node)
            .unwrap_err();
        assert!(err.to_string().contains("cache.backend"), "{err}");
        assert!(crate::AppError::from(err).is_config());
    }
}
