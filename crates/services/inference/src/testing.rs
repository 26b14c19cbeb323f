//! Fake providers for tests and the benchmark: real HTTP servers on
//! `127.0.0.1:0` speaking one provider's wire format (OpenAI chat completions,
//! Anthropic Messages, Gemini, Ollama's NDJSON), answers and streams, and misbehaving on demand:
//! 429 with `Retry-After`, 500, a malformed body, a slow answer, a connection
//! dropped mid-stream, an error event after a 200.
//!
//! Each answer is [`REPLY`] (or, unstreamed, the text queued with
//! [`FakeProvider::then_reply`]), with usage [`PROMPT_TOKENS`] / [`COMPLETION_TOKENS`]
//! (unless [`Behaviour::NoUsage`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The text every fake answers.
pub const REPLY: &str = "Hello from the fake provider.";
/// The prompt tokens every fake reports.
pub const PROMPT_TOKENS: u64 = 7;
/// The completion tokens every fake reports.
pub const COMPLETION_TOKENS: u64 = 5;

/// A wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI chat completions (`/v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
    /// Gemini (`/v1beta/models/{model}:generateContent`).
    Gemini,
    /// Ollama's native `/api/chat` (streams as NDJSON).
    Ollama,
}

/// How the fake answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// A normal answer.
    Answer,
    /// A normal answer without usage.
    NoUsage,
    /// 429 with `Retry-After: <secs>`.
    RateLimited {
        /// The seconds asked for.
        retry_after_secs: u64,
    },
    /// 500.
    ServerError,
    /// 200 with a body that is not the format (not JSON).
    Malformed,
    /// The answer after a pause.
    Slow(Duration),
    /// A stream that sends its first content, then drops the connection.
    DropMidStream,
    /// A stream that sends its first content, then an error event.
    ErrorAfterStart,
    /// A stream that sends an error event before any content.
    ErrorBeforeContent,
}

#[derive(Debug)]
struct Fake {
    wire: Wire,
    script: Mutex<VecDeque<Behaviour>>,
    default: Mutex<Behaviour>,
    requests: AtomicUsize,
    bodies: Mutex<Vec<(HeaderMap, Value)>>,
    replies: Mutex<VecDeque<String>>,
}

/// A fake provider, serving until dropped.
#[derive(Debug)]
pub struct FakeProvider {
    addr: SocketAddr,
    fake: Arc<Fake>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    /// Starts one speaking `wire`, answering normally.
    pub async fn start(wire: Wire) -> std::io::Result<Self> {
        let fake = Arc::new(Fake {
            wire,
            script: Mutex::default(),
            default: Mutex::new(Behaviour::Answer),
            requests: AtomicUsize::new(0),
            bodies: Mutex::default(),
            replies: Mutex::default(),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .route("/v1beta/models/{spec}", post(gemini))
            .route("/api/chat", post(ollama))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { addr, fake, task })
    }

    /// The `base_url` to configure for it.
    pub fn base_url(&self) -> String {
        match self.fake.wire {
            Wire::OpenAi => format!("http://{}/v1", self.addr),
            Wire::Anthropic | Wire::Gemini | Wire::Ollama => format!("http://{}", self.addr),
        }
    }

    /// Its wire format.
    pub fn wire(&self) -> Wire {
        self.fake.wire
    }

    /// The next request (after those already queued) is answered so.
    pub fn then(&self, behaviour: Behaviour) -> &Self {
        self.fake.script.lock().push_back(behaviour);
        self
    }

    /// Requests beyond the queued ones are answered so.
    pub fn always(&self, behaviour: Behaviour) {
        *self.fake.default.lock() = behaviour;
    }

    /// The next unstreamed answer (after those already queued) has the text
    /// `text` instead of [`REPLY`].
    pub fn then_reply(&self, text: impl Into<String>) -> &Self {
        self.fake.replies.lock().push_back(text.into());
        self
    }

    /// How many requests it received.
    pub fn requests(&self) -> usize {
        self.fake.requests.load(Ordering::SeqCst)
    }

    /// The last request's headers and body.
    pub fn last_request(&self) -> Option<(HeaderMap, Value)> {
        self.fake.bodies.lock().last().cloned()
    }
}

impl Fake {
    fn next(&self, headers: HeaderMap, body: Value) -> Behaviour {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut bodies = self.bodies.lock();
        if bodies.len() >= 64 {
            bodies.remove(0);
        }
        bodies.push((headers, body));
        self.script
            .lock()
            .pop_front()
            .unwrap_or(*self.default.lock())
    }

    /// The text of the next unstreamed answer.
    fn reply(&self) -> String {
        self.replies
            .lock()
            .pop_front()
            .unwrap_or_else(|| REPLY.to_owned())
    }
}

/// The words of [`REPLY`] as stream pieces (`"Hello"`, `" from"`, …).
fn pieces() -> Vec<String> {
    REPLY
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

/// A refusal or a pause for `behaviour`, before any answer.
async fn before(behaviour: Behaviour) -> Option<Response> {
    match behaviour {
        Behaviour::RateLimited { retry_after_secs } => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after_secs.to_string())],
                r#"{"error":{"message":"rate limited","type":"rate_limit_error"}}"#,
            )
                .into_response(),
        ),
        Behaviour::ServerError => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":{"message":"boom"}}"#,
            )
                .into_response(),
        ),
        Behaviour::Malformed => Some((StatusCode::OK, "this is not json").into_response()),
        Behaviour::Slow(pause) => {
            tokio::time::sleep(pause).await;
            None
        }
        _ => None,
    }
}

/// A JSON answer.
fn json_answer(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// An SSE answer of `events` (each `(event name, data)`), dropping the connection
/// after `drop_after` events when given.
fn sse(events: Vec<(Option<&'static str>, String)>, drop_after: Option<usize>) -> Response {
    let frames = events
        .into_iter()
        .map(|(name, data)| {
            let head = name.map(|n| format!("event: {n}\n")).unwrap_or_default();
            format!("{head}data: {data}\n\n")
        })
        .collect();
    streamed("text/event-stream", frames, drop_after)
}

/// A streamed answer of `frames`, dropping the connection after `drop_after` when
/// given.
fn streamed(
    content_type: &'static str,
    frames: Vec<String>,
    drop_after: Option<usize>,
) -> Response {
    let mut frames: Vec<Result<Bytes, std::io::Error>> =
        frames.into_iter().map(|f| Ok(Bytes::from(f))).collect();
    if let Some(n) = drop_after {
        frames.truncate(n);
        frames.push(Err(std::io::Error::other("connection dropped")));
    }
    // The drop comes a moment after the content, as on a real network: sent at
    // once, the connection's abort would overtake the frames still buffered.
    let frames = futures::stream::iter(frames).then(|frame| async move {
        if frame.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        frame
    });
    Response::builder()
        .header("content-type", content_type)
        .body(Body::from_stream(frames))
        .unwrap_or_default()
}

async fn openai(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    let behaviour = fake.next(headers, body.clone());
    if let Some(r) = before(behaviour).await {
        return r;
    }
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let usage = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS});
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let mut answer = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": fake.reply()}, "finish_reason": "stop"}],
            "system_fingerprint": "fp_fake", "x_provider_extra": {"kept": true},
        });
        if behaviour != Behaviour::NoUsage {
            answer["usage"] = usage;
        }
        return json_answer(answer);
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let error = json!({"error": {"message": "overloaded", "type": "server_error"}}).to_string();
    let mut events = vec![(
        None,
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    )];
    if behaviour == Behaviour::ErrorBeforeContent {
        events.push((None, error));
        return sse(events, None);
    }
    for piece in pieces() {
        events.push((None, chunk(json!({"content": piece}), Value::Null)));
        if behaviour == Behaviour::ErrorAfterStart {
            events.push((None, error));
            return sse(events, None);
        }
    }
    events.push((None, chunk(json!({}), json!("stop"))));
    let include = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    if include && behaviour != Behaviour::NoUsage {
        events.push((None, json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage}).to_string()));
    }
    events.push((None, "[DONE]".to_owned()));
    sse(events, (behaviour == Behaviour::DropMidStream).then_some(2))
}

async fn anthropic(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    let behaviour = fake.next(headers, body.clone());
    if let Some(r) = before(behaviour).await {
        return r;
    }
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let usage = behaviour != Behaviour::NoUsage;
    // Without usage, the fields are left out (a server that bends the format).
    let tokens = |input: u64, output: u64| {
        if usage {
            json!({"input_tokens": input, "output_tokens": output})
        } else {
            Value::Null
        }
    };
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let mut answer = json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": fake.reply()}],
            "stop_reason": "end_turn", "stop_sequence": null,
        });
        if usage {
            answer["usage"] = tokens(PROMPT_TOKENS, COMPLETION_TOKENS);
        }
        return json_answer(answer);
    }
    let error =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            .to_string();
    let mut events = vec![
        (Some("message_start"), json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [], "usage": tokens(PROMPT_TOKENS, 1)}}).to_string()),
        (Some("content_block_start"), json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
        (Some("ping"), json!({"type": "ping"}).to_string()),
    ];
    if behaviour == Behaviour::ErrorBeforeContent {
        events.push((Some("error"), error));
        return sse(events, None);
    }
    for piece in pieces() {
        events.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}).to_string()));
        if behaviour == Behaviour::ErrorAfterStart {
            events.push((Some("error"), error));
            return sse(events, None);
        }
    }
    events.push((
        Some("content_block_stop"),
        json!({"type": "content_block_stop", "index": 0}).to_string(),
    ));
    events.push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": if usage { json!({"output_tokens": COMPLETION_TOKENS}) } else { Value::Null }}).to_string()));
    events.push((
        Some("message_stop"),
        json!({"type": "message_stop"}).to_string(),
    ));
    sse(events, (behaviour == Behaviour::DropMidStream).then_some(4))
}

async fn gemini(
    State(fake): State<Arc<Fake>>,
    Path(spec): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    let behaviour = fake.next(headers, body.clone());
    if let Some(r) = before(behaviour).await {
        return r;
    }
    let (model, action) = spec.split_once(':').unwrap_or((&spec, ""));
    let usage = json!({"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": COMPLETION_TOKENS, "totalTokenCount": PROMPT_TOKENS + COMPLETION_TOKENS});
    let answer = |text: &str, finish: Option<&str>, usage: Option<&Value>| {
        let mut candidate =
            json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        let mut a =
            json!({"candidates": [candidate], "modelVersion": model, "responseId": "gemini-fake"});
        if let Some(u) = usage {
            a["usageMetadata"] = u.clone();
        }
        a
    };
    let with_usage = (behaviour != Behaviour::NoUsage).then_some(&usage);
    if action != "streamGenerateContent" || query.as_deref() != Some("alt=sse") {
        return json_answer(answer(&fake.reply(), Some("STOP"), with_usage));
    }
    let error = json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
        .to_string();
    if behaviour == Behaviour::ErrorBeforeContent {
        return sse(vec![(None, error)], None);
    }
    let pieces = pieces();
    let last = pieces.len() - 1;
    let mut events = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let done = i == last;
        events.push((
            None,
            answer(
                piece,
                done.then_some("STOP"),
                if done { with_usage } else { None },
            )
            .to_string(),
        ));
        if behaviour == Behaviour::ErrorAfterStart {
            events.push((None, error));
            return sse(events, None);
        }
    }
    sse(events, (behaviour == Behaviour::DropMidStream).then_some(1))
}

async fn ollama(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    let behaviour = fake.next(headers, body.clone());
    if let Some(r) = before(behaviour).await {
        return r;
    }
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let last = |text: &str| {
        let mut line = json!({"model": model, "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": text}, "done": true, "done_reason": "stop", "total_duration": 1000});
        if behaviour != Behaviour::NoUsage {
            line["prompt_eval_count"] = json!(PROMPT_TOKENS);
            line["eval_count"] = json!(COMPLETION_TOKENS);
        }
        line
    };
    if body.get("stream").and_then(Value::as_bool) == Some(false) {
        return json_answer(last(&fake.reply()));
    }
    // Ollama streams unless told not to, one JSON object per line.
    let line = |text: &str| {
        json!({"model": model, "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": text}, "done": false}).to_string() + "\n"
    };
    let error = json!({"error": "model runner has unexpectedly stopped"}).to_string() + "\n";
    if behaviour == Behaviour::ErrorBeforeContent {
        return streamed("application/x-ndjson", vec![error], None);
    }
    let mut frames = Vec::new();
    for piece in pieces() {
        frames.push(line(&piece));
        if behaviour == Behaviour::ErrorAfterStart {
            frames.push(error);
            return streamed("application/x-ndjson", frames, None);
        }
    }
    frames.push(last("").to_string() + "\n");
    streamed(
        "application/x-ndjson",
        frames,
        (behaviour == Behaviour::DropMidStream).then_some(1),
    )
}
