//! The OpenAI-compatible endpoints, served by the gateway behind its tokens:
//! `POST /v1/chat/completions` (answers, and SSE streams when `"stream": true`)
//! and `GET /v1/models`. They need the scopes `call:inference.chat` and
//! `call:inference.models`, as the methods do; the budget is charged to the
//! token's name. Errors use OpenAI's body, `{"error": {message, type, code,
//! param}}`; a stream that fails after it began sends an `{"error": …}` event and
//! ends without `[DONE]`, which OpenAI's SDKs raise as an error.

use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use futures::StreamExt;
use plexus_core::scope::{Caller, Need};
use serde_json::{Value, json};

use crate::{Inference, InferenceError};

/// The router of `/v1/chat/completions` and `/v1/models` over `engine`; the
/// gateway puts the [`Caller`] in each request's extensions.
pub fn router(engine: Inference) -> Router {
    let limit = engine.config().max_request_bytes;
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(engine)
}

fn error(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, Json(body)).into_response()
}

fn refused(e: &InferenceError) -> Response {
    error(e.http_status(), e.openai_body())
}

/// `Err` with a 403 when the caller may not call `method`.
fn allowed(caller: Option<&Caller>, method: &str) -> Result<(), Box<Response>> {
    match caller.map(|c| c.check(Need::Call(method))) {
        Some(Err(forbidden)) => Err(Box::new(error(
            403,
            json!({"error": {"message": forbidden.to_string(), "type": "permission_error", "code": "forbidden", "param": null}}),
        ))),
        _ => Ok(()),
    }
}

async fn models(State(engine): State<Inference>, caller: Option<Extension<Caller>>) -> Response {
    let caller = caller.map(|Extension(c)| c);
    if let Err(denied) = allowed(caller.as_ref(), "inference.models") {
        return *denied;
    }
    Json(engine.models()).into_response()
}

async fn completions(
    State(engine): State<Inference>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Response {
    let caller = caller.map(|Extension(c)| c);
    if let Err(denied) = allowed(caller.as_ref(), "inference.chat") {
        return *denied;
    }
    let name = caller.as_ref().and_then(|c| c.name()).map(str::to_owned);
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return refused(&InferenceError::Invalid {
                field: String::new(),
                reason: format!("is not JSON: {e}"),
            });
        }
    };
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return match engine.chat(body, name.as_deref()).await {
            Ok(answer) => Json(answer).into_response(),
            Err(e) => refused(&e),
        };
    }
    // `stream_options.include_usage`: the usage chunk is sent only when asked.
    let usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let stream = match engine.chat_stream(body, name.as_deref()).await {
        Ok(s) => s,
        Err(e) => return refused(&e),
    };
    // After an error event the stream ends, without `[DONE]`.
    let events = futures::stream::unfold((stream, false), move |(mut s, ended)| async move {
        if ended {
            return None;
        }
        loop {
            let event = match s.next().await {
                None => return Some((Event::default().data("[DONE]"), (s, true))),
                Some(Err(e)) => {
                    return Some((
                        Event::default().data(e.openai_body().to_string()),
                        (s, true),
                    ));
                }
                Some(Ok(chunk))
                    if !usage
                        && chunk
                            .get("choices")
                            .and_then(Value::as_array)
                            .is_some_and(Vec::is_empty) =>
                {
                    continue;
                }
                Some(Ok(chunk)) => Event::default().data(chunk.to_string()),
            };
            return Some((event, (s, false)));
        }
    });
    Sse::new(events.map(Ok::<_, Infallible>)).into_response()
}
