//! `plexus_jsonrpc::decode` on any bytes (as `/rpc` and `/ws` call it), then the
//! answers encoded back.
//!
//! Checked: nothing panics; text that is JSON is never a parse error; a refusal is
//! -32700 or -32600; a request holds what the text says and its id is kept byte for
//! byte; a decoded request written out again decodes to the same request; every
//! encoded answer is JSON with `jsonrpc: "2.0"` and the id it answers; a batch is
//! answered with one response per element that has an id.
//!
//! Values under keys JSON-RPC does not use are skipped without serde_json's nesting
//! limit, so text that decodes may be too deep for a `Value`: then the checks that
//! compare with the `Value` are left out.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_jsonrpc::{
    Message, Payload, Rejected, Request, ResponseBody, RpcError, codes, decode, encode, error_body,
    join_batch,
};
use serde_json::{Value, json};

/// A small batch limit, so that oversized batches are reached.
const MAX_BATCH: usize = 4;

fuzz_target!(|data: &[u8]| {
    let whole = serde_json::from_slice::<Value>(data).ok();
    for (max_batch, responses) in [(MAX_BATCH, false), (MAX_BATCH, true), (usize::MAX, false)] {
        check(data, whole.as_ref(), max_batch, responses);
    }
});

fn check(data: &[u8], whole: Option<&Value>, max_batch: usize, responses: bool) {
    match decode(data, max_batch, responses) {
        Payload::Refused(error) => {
            assert!(
                error.code == codes::PARSE_ERROR || error.code == codes::INVALID_REQUEST,
                "{error:?}"
            );
            if error.code == codes::PARSE_ERROR {
                assert!(whole.is_none(), "JSON text refused as not JSON: {error:?}");
            } else {
                // An empty or oversized batch.
                assert!(data.trim_ascii_start().starts_with(b"["), "{error:?}");
                assert!(whole.is_none_or(Value::is_array), "{error:?}");
            }
            answer_is(&error_body(&error), &Value::Null, Some(error.code));
        }
        Payload::Single(message) => match message {
            Message::Request(request) => request_holds(&request, whole),
            Message::Invalid(rejected) => rejected_holds(&rejected, whole),
            Message::Response(response) => {
                assert!(responses, "a response when none was asked for");
                if let Some(whole) = whole {
                    assert!(whole.get("method").is_none());
                    assert!(whole.get("result").is_some() || whole.get("error").is_some());
                    match &response.body {
                        ResponseBody::Result(result) => {
                            assert_eq!(Some(result), whole.get("result"));
                        }
                        ResponseBody::Error(error) => assert_eq!(Some(error), whole.get("error")),
                        ResponseBody::Malformed(_) => {}
                    }
                }
            }
        },
        Payload::Batch(elements) => {
            assert!(data.trim_ascii_start().starts_with(b"["));
            assert!(!elements.is_empty() && elements.len() <= max_batch);
            let items: Vec<Option<&Value>> = match whole {
                Some(Value::Array(items)) => items.iter().map(Some).collect(),
                Some(other) => panic!("a batch from {other}"),
                None => vec![None; elements.len()],
            };
            assert_eq!(elements.len(), items.len());
            let mut answers = Vec::new();
            let mut ids = Vec::new();
            for (element, item) in elements.iter().zip(items) {
                match element {
                    Ok(request) => {
                        request_holds(request, item);
                        if let Some(id) = &request.id {
                            answers.push(encode(id, &Ok(request.params.clone())));
                            ids.push(id.to_value());
                        }
                    }
                    Err(rejected) => {
                        rejected_holds(rejected, item);
                        answers.push(encode(&rejected.id, &Err(rejected.error.clone())));
                        ids.push(rejected.id.to_value());
                    }
                }
            }
            match join_batch(answers) {
                None => assert!(ids.is_empty()),
                Some(text) => {
                    let Ok(Value::Array(out)) = serde_json::from_slice::<Value>(&text) else {
                        panic!("a batch answer that is not a JSON array");
                    };
                    assert_eq!(out.len(), ids.len());
                    for (answer, id) in out.iter().zip(&ids) {
                        assert_eq!(&answer["id"], id);
                    }
                }
            }
        }
    }
}

/// A request holds what `item` (its text as a `Value`) says, re-encodes, and its
/// answers are JSON.
fn request_holds(request: &Request, item: Option<&Value>) {
    assert!(request.params.is_null() || request.params.is_array() || request.params.is_object());
    if let Some(id) = &request.id {
        assert!(matches!(
            id.to_value(),
            Value::Null | Value::Number(_) | Value::String(_)
        ));
    }
    if let Some(item) = item {
        assert_eq!(item["jsonrpc"], "2.0");
        assert_eq!(item["method"], request.method.as_str());
        match item.get("params") {
            None => assert_eq!(request.params, Value::Null),
            Some(params) => assert_eq!(&request.params, params),
        }
        match &request.id {
            None => assert!(item.get("id").is_none()),
            Some(id) => assert_eq!(Some(&id.to_value()), item.get("id")),
        }
    }

    // Written out again, it decodes to itself.
    let mut text = format!(
        r#"{{"jsonrpc":"2.0","method":{}"#,
        Value::from(request.method.as_str())
    );
    if !request.params.is_null() {
        text.push_str(&format!(r#","params":{}"#, request.params));
    }
    if let Some(id) = &request.id {
        text.push_str(&format!(r#","id":{}"#, id.get()));
    }
    text.push('}');
    match decode(text.as_bytes(), 1, false) {
        Payload::Single(Message::Request(again)) => assert_eq!(&again, request),
        other => panic!("{text} decodes to {other:?}"),
    }

    // Its answers, success and failure, are JSON and carry its id as sent.
    if let Some(id) = &request.id {
        let ok = encode(id, &Ok(request.params.clone()));
        let result = answer_is(&ok, &id.to_value(), None);
        assert_eq!(result["result"], request.params);
        assert!(ok.windows(id.get().len()).any(|w| w == id.get().as_bytes()));
        let error =
            RpcError::internal(request.method.clone()).with_data(json!({"m": request.method}));
        answer_is(
            &encode(id, &Err(error)),
            &id.to_value(),
            Some(codes::INTERNAL_ERROR),
        );
    }
}

/// A refused element is -32600 (or -32602 for params holding an integer beyond 64
/// bits, which would lose digits), answered with the id it was sent with (or `null`).
fn rejected_holds(rejected: &Rejected, item: Option<&Value>) {
    let code = rejected.error.code;
    assert!(
        code == codes::INVALID_REQUEST
            || (code == codes::INVALID_PARAMS
                && rejected.error.message.contains("does not fit in 64 bits")),
        "{:?}",
        rejected.error
    );
    let id = rejected.id.to_value();
    assert!(matches!(
        id,
        Value::Null | Value::Number(_) | Value::String(_)
    ));
    if let Some(item) = item.filter(|_| !rejected.id.is_null()) {
        assert_eq!(Some(&id), item.get("id"));
    }
    answer_is(
        &encode(&rejected.id, &Err(rejected.error.clone())),
        &id,
        Some(code),
    );
}

/// An answer is a JSON-RPC response object for `id`; with `code`, an error.
fn answer_is(bytes: &[u8], id: &Value, code: Option<i64>) -> Value {
    let answer: Value = serde_json::from_slice(bytes).expect("an answer is JSON");
    assert_eq!(answer["jsonrpc"], "2.0");
    assert_eq!(&answer["id"], id);
    match code {
        Some(code) => {
            assert_eq!(answer["error"]["code"], code);
            assert!(answer["error"]["message"].is_string());
            assert!(answer.get("result").is_none());
        }
        None => assert!(answer.get("error").is_none()),
    }
    answer
}
