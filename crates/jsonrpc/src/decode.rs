//! Decoding: a payload as one message, a batch, or a refusal; each request object
//! checked field by field, with repeated keys refused and the id kept as sent.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{Id, RpcError};

/// One valid request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `None` for a notification (no answer).
    pub id: Option<Id>,
    /// The method, such as `storage.get` or `plexus.publish`.
    pub method: String,
    /// The params, `Value::Null` when absent.
    pub params: Value,
    /// The request's `plexus` member, an object when present: the node's extension
    /// carrying the conversation a call belongs to (`correlation_id`,
    /// `causation_id`), as a peer passes them on; the gateway reads it.
    pub plexus: Option<serde_json::Map<String, Value>>,
}

/// An element that is not a valid request, with the id to answer it with (`null`
/// when the id could not be read).
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// The id for the answer.
    pub id: Id,
    /// Why the element was refused (-32600).
    pub error: RpcError,
}

/// A response from the peer (on a connection where the node also calls the peer,
/// such as `/ws`).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The id of the request it answers, when it has a valid one.
    pub id: Option<Id>,
    /// What it says.
    pub body: ResponseBody,
}

/// What a response says.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseBody {
    /// `result`.
    Result(Value),
    /// `error`, as sent.
    Error(Value),
    /// Neither can be trusted (both present, or a key repeated): why.
    Malformed(String),
}

/// One element of a payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A valid request or notification.
    Request(Request),
    /// A response (only when [`decode`] is asked to recognise them).
    Response(Response),
    /// Not a valid request.
    Invalid(Rejected),
}

/// What a payload turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// One element.
    Single(Message),
    /// A batch of elements, in order (responses inside a batch are invalid
    /// requests).
    Batch(Vec<Result<Request, Rejected>>),
    /// An answer that is final before anything runs: parse error, empty or oversized
    /// batch. Answered with `id: null`.
    Refused(RpcError),
}

/// Decodes `bytes`: a parse error, a single message, or a batch of at most
/// `max_batch` elements. With `responses`, an object with `result` or `error` and no
/// `method` is a [`Message::Response`]; without, it is checked as a request (and
/// refused).
pub fn decode(bytes: &[u8], max_batch: usize, responses: bool) -> Payload {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let top = TopSeed {
        max_batch,
        responses,
    }
    .deserialize(&mut deserializer)
    .and_then(|top| deserializer.end().map(|()| top));
    match top {
        Err(e) => {
            // The parser's own words, as they read for a plain `Value`.
            let reason = serde_json::from_slice::<Value>(bytes)
                .err()
                .map_or_else(|| e.to_string(), |e| e.to_string());
            Payload::Refused(RpcError::parse_error(reason))
        }
        Ok(Top::Single(element)) => Payload::Single(element.into_message(responses)),
        Ok(Top::Batch(_, 0)) => {
            Payload::Refused(RpcError::invalid_request("a batch must not be empty"))
        }
        Ok(Top::Batch(_, total)) if total > max_batch => Payload::Refused(
            RpcError::invalid_request(format!(
                "a batch holds at most {max_batch} requests; this one has {total}"
            ))
            .with_data(serde_json::json!({
                "reason": format!("a batch holds at most {max_batch} requests"),
                "max_batch": max_batch,
                "batch": total,
            })),
        ),
        Ok(Top::Batch(elements, _)) => Payload::Batch(
            elements
                .into_iter()
                .map(|element| match element.into_message(false) {
                    Message::Request(request) => Ok(request),
                    Message::Invalid(rejected) => Err(rejected),
                    // Not produced without `responses`.
                    Message::Response(response) => Err(Rejected {
                        id: response.id.unwrap_or_else(Id::null),
                        error: RpcError::invalid_request("`method` is missing"),
                    }),
                })
                .collect(),
        ),
    }
}

/// The top level of a payload.
enum Top {
    Single(Element),
    /// The elements read (at most `max_batch`) and how many there were.
    Batch(Vec<Element>, usize),
}

/// One element as read, before it is checked.
enum Element {
    Object(Box<Fields>),
    /// Anything that is not an object.
    Other,
}

/// The first integer literal in the JSON text `json` that is too large for a 64-bit
/// integer (signed or unsigned). Parsed, it would become a float and lose digits
/// silently (`123456789012345678901234567890` reads as `1.2345678901234568e29`).
pub fn inexact_integer(json: &str) -> Option<&str> {
    let bytes = json.as_bytes();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'"' => {
                // Skip the string, escapes included.
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    i += if c == b'\\' { 2 } else { 1 };
                    if c == b'"' {
                        break;
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    i += 1;
                }
                let token = json.get(start..i).unwrap_or("");
                let integer = !token.contains(['.', 'e', 'E']);
                if integer && token.parse::<i64>().is_err() && token.parse::<u64>().is_err() {
                    return Some(token);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The refusal of params holding an integer that would lose digits.
fn inexact(number: &str) -> RpcError {
    let shown: String = number.chars().take(40).collect();
    RpcError::new(
        crate::codes::INVALID_PARAMS,
        format!(
            "params hold the integer {shown}, which does not fit in 64 bits and would lose \
             digits: numbers are 64-bit integers or 64-bit floats; send it as a string"
        ),
        "invalid_params",
    )
}

/// The members of an object that JSON-RPC knows.
#[derive(Default)]
struct Fields {
    jsonrpc: Option<Value>,
    method: Option<Value>,
    params: Option<Box<RawValue>>,
    id: Option<Box<RawValue>>,
    result: Option<Value>,
    error: Option<Value>,
    plexus: Option<Value>,
    /// The first key that appeared twice.
    repeated: Option<String>,
    /// Whether `id` appeared twice.
    id_repeated: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Jsonrpc = 1,
    Method = 2,
    Params = 4,
    Id = 8,
    Result = 16,
    Error = 32,
    Plexus = 64,
}

impl Known {
    fn name(self) -> &'static str {
        match self {
            Self::Jsonrpc => "jsonrpc",
            Self::Method => "method",
            Self::Params => "params",
            Self::Id => "id",
            Self::Result => "result",
            Self::Error => "error",
            Self::Plexus => "plexus",
        }
    }
}

enum Key {
    Known(Known),
    Other(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "jsonrpc" => Key::Known(Known::Jsonrpc),
            "method" => Key::Known(Known::Method),
            "params" => Key::Known(Known::Params),
            "id" => Key::Known(Known::Id),
            "result" => Key::Known(Known::Result),
            "error" => Key::Known(Known::Error),
            "plexus" => Key::Known(Known::Plexus),
            other => Key::Other(other.to_owned()),
        })
    }
}

/// Reads an object's members, noting the first repeated key. Values of keys
/// JSON-RPC does not know (and of `result`/`error` unless `responses`) are skipped.
fn read_object<'de, A: MapAccess<'de>>(mut map: A, responses: bool) -> Result<Fields, A::Error> {
    let mut fields = Fields::default();
    let mut seen = 0u8;
    // A set, not a list: an object of n distinct keys must not cost n² comparisons.
    let mut others: HashSet<String> = HashSet::new();
    while let Some(key) = map.next_key_seed(KeySeed)? {
        let known = match key {
            Key::Known(known) => known,
            Key::Other(name) => {
                if others.contains(&name) {
                    fields.repeated.get_or_insert(name);
                } else {
                    others.insert(name);
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            }
        };
        if seen & known as u8 != 0 {
            if known == Known::Id {
                fields.id_repeated = true;
            }
            fields
                .repeated
                .get_or_insert_with(|| known.name().to_owned());
            map.next_value::<IgnoredAny>()?;
            continue;
        }
        seen |= known as u8;
        match known {
            Known::Jsonrpc => fields.jsonrpc = Some(map.next_value()?),
            Known::Method => fields.method = Some(map.next_value()?),
            Known::Params => fields.params = Some(map.next_value()?),
            Known::Id => fields.id = Some(map.next_value()?),
            Known::Plexus => fields.plexus = Some(map.next_value()?),
            Known::Result if responses => fields.result = Some(map.next_value()?),
            Known::Error if responses => fields.error = Some(map.next_value()?),
            Known::Result | Known::Error => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(fields)
}

#[derive(Clone, Copy)]
struct ElementSeed {
    responses: bool,
}

impl<'de> DeserializeSeed<'de> for ElementSeed {
    type Value = Element;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Element, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Accepts any JSON value: an object is read, anything else is skipped.
macro_rules! anything_else {
    ($out:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
    };
}

impl<'de> Visitor<'de> for ElementSeed {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    anything_else!(Element::Other);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
        read_object(map, self.responses).map(|f| Element::Object(Box::new(f)))
    }
}

struct TopSeed {
    max_batch: usize,
    responses: bool,
}

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Top, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC request or batch")
    }

    anything_else!(Top::Single(Element::Other));

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let seed = ElementSeed { responses: false };
        let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max_batch));
        let mut total = 0usize;
        while total < self.max_batch {
            match seq.next_element_seed(seed)? {
                Some(element) => {
                    elements.push(element);
                    total += 1;
                }
                None => return Ok(Top::Batch(elements, total)),
            }
        }
        // Over the limit: the rest is only counted (and still has to be JSON).
        while seq.next_element::<IgnoredAny>()?.is_some() {
            total += 1;
        }
        Ok(Top::Batch(elements, total))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top, A::Error> {
        read_object(map, self.responses).map(|f| Top::Single(Element::Object(Box::new(f))))
    }
}

impl Element {
    fn into_message(self, responses: bool) -> Message {
        let Element::Object(fields) = self else {
            return Message::Invalid(Rejected {
                id: Id::null(),
                error: RpcError::invalid_request("a request must be a JSON object"),
            });
        };
        let fields = *fields;
        if responses
            && fields.method.is_none()
            && (fields.result.is_some() || fields.error.is_some())
        {
            return Message::Response(fields.into_response());
        }
        match fields.into_request() {
            Ok(request) => Message::Request(request),
            Err((id, error)) => Message::Invalid(Rejected {
                id: id.unwrap_or_else(Id::null),
                error,
            }),
        }
    }
}

impl Fields {
    /// The request, or the id to answer with and why it is refused. The checks run
    /// in a fixed order: the id first (a refusal can only carry an id that was read),
    /// then repeated keys, `jsonrpc`, `method`, `params`.
    fn into_request(self) -> Result<Request, (Option<Id>, RpcError)> {
        let invalid = |id, reason: String| (id, RpcError::invalid_request(reason));
        if self.id_repeated {
            return Err(invalid(
                None,
                "the key `id` appears more than once: which one was meant cannot be known"
                    .to_owned(),
            ));
        }
        let id = match self.id {
            None => None,
            Some(raw) => match Id::from_raw(raw) {
                Some(id) => Some(id),
                None => {
                    return Err(invalid(
                        None,
                        "`id` must be a string of Unicode text, a number within the range of a double, or null"
                            .to_owned(),
                    ));
                }
            },
        };
        if let Some(key) = self.repeated {
            return Err(invalid(
                id,
                format!(
                    "the key `{key}` appears more than once: which one was meant cannot be known"
                ),
            ));
        }
        match &self.jsonrpc {
            Some(Value::String(v)) if v == "2.0" => {}
            _ => return Err(invalid(id, "`jsonrpc` must be exactly \"2.0\"".to_owned())),
        }
        let method = match self.method {
            Some(Value::String(m)) => m,
            Some(_) => return Err(invalid(id, "`method` must be a string".to_owned())),
            None => return Err(invalid(id, "`method` is missing".to_owned())),
        };
        let params = match self.params {
            None => Value::Null,
            Some(raw) if !matches!(raw.get().as_bytes().first(), Some(b'[' | b'{')) => {
                let reason = "`params` must be an array or an object".to_owned();
                return Err(invalid(id, reason));
            }
            Some(raw) => {
                if let Some(number) = inexact_integer(raw.get()) {
                    return Err((id, inexact(number)));
                }
                match serde_json::from_str(raw.get()) {
                    Ok(params) => params,
                    Err(e) => return Err(invalid(id, e.to_string())),
                }
            }
        };
        let plexus = match self.plexus {
            None => None,
            Some(Value::Object(plexus)) => Some(plexus),
            Some(_) => {
                let reason = "`plexus` must be an object, such as {\"correlation_id\": \"<uuid>\"}";
                return Err(invalid(id, reason.to_owned()));
            }
        };
        Ok(Request {
            id,
            method,
            params,
            plexus,
        })
    }

    fn into_response(self) -> Response {
        let id = self.id.and_then(Id::from_raw);
        let body = match (self.repeated, self.result, self.error) {
            (Some(key), _, _) => ResponseBody::Malformed(format!(
                "the key `{key}` appears more than once in the response"
            )),
            (None, Some(_), Some(_)) => {
                ResponseBody::Malformed("the response holds both `result` and `error`".to_owned())
            }
            (None, Some(result), None) => ResponseBody::Result(result),
            (None, None, Some(error)) => ResponseBody::Error(error),
            (None, None, None) => ResponseBody::Malformed(
                "the response holds neither `result` nor `error`".to_owned(),
            ),
        };
        Response { id, body }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::codes;

    fn single(text: &str) -> Message {
        match decode(text.as_bytes(), 10, false) {
            Payload::Single(message) => message,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn rejected(text: &str) -> Rejected {
        match single(text) {
            Message::Invalid(rejected) => rejected,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn an_integer_beyond_64_bits_in_params_is_refused_not_rounded() {
        let big = r#"{"jsonrpc":"2.0","method":"a.b","params":{"n":[1,123456789012345678901234567890]},"id":7}"#;
        let Message::Invalid(rejected) = single(big) else {
            panic!("accepted");
        };
        assert_eq!(rejected.error.code, -32602);
        assert!(
            rejected
                .error
                .message
                .contains("123456789012345678901234567890")
        );
        assert_eq!(rejected.id, Id::from_value(&json!(7)));
        // What fits is kept exactly; digits inside strings are text.
        let fits = r#"{"jsonrpc":"2.0","method":"a.b","params":{"i":-9223372036854775808,"u":18446744073709551615,"f":0.1,"e":1e300,"s":"123456789012345678901234567890 \" 99999999999999999999"},"id":1}"#;
        let Message::Request(request) = single(fits) else {
            panic!("refused");
        };
        assert_eq!(request.params["i"], json!(i64::MIN));
        assert_eq!(request.params["u"], json!(u64::MAX));
        assert_eq!(
            inexact_integer("[-99999999999999999999]"),
            Some("-99999999999999999999")
        );
        assert_eq!(
            inexact_integer("[18446744073709551616]"),
            Some("18446744073709551616")
        );
    }

    #[test]
    fn the_plexus_member_is_kept_when_an_object_and_refused_otherwise() {
        let text =
            r#"{"jsonrpc":"2.0","method":"a.b","id":1,"plexus":{"correlation_id":"x"},"other":1}"#;
        let Message::Request(request) = single(text) else {
            panic!("refused");
        };
        let plexus = request.plexus.expect("kept");
        assert_eq!(plexus.get("correlation_id"), Some(&json!("x")));
        let Message::Request(plain) = single(r#"{"jsonrpc":"2.0","method":"a.b","id":1}"#) else {
            panic!("refused");
        };
        assert_eq!(plain.plexus, None);
        let wrong = rejected(r#"{"jsonrpc":"2.0","method":"a.b","id":2,"plexus":"x"}"#);
        assert_eq!(wrong.error.code, codes::INVALID_REQUEST);
        let said = format!("{:?}", wrong.error);
        assert!(said.contains("`plexus` must be an object"), "{said}");
        assert_eq!(wrong.id, Id::from_value(&json!(2)));
        let twice = rejected(r#"{"jsonrpc":"2.0","method":"a.b","id":3,"plexus":{},"plexus":{}}"#);
        assert!(format!("{:?}", twice.error).contains("more than once"));
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let Message::Request(ok) =
            single(r#"{"jsonrpc": "2.0", "method": "a.b", "params": [1], "id": 3}"#)
        else {
            panic!("a request");
        };
        assert_eq!(ok.id.map(|i| i.to_value()), Some(json!(3)));
        assert_eq!(ok.params, json!([1]));
        let Message::Request(note) = single(r#"{"jsonrpc": "2.0", "method": "a.b"}"#) else {
            panic!("a notification");
        };
        assert_eq!((note.id, note.params), (None, Value::Null));
        let cases = [
            (r#"{"jsonrpc": "1.0", "method": "a", "id": 1}"#, "1"),
            (r#"{"jsonrpc": "2.0", "method": 1, "id": "x"}"#, "\"x\""),
            (r#"{"jsonrpc": "2.0", "id": 2}"#, "2"),
            (
                r#"{"jsonrpc": "2.0", "method": "a", "params": 3, "id": 4}"#,
                "4",
            ),
            (r#"{"jsonrpc": "2.0", "method": "a", "id": {}}"#, "null"),
            ("7", "null"),
            ("\"x\"", "null"),
            ("[1]", "null"),
        ];
        for (input, id) in cases {
            if input == "[1]" {
                let Payload::Batch(elements) = decode(input.as_bytes(), 10, false) else {
                    panic!("a batch");
                };
                let error = elements[0].clone().unwrap_err();
                assert_eq!(error.error.code, codes::INVALID_REQUEST);
                continue;
            }
            let got = rejected(input);
            assert_eq!(got.id.get(), id, "{input}");
            assert_eq!(got.error.code, codes::INVALID_REQUEST, "{input}");
        }
    }

    #[test]
    fn a_repeated_key_is_refused_and_never_last_one_wins() {
        let twice = rejected(r#"{"jsonrpc":"2.0","method":"a.b","method":"c.d","id":1}"#);
        assert_eq!(twice.id.get(), "1");
        assert_eq!(twice.error.code, codes::INVALID_REQUEST);
        assert!(
            twice.error.data.unwrap()["reason"]
                .as_str()
                .unwrap()
                .contains("`method` appears more than once")
        );
        let ids = rejected(r#"{"jsonrpc":"2.0","method":"a.b","id":1,"id":2}"#);
        assert!(ids.id.is_null());
        let escaped = rejected(r#"{"jsonrpc":"2.0","method":"a.b","meth\u006fd":"c.d","id":1}"#);
        assert_eq!(escaped.error.code, codes::INVALID_REQUEST);
        let other = rejected(r#"{"jsonrpc":"2.0","method":"a.b","x":1,"x":2,"id":"q"}"#);
        assert_eq!(other.id.get(), "\"q\"");
        // Nested objects may repeat keys: that is the method's business.
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","method":"a.b","params":{"k":1,"k":2},"id":1}"#),
            Message::Request(_)
        ));
    }

    #[test]
    fn an_id_serde_json_cannot_read_is_refused_without_it() {
        // Found by fuzz target jsonrpc_request: the answer carried `1e400` back, which
        // serde_json (and so a Plexus client) cannot read.
        let got = rejected(r#"{"jsonrpc":"2.0","method":"a.b","id":1e400}"#);
        assert!(got.id.is_null());
        assert_eq!(got.error.code, codes::INVALID_REQUEST);
        let Payload::Single(Message::Response(response)) =
            decode(br#"{"jsonrpc":"2.0","result":1,"id":-2e308}"#, 1, true)
        else {
            panic!("a response");
        };
        assert_eq!(response.id, None);
        // Nor a string holding a lone surrogate (found by fuzz target ws_message).
        let got = rejected(r#"{"jsonrpc":"2.0","method":"a.b","id":"n-1\ud800"}"#);
        assert!(got.id.is_null());
        let paired = single(r#"{"jsonrpc":"2.0","method":"a.b","id":"\ud83d\ude00"}"#);
        assert!(matches!(
            paired,
            Message::Request(Request { id: Some(_), .. })
        ));
    }

    #[test]
    fn many_distinct_keys_cost_linear_time() {
        // 200,000 distinct unknown keys (2.6 MB): compared pairwise they took minutes
        // (found while writing fuzz target jsonrpc_request).
        let mut text = String::from(r#"{"jsonrpc":"2.0","method":"a.b","id":1"#);
        for i in 0..200_000 {
            text.push_str(&format!(r#","k{i}":0"#));
        }
        text.push('}');
        let started = std::time::Instant::now();
        assert!(matches!(
            decode(text.as_bytes(), 1, false),
            Payload::Single(Message::Request(_))
        ));
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
        let twice = format!("{},\"k7\":1}}", &text[..text.len() - 1]);
        assert!(matches!(
            decode(twice.as_bytes(), 1, false),
            Payload::Single(Message::Invalid(_))
        ));
    }

    #[test]
    fn ids_keep_their_exact_text() {
        for id in [
            "123456789012345678901234567890",
            "1.0",
            "-0",
            "1e3",
            "\"\\u0041\"",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","method":"a.b","id":{id}}}"#);
            let Message::Request(request) = single(&text) else {
                panic!("{text}");
            };
            assert_eq!(request.id.unwrap().get(), id);
        }
    }

    #[test]
    fn oversized_and_empty_batches_are_refused_whole() {
        assert!(
            matches!(decode(b"[]", 2, false), Payload::Refused(e) if e.code == codes::INVALID_REQUEST)
        );
        let three = br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"}]"#;
        assert!(
            matches!(decode(three, 2, false), Payload::Refused(e) if e.data.as_ref().unwrap()["max_batch"] == 2 && e.data.as_ref().unwrap()["batch"] == 3)
        );
        assert!(
            matches!(decode(b"{", 2, false), Payload::Refused(e) if e.code == codes::PARSE_ERROR)
        );
        // A syntax error after the limit is still a parse error.
        let broken = br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"},{"#;
        assert!(
            matches!(decode(broken, 1, false), Payload::Refused(e) if e.code == codes::PARSE_ERROR)
        );
    }

    #[test]
    fn parse_errors_say_what_the_parser_says() {
        let text = r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#;
        let Payload::Refused(e) = decode(text.as_bytes(), 2, false) else {
            panic!("refused");
        };
        let reason = serde_json::from_str::<Value>(text).unwrap_err().to_string();
        assert_eq!(e.data.unwrap()["reason"], reason);
    }

    #[test]
    fn responses_are_recognised_only_when_asked_for() {
        let text = br#"{"jsonrpc":"2.0","result":{"a":1},"id":"n-1"}"#;
        let Payload::Single(Message::Response(response)) = decode(text, 2, true) else {
            panic!("a response");
        };
        assert_eq!(response.id.unwrap().as_string().as_deref(), Some("n-1"));
        assert_eq!(response.body, ResponseBody::Result(json!({"a": 1})));
        let Payload::Single(Message::Invalid(rejected)) = decode(text, 2, false) else {
            panic!("invalid");
        };
        assert_eq!(rejected.id.get(), "\"n-1\"");
        let both = br#"{"jsonrpc":"2.0","result":1,"error":{},"id":"n-1"}"#;
        let Payload::Single(Message::Response(response)) = decode(both, 2, true) else {
            panic!("a response");
        };
        assert!(matches!(response.body, ResponseBody::Malformed(_)));
    }
}
