//! [`Id`]: a request id kept as the JSON text it was sent as.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A request id, held as its JSON text so that it is answered byte for byte: `1.0`
/// stays `1.0` and `123456789012345678901234567890` keeps every digit, which a
/// parsed number would not (without serde_json's `arbitrary_precision`, which Plexus
/// does not turn on). A valid id is a string, a number or `null`.
#[derive(Clone)]
pub struct Id(Box<RawValue>);

impl Id {
    /// `null`.
    pub fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }

    /// The id `text` (a JSON string).
    pub fn string(text: &str) -> Self {
        Self::from_value(&Value::String(text.to_owned()))
    }

    /// The id of a JSON value (its text as serde_json writes it).
    pub fn from_value(value: &Value) -> Self {
        serde_json::value::to_raw_value(value).map_or_else(|_| Self::null(), Self)
    }

    /// Wraps raw JSON text; `None` when it is not a string, a number or `null`, or is
    /// one that serde_json cannot read (a number beyond the range of a double, such
    /// as `1e400`; a string with a lone surrogate, such as `"\ud800"`): an answer
    /// carrying it back could not be read by serde_json, and so by a Plexus client.
    pub fn from_raw(raw: Box<RawValue>) -> Option<Self> {
        let valid = match raw.get().as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => serde_json::from_str::<Value>(raw.get()).is_ok(),
            Some(b'n') => raw.get() == "null",
            _ => false,
        };
        valid.then_some(Self(raw))
    }

    /// The JSON text, exactly as received.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The raw value.
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// Whether the id is `null`.
    pub fn is_null(&self) -> bool {
        self.get() == "null"
    }

    /// The text of a string id; `None` for a number or `null`.
    pub fn as_string(&self) -> Option<String> {
        if self.get().starts_with('"') {
            serde_json::from_str(self.get()).ok()
        } else {
            None
        }
    }

    /// The id as a JSON value. A number beyond what serde_json holds exactly
    /// (an integer over 64 bits, or `1.0` written as `1.0`) loses its exact text
    /// here: answer with the `Id` itself.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Id {}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.get())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strings_numbers_and_null_are_ids() {
        let raw = |t: &str| RawValue::from_string(t.to_owned()).unwrap();
        for ok in [
            "1",
            "1.0",
            "-3",
            "\"x\"",
            "null",
            "123456789012345678901234567890",
        ] {
            assert_eq!(Id::from_raw(raw(ok)).unwrap().get(), ok);
        }
        // Found by fuzz targets jsonrpc_request, mcp_body and ws_message: `21e308` and
        // `"n-1\ud800"` were answered as sent, and the answer could not be read back.
        for no in [
            "{}",
            "[]",
            "true",
            "false",
            "21e308",
            "-1e400",
            "2.5e8901234567890",
            r#""n-1\ud800""#,
            r#""\udc00x""#,
        ] {
            assert!(Id::from_raw(raw(no)).is_none(), "{no}");
        }
        assert_eq!(Id::string("n-7").as_string().as_deref(), Some("n-7"));
        assert_eq!(Id::from_raw(raw("7")).unwrap().as_string(), None);
        assert!(Id::null().is_null());
    }
}
