//! The Locks family (`[locks]`), from `plexus-locks`: the `lock` service in
//! process, on the Redis of `[redis]` (whose connection brings the `redis` health
//! component), or on PostgreSQL at `locks.postgres_url`.

pub use plexus_locks::LocksFamily;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{Family, NodeSection};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_locks_section_is_a_configuration_error() {
        let node = NodeSection::default();
        let section = json!({"max_lease_ms": 0});
        let err = LocksFamily::default()
            .check(Some(&section), &node)
            .unwrap_err();
        assert!(err.to_string().contains("locks.max_lease_ms"), "{err}");
        assert!(crate::AppError::from(err).is_config());
    }
}
