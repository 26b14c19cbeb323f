//! The Rate Limits family (`[limits]`), from `plexus-limits`: the `ratelimit`
//! service in process, or on the Redis of `[redis]` (whose connection brings the
//! `redis` health component) so every node enforces one limit.

pub use plexus_limits::LimitsFamily;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{Family, NodeSection};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_limits_section_is_a_configuration_error() {
        let node = NodeSection::default();
        let section = json!({"rules": {"api": {"limit": 0, "window_ms": 1000}}});
        let err = LimitsFamily::default()
            .check(Some(&section), &node)
            .unwrap_err();
        assert!(err.to_string().contains("limits.rules.api.limit"), "{err}");
        assert!(crate::AppError::from(err).is_config());
    }
}
