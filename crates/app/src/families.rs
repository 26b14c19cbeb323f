//! The built-in service families, each from its own crate and behind its own
//! feature, and the order [`default_families`] opens them in.
//!
//! | family | crate | section | services |
//! | --- | --- | --- | --- |
//! | [`RedisFamily`] | `plexus-redis` | `[redis]` | none: the one connection the others share |
//! | [`DataStoreFamily`] | `plexus-datastore` | `[store]` | `datastore`, `audit` |
//! | [`CacheFamily`] | `plexus-cache` | `[cache]` | `cache` |
//! | [`PubSubFamily`] | `plexus-pubsub` | `[pubsub]` | `pubsub` |
//! | [`LimitsFamily`] | `plexus-limits` | `[limits]` | `ratelimit` |
//! | [`LocksFamily`] | `plexus-locks` | `[locks]` | `lock` |
//! | [`SessionsFamily`] | `plexus-sessions` | `[sessions]` | `session` |
//! | [`ScriptFamily`] | `plexus-script` | `[script]` | `script` |
//! | [`ClusterFamily`] | `plexus-cluster` | `[cluster]` | none: the link that makes the node one of several |
//! | [`InferenceFamily`] | `plexus-inference` | `[inference]` | `inference`, and `/v1/chat/completions`, `/v1/models` on the gateway |
//! | [`DslFamily`] | `plexus-dsl` | `[dsl]` | `dsl` |
//! | [`JobsFamily`] | `plexus-jobs` | `[jobs]` | `jobs` |

use plexus_node::family::Family;

#[cfg(feature = "cache")]
pub use plexus_cache::CacheFamily;
#[cfg(feature = "cluster")]
pub use plexus_cluster::ClusterFamily;
#[cfg(feature = "datastore")]
pub use plexus_datastore::DataStoreFamily;
#[cfg(feature = "dsl")]
pub use plexus_dsl::DslFamily;
#[cfg(feature = "inference")]
pub use plexus_inference::InferenceFamily;
#[cfg(feature = "jobs")]
pub use plexus_jobs::JobsFamily;
#[cfg(feature = "limits")]
pub use plexus_limits::LimitsFamily;
#[cfg(feature = "locks")]
pub use plexus_locks::LocksFamily;
#[cfg(feature = "pubsub")]
pub use plexus_pubsub::PubSubFamily;
#[cfg(feature = "redis")]
pub use plexus_redis::{RedisFamily, RedisSlot};
#[cfg(feature = "script")]
pub use plexus_script::ScriptFamily;
#[cfg(feature = "sessions")]
pub use plexus_sessions::SessionsFamily;

/// The built-in service families, in the order they open and their services start.
/// A new family is one more line here. `[redis]` comes first: the families that
/// keep state on Redis reach its one connection through its slot.
pub fn default_families() -> Vec<Box<dyn Family>> {
    #[cfg(feature = "redis")]
    let redis = RedisFamily::new();
    #[cfg(feature = "datastore")]
    let datastore = DataStoreFamily::new();
    vec![
        #[cfg(feature = "redis")]
        Box::new(redis.clone()),
        #[cfg(feature = "datastore")]
        Box::new(datastore.clone()),
        #[cfg(feature = "cache")]
        Box::new(CacheFamily::new(redis.slot())),
        #[cfg(feature = "pubsub")]
        Box::new(PubSubFamily::new(redis.slot())),
        #[cfg(feature = "limits")]
        Box::new(LimitsFamily::new(redis.slot())),
        #[cfg(feature = "locks")]
        Box::new(LocksFamily::new(redis.slot())),
        #[cfg(feature = "sessions")]
        Box::new(SessionsFamily::new(redis.slot())),
        #[cfg(feature = "script")]
        Box::new(ScriptFamily),
        #[cfg(feature = "cluster")]
        Box::new(ClusterFamily),
        #[cfg(feature = "inference")]
        Box::new(InferenceFamily),
        #[cfg(feature = "dsl")]
        Box::new(DslFamily),
        #[cfg(all(feature = "jobs", feature = "datastore"))]
        Box::new(JobsFamily::new(redis.slot()).with_datastore(datastore.slot())),
        #[cfg(all(feature = "jobs", not(feature = "datastore")))]
        Box::new(JobsFamily::new(redis.slot())),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::NodeSection;
    use serde_json::json;

    use super::*;

    /// Each family's bad section is a configuration error naming the key.
    #[test]
    fn a_bad_section_is_a_configuration_error_naming_the_key() {
        let node = NodeSection::default();
        let cases: Vec<(Box<dyn Family>, serde_json::Value, &str)> = vec![
            #[cfg(feature = "datastore")]
            (
                Box::new(DataStoreFamily::new()),
                json!({"url": "mysql://x"}),
                "store.url",
            ),
            #[cfg(feature = "cache")]
            (
                Box::new(CacheFamily::default()),
                json!({"backend": "memcached"}),
                "cache.backend",
            ),
            #[cfg(feature = "pubsub")]
            (
                Box::new(PubSubFamily::default()),
                json!({"topics": ["a..b"]}),
                "pubsub.topics[0]",
            ),
            #[cfg(feature = "limits")]
            (
                Box::new(LimitsFamily::default()),
                json!({"rules": {"api": {"limit": 0, "window_ms": 1000}}}),
                "limits.rules.api.limit",
            ),
            #[cfg(feature = "locks")]
            (
                Box::new(LocksFamily::default()),
                json!({"max_lease_ms": 0}),
                "locks.max_lease_ms",
            ),
            #[cfg(feature = "inference")]
            (
                Box::new(InferenceFamily),
                json!({"models": {"fast": [{"provider": "nowhere", "model": "m"}]}}),
                "inference.models.fast[0].provider",
            ),
            #[cfg(feature = "sessions")]
            (
                Box::new(SessionsFamily::default()),
                json!({"on_cap": "shrug"}),
                "sessions.on_cap",
            ),
            #[cfg(feature = "cluster")]
            (
                Box::new(ClusterFamily),
                json!({"nats_url": "nats://127.0.0.1:4222", "call_prefix": "a.*"}),
                "cluster.call_prefix",
            ),
            #[cfg(feature = "jobs")]
            (
                Box::new(JobsFamily::default()),
                json!({"lease_ms": 0}),
                "jobs.lease_ms",
            ),
        ];
        for (family, section, key) in cases {
            let err = family.check(Some(&section), &node).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
            assert!(crate::AppError::from(err).is_config(), "{key}");
        }
    }
}
