//! Encoding responses as JSON text, ids written back exactly as they came.

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{Id, RpcError};

#[derive(Serialize)]
struct Success<'a> {
    jsonrpc: &'static str,
    result: &'a Value,
    id: &'a RawValue,
}

#[derive(Serialize)]
struct Failure<'a> {
    jsonrpc: &'static str,
    error: &'a RpcError,
    id: &'a RawValue,
}

/// What is written when serializing fails (it cannot for values serde_json built).
const ENCODING_FAILED: &[u8] =
    br#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"encoding failed"},"id":null}"#;

fn write(id: &RawValue, outcome: Result<&Value, &RpcError>) -> Vec<u8> {
    let written = match outcome {
        Ok(result) => serde_json::to_vec(&Success {
            jsonrpc: "2.0",
            result,
            id,
        }),
        Err(error) => serde_json::to_vec(&Failure {
            jsonrpc: "2.0",
            error,
            id,
        }),
    };
    written.unwrap_or_else(|_| ENCODING_FAILED.to_vec())
}

/// The response to the request `id`, as JSON text.
pub fn encode(id: &Id, outcome: &Result<Value, RpcError>) -> Vec<u8> {
    write(id.as_raw(), outcome.as_ref())
}

/// An error response with `id: null` (the request's id is unknown).
pub fn error_body(error: &RpcError) -> Vec<u8> {
    write(RawValue::NULL, Err(error))
}

/// The answer to a batch: the encoded responses as one array, or `None` when there
/// is nothing to answer (notifications only).
pub fn join_batch(responses: Vec<Vec<u8>>) -> Option<Vec<u8>> {
    if responses.is_empty() {
        return None;
    }
    let size = responses.iter().map(Vec::len).sum::<usize>() + responses.len() + 1;
    let mut out = Vec::with_capacity(size);
    out.push(b'[');
    for (i, response) in responses.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&response);
    }
    out.push(b']');
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Message, Payload, decode};

    #[test]
    fn ids_are_written_back_byte_for_byte() {
        let text = br#"{"jsonrpc":"2.0","method":"a.b","id":123456789012345678901234567890}"#;
        let Payload::Single(Message::Request(request)) = decode(text, 1, false) else {
            panic!("a request");
        };
        let answer = encode(&request.id.unwrap(), &Ok(json!(1)));
        assert_eq!(
            answer,
            br#"{"jsonrpc":"2.0","result":1,"id":123456789012345678901234567890}"#
        );
    }

    #[test]
    fn errors_and_batches_are_encoded() {
        let error = RpcError::invalid_request("no");
        assert_eq!(
            error_body(&error),
            br#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"no"}},"id":null}"#
        );
        assert_eq!(join_batch(vec![]), None);
        let batch = join_batch(vec![b"1".to_vec(), b"2".to_vec()]).unwrap();
        assert_eq!(batch, b"[1,2]");
        let value: Value = serde_json::from_slice(&encode(&Id::string("x"), &Err(error))).unwrap();
        assert_eq!(value["error"]["data"]["reason"], "no");
        assert_eq!(value["id"], "x");
    }
}
