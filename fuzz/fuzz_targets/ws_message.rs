//! One message on a gateway WebSocket, as the session handles it: `classify` (the
//! session's first step: a response to one of the gateway's calls, run in the
//! reader, or spawned) and `execute` (the session's runner, shared with `/rpc`) with
//! a stand-in for the methods, then the answer the session would send.
//!
//! Checked: nothing panics; a response completes a call only when its id is the
//! exact `"n-<k>"` the gateway writes; service calls and batches are spawned and the
//! gateway's own methods, refusals and invalid requests run in the reader; a spawned
//! message refused as overloaded is answered with the id it came with; every element
//! is counted once; the answer is JSON, one response per element with an id, and
//! nothing for notifications only.

#![no_main]

use std::cell::Cell;

use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use plexus_gateway::{Inbound, RESERVED_SERVICE, classify, execute};
use plexus_jsonrpc::{Message, Payload, Request, RpcError, codes};
use serde_json::Value;

/// A small batch limit, so that oversized batches are reached.
const MAX_BATCH: usize = 4;

fuzz_target!(|data: &[u8]| {
    match classify(data, MAX_BATCH) {
        Inbound::Response { call, response } => {
            if let Some(k) = call {
                let id = response.id.as_ref().and_then(|id| id.as_string());
                assert_eq!(id, Some(format!("n-{k}")), "a response completes call {k}");
            }
        }
        Inbound::Inline(payload) => {
            match &payload {
                Payload::Single(Message::Request(request)) => assert!(own(&request.method)),
                Payload::Single(Message::Response(_)) => panic!("a response run as a request"),
                Payload::Batch(_) => panic!("a batch run in the reader"),
                Payload::Single(Message::Invalid(_)) | Payload::Refused(_) => {}
            }
            run(payload);
        }
        Inbound::Spawn { payload, busy_id } => {
            match &payload {
                Payload::Single(Message::Request(request)) => {
                    assert!(!own(&request.method));
                    assert_eq!(busy_id, request.id);
                }
                Payload::Batch(_) => assert!(busy_id.is_some_and(|id| id.is_null())),
                other => panic!("spawned: {other:?}"),
            }
            run(payload);
        }
    }
});

fn own(method: &str) -> bool {
    method
        .strip_prefix(RESERVED_SERVICE)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Runs `payload` as the session does, each method answering its params (or failing
/// when its name ends in `!`), and checks the answer.
fn run(payload: Payload) {
    let (elements, answered) = match &payload {
        Payload::Refused(_) => (1, 1),
        Payload::Single(Message::Request(request)) => (1, usize::from(request.id.is_some())),
        Payload::Single(_) => (1, 1),
        Payload::Batch(elements) => (
            elements.len(),
            elements
                .iter()
                .filter(|e| e.as_ref().map_or(true, |r| r.id.is_some()))
                .count(),
        ),
    };
    let batch = matches!(payload, Payload::Batch(_));
    let counted = Cell::new(0usize);
    let answer = block_on(execute(
        payload,
        |request: Request| async move {
            if request.method.ends_with('!') {
                Err(RpcError::internal(request.method))
            } else {
                Ok(request.params)
            }
        },
        |outcome| {
            assert!(!outcome.is_empty());
            counted.set(counted.get() + 1);
        },
    ));
    assert_eq!(counted.get(), elements, "every element is counted once");
    let Some(answer) = answer else {
        assert_eq!(
            answered, 0,
            "no answer, though {answered} elements have ids"
        );
        return;
    };
    assert!(std::str::from_utf8(&answer).is_ok());
    let answer: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
    let responses = match answer {
        Value::Array(responses) if batch => responses,
        one if !batch => vec![one],
        other => panic!("answer {other}"),
    };
    assert_eq!(responses.len(), answered);
    for response in responses {
        assert_eq!(response["jsonrpc"], "2.0");
        assert!(response.get("id").is_some());
        assert!(response.get("result").is_some() != response.get("error").is_some());
        if let Some(error) = response.get("error") {
            assert!(
                error["code"]
                    .as_i64()
                    .is_some_and(|c| c != codes::OVERLOADED)
            );
        }
    }
}
