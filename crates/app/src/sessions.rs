//! The Sessions family (`[sessions]`), from `plexus-sessions`: the `session`
//! service in process, or on the Redis of `[redis]` (whose connection brings the
//! `redis` health component), announcing `session.expired` and `session.revoked`
//! on the node's bus.

pub use plexus_sessions::SessionsFamily;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{Family, NodeSection};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_sessions_section_is_a_configuration_error() {
        let node = NodeSection::default();
        let section = json!({"on_cap": "shrug"});
        let err = SessionsFamily::default()
            .check(Some(&section), &node)
            .unwrap_err();
        assert!(err.to_string().contains("sessions.on_cap"), "{err}");
        assert!(crate::AppError::from(err).is_config());
    }
}
