//! The body of a POST to the MCP endpoint: `plexus_mcp::frame_body` (the guard in
//! front of rmcp: one JSON-RPC message, no batches, no repeated keys), the error it
//! answers with, and, for a body it passes on, rmcp's own reading of it as a
//! `ClientJsonRpcMessage` (and writing that back).
//!
//! Checked: nothing panics; a refusal is 400 with -32700 (not JSON) or -32600, and
//! its answer is JSON carrying the id sent (or `null`); what is passed on is one
//! JSON object, a request whose method is the text's, or a response (no method).

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_jsonrpc::{codes, encode, error_body};
use plexus_mcp::{Framed, frame_body};
use rmcp::model::ClientJsonRpcMessage;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let whole = serde_json::from_slice::<Value>(data).ok();
    match frame_body(data) {
        Framed::Refused { status, id, error } => {
            assert_eq!(status.as_u16(), 400);
            match error.code {
                codes::PARSE_ERROR => assert!(whole.is_none(), "JSON refused as not JSON"),
                codes::INVALID_REQUEST => {}
                // Params holding an integer beyond 64 bits (it would lose digits).
                codes::INVALID_PARAMS => assert!(error.message.contains("does not fit in 64 bits")),
                other => panic!("refused with {other}"),
            }
            let body = match &id {
                Some(id) => encode(id, &Err(error.clone())),
                None => error_body(&error),
            };
            let answer: Value = serde_json::from_slice(&body).expect("the answer is JSON");
            assert_eq!(answer["error"]["code"], error.code);
            let sent = id.map_or(Value::Null, |id| id.to_value());
            assert_eq!(answer["id"], sent);
        }
        Framed::Message { id, method } => {
            assert!(data.trim_ascii_start().starts_with(b"{"), "not one object");
            if let Some(whole) = &whole {
                match &method {
                    Some(method) => assert_eq!(whole["method"], method.as_str()),
                    None => assert!(whole.get("method").is_none()),
                }
                // A request repeats no key; a response may (rmcp refuses it).
                if let Some(id) = id.as_ref().filter(|_| method.is_some()) {
                    assert_eq!(Some(&id.to_value()), whole.get("id"));
                }
            }
            // What rmcp does next with the same bytes.
            if let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(data) {
                let text = serde_json::to_vec(&message).expect("rmcp writes what it read");
                assert!(serde_json::from_slice::<Value>(&text).is_ok());
            }
        }
    }
});
