//! The first step of handling one message from the peer, without the socket: what
//! the session does with it ([`classify`]). The session calls it on every text or
//! binary message, and the `ws_message` fuzz target calls the same function.

use plexus_jsonrpc::{self as jsonrpc, Id, Message, Payload, Response};

use crate::methods::RESERVED_SERVICE;

/// What a session does with one text or binary message.
#[derive(Debug)]
pub enum Inbound {
    /// A response to a call the gateway made over this connection. `call` is the
    /// pending call it completes: `Some(k)` when its id is exactly `"n-<k>"` as the
    /// gateway writes it, `None` when it can answer no call (it is dropped).
    Response {
        /// The pending call's number.
        call: Option<u64>,
        /// The response.
        response: Response,
    },
    /// Run in the reader, in order: the gateway's own `plexus.*` methods (so that a
    /// `register` is done before the `heartbeat` after it) and what is answered
    /// without running anything (parse errors, invalid requests, refused batches).
    Inline(Payload),
    /// Run on a task of its own, at most `max_ws_in_flight` at once: a call of a
    /// service, or a batch. Over the limit it is refused, answered with `busy_id`
    /// (`None` for a notification, which is not answered).
    Spawn {
        /// What to run.
        payload: Payload,
        /// The id a refusal is answered with.
        busy_id: Option<Id>,
    },
}

/// What the session does with `bytes`, one message from the peer; a batch holds at
/// most `max_batch` requests.
pub fn classify(bytes: &[u8], max_batch: usize) -> Inbound {
    match jsonrpc::decode(bytes, max_batch, true) {
        Payload::Single(Message::Response(response)) => Inbound::Response {
            call: response.id.as_ref().and_then(call_number),
            response,
        },
        Payload::Single(Message::Request(request)) if !is_own(&request.method) => {
            let busy_id = request.id.clone();
            Inbound::Spawn {
                payload: Payload::Single(Message::Request(request)),
                busy_id,
            }
        }
        batch @ Payload::Batch(_) => Inbound::Spawn {
            payload: batch,
            busy_id: Some(Id::null()),
        },
        other => Inbound::Inline(other),
    }
}

/// The number `k` of a call id the gateway wrote, `"n-<k>"`: that exact text only
/// (no sign, no leading zero), as a response carries the id of its request.
pub(crate) fn call_number(id: &Id) -> Option<u64> {
    let text = id.as_string()?;
    let k: u64 = text.strip_prefix("n-")?.parse().ok()?;
    (format!("n-{k}") == text).then_some(k)
}

/// Whether `method` is one of the gateway's own.
pub(crate) fn is_own(method: &str) -> bool {
    method
        .strip_prefix(RESERVED_SERVICE)
        .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str) -> Option<u64> {
        let text = format!(r#"{{"jsonrpc":"2.0","result":1,"id":{id}}}"#);
        match classify(text.as_bytes(), 10) {
            Inbound::Response { call, .. } => call,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn a_response_completes_only_the_call_whose_id_it_carries() {
        assert_eq!(call(r#""n-1""#), Some(1));
        assert_eq!(call(r#""n-18446744073709551615""#), Some(u64::MAX));
        assert_eq!(call(r#""n-0""#), Some(0));
        // Found by fuzz target ws_message: `"n-01"` and `"n-+1"` completed call 1.
        for other in [
            r#""n-01""#,
            r#""n-+1""#,
            r#""n-1 ""#,
            r#""n-""#,
            r#""x-1""#,
            "1",
            "null",
        ] {
            assert_eq!(call(other), None, "{other}");
        }
    }

    #[test]
    fn own_methods_run_in_the_reader_and_the_rest_is_spawned() {
        let own = br#"{"jsonrpc":"2.0","method":"plexus.heartbeat","id":1}"#;
        assert!(matches!(classify(own, 10), Inbound::Inline(_)));
        let call = br#"{"jsonrpc":"2.0","method":"plexusx.heartbeat","id":1}"#;
        assert!(matches!(
            classify(call, 10),
            Inbound::Spawn {
                busy_id: Some(_),
                ..
            }
        ));
        let batch = br#"[{"jsonrpc":"2.0","method":"plexus.heartbeat"}]"#;
        assert!(
            matches!(classify(batch, 10), Inbound::Spawn { busy_id: Some(id), .. } if id.is_null())
        );
        assert!(matches!(classify(b"{", 10), Inbound::Inline(_)));
    }
}
