//! JSON sizes: how many bytes a value takes as compact JSON text, measured without
//! building the text (limits on documents, results and client fields use it).

use serde_json::Value;

/// The length of `value`'s compact JSON text, in bytes, without writing it.
pub fn json_len(value: &Value) -> usize {
    /// Counts what is written to it.
    struct Counter(usize);

    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let mut counter = Counter(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_length_is_that_of_the_compact_text() {
        for value in [json!({"a": 1}), json!(["ü", null, 2.5]), json!("q\"")] {
            assert_eq!(json_len(&value), serde_json::to_vec(&value).unwrap().len());
        }
    }
}
