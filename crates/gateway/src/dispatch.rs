//! Runs a decoded JSON-RPC payload (see `plexus_jsonrpc` for the framing): every
//! valid request through a handler, a batch's requests concurrently, each outcome
//! counted, and the answer encoded. Shared by `/rpc` and `/ws`.

use std::future::Future;

use futures::future::join_all;
use plexus_jsonrpc::{self as jsonrpc, Message, Payload, Rejected, Request, RpcError};
use serde_json::Value;

/// Runs `payload`: every valid request through `run`, counting each outcome with
/// `count`. Returns the JSON text to send, or `None` when nothing is to be answered
/// (notifications only).
pub async fn execute<F, Fut>(
    payload: Payload,
    run: F,
    count: impl Fn(&'static str),
) -> Option<Vec<u8>>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Result<Value, RpcError>>,
{
    let one = |element: Result<Request, Rejected>| {
        let run = &run;
        let count = &count;
        async move {
            match element {
                Ok(request) => {
                    let id = request.id.clone();
                    let outcome = run(request).await;
                    count(match &outcome {
                        Ok(_) => "ok",
                        Err(e) => e.outcome,
                    });
                    id.map(|id| jsonrpc::encode(&id, &outcome))
                }
                Err(Rejected { id, error }) => {
                    count(error.outcome);
                    Some(jsonrpc::encode(&id, &Err(error)))
                }
            }
        }
    };
    match payload {
        Payload::Refused(error) => {
            count(error.outcome);
            Some(jsonrpc::error_body(&error))
        }
        Payload::Single(Message::Request(request)) => one(Ok(request)).await,
        Payload::Single(Message::Invalid(rejected)) => one(Err(rejected)).await,
        // Only decoded where the peer also answers calls (`/ws`), which routes
        // responses before they come here.
        Payload::Single(Message::Response(response)) => {
            one(Err(Rejected {
                id: response.id.unwrap_or_else(jsonrpc::Id::null),
                error: RpcError::invalid_request("`method` is missing"),
            }))
            .await
        }
        Payload::Batch(elements) => jsonrpc::join_batch(
            join_all(elements.into_iter().map(one))
                .await
                .into_iter()
                .flatten()
                .collect(),
        ),
    }
}
