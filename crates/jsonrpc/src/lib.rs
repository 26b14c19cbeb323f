//! JSON-RPC 2.0 as every Plexus front end speaks it: `/rpc`, `/ws`, the MCP server
//! and the client share this crate, so a rule of the protocol is written once.
//!
//! - [`codes`]: the one table of error codes (the specification's and Plexus's own).
//! - [`RpcError`]: an error object (code, message, data) with the metrics outcome it
//!   counts as.
//! - [`decode`]: a payload as a single message, a batch (held to `max_batch`), or a
//!   refusal; [`encode`], [`error_body`] and [`join_batch`] write the answers.
//!
//! The rules of the specification (<https://www.jsonrpc.org/specification>):
//! - text that is not JSON gets one `-32700 Parse error` with `id: null`;
//! - anything that is not a request object (wrong `jsonrpc`, no string `method`,
//!   `params` neither array nor object, an `id` that is not a string, number or null)
//!   gets `-32600 Invalid Request`, with the request's `id` when it could be read and
//!   `null` otherwise;
//! - a request without `id` is a notification: it runs, and nothing is answered;
//! - a batch is answered with an array of the responses in request order,
//!   notifications left out; a batch of notifications only is answered with nothing;
//!   an empty batch gets one `-32600` (not an array).
//!
//! Plexus adds:
//! - a batch larger than `max_batch` gets one `-32600` naming the limit;
//! - a request object that repeats a key (two `method`s, two `id`s) is `-32600`:
//!   which of the two was meant cannot be known, so neither wins (a repeated `id`
//!   is answered with `id: null`);
//! - an `id` comes back exactly as it was sent (`1.0` stays `1.0`, an integer beyond
//!   64 bits keeps every digit): [`Id`] holds its JSON text;
//! - an `id` that serde_json cannot read (a number beyond the range of a double such
//!   as `1e400`, a string with a lone surrogate such as `"\ud800"`) is refused as not
//!   an id: serde_json, and so a Plexus client, could not read the answer;
//! - every error object carries `data` with detail;
//! - a request may carry a `plexus` object (any other extra member is ignored):
//!   the conversation it belongs to, `{"correlation_id": "<uuid>", "causation_id":
//!   "<uuid>"}`, which the gateway passes on to the call ([`Request::plexus`]).
//!
//! ```
//! use plexus_jsonrpc::{Message, Payload, decode, encode};
//!
//! let Payload::Single(Message::Request(request)) =
//!     decode(br#"{"jsonrpc":"2.0","method":"a.b","params":[1],"id":1.0}"#, 10, false)
//! else {
//!     panic!("a request");
//! };
//! let id = request.id.expect("not a notification");
//! let answer = encode(&id, &Ok(serde_json::json!(2)));
//! assert_eq!(answer, br#"{"jsonrpc":"2.0","result":2,"id":1.0}"#);
//! ```

pub mod codes;
mod decode;
mod encode;
mod error;
mod id;

pub use decode::{
    Message, Payload, Rejected, Request, Response, ResponseBody, decode, inexact_integer,
};
pub use encode::{encode, error_body, join_batch};
pub use error::RpcError;
pub use id::Id;
