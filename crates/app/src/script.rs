//! The ScriptEngine family (`[script]`), from `plexus-script`: the `script` service
//! running sandboxed rhai scripts on its own threads, calling services through the
//! call path with their caller's rights; stored scripts in the DataStore.

pub use plexus_script::ScriptFamily;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{Family, NodeSection};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_script_section_is_a_configuration_error() {
        let node = NodeSection::default();
        let section = json!({"max_operations": 0});
        let err = ScriptFamily.check(Some(&section), &node).unwrap_err();
        assert!(err.to_string().contains("script.max_operations"), "{err}");
        assert!(crate::AppError::from(err).is_config());
    }
}
