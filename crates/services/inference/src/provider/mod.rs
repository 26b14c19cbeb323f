//! [`Provider`]: one LLM API behind one wire format, one module per format.
//!
//! Every provider takes a request in the OpenAI chat-completions shape (a raw JSON
//! object, so fields Plexus does not know pass through where the format allows) and
//! answers in that shape too: a `chat.completion` object, or a stream of
//! `chat.completion.chunk` objects ending with one that carries `usage` when the
//! provider reported it.
//!
//! - [`openai`]: OpenAI chat completions (also Ollama's `/v1`, vLLM, llama.cpp's
//!   server, LM Studio): the body is proxied as it came, only `model` replaced.
//! - [`anthropic`]: Anthropic Messages, translated both ways; `event: error` after a
//!   200 is an error of the stream, never a quiet end.
//! - [`gemini`]: Google Gemini `generateContent` / `streamGenerateContent?alt=sse`.
//! - [`ollama`]: Ollama's native `/api/chat`, whose streams are newline-delimited
//!   JSON, not SSE.
//!
//! The shared pieces: [`Http`] (one client, bounded body reads, `Retry-After`),
//! the [`sse`] parser, and [`translate`], which turns a provider's events into
//! chunks and checks that the stream ended the way its format says it must.

pub mod anthropic;
pub mod gemini;
pub mod ollama;
pub mod openai;
pub mod sse;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use serde_json::{Value, json};

use crate::config::{ApiKey, Kind, ProviderConfig};
use crate::error::ProviderError;
use sse::{Event, SseParser};

/// A stream of OpenAI-shaped `chat.completion.chunk` objects.
pub type ChunkStream = BoxStream<'static, Result<Value, ProviderError>>;

/// One LLM API.
#[plexus_core::async_trait]
pub trait Provider: fmt::Debug + Send + Sync + 'static {
    /// Its wire format.
    fn kind(&self) -> Kind;

    /// One answer to `body` (OpenAI shape) from `model`, as a `chat.completion`.
    async fn chat(&self, model: &str, body: &Value) -> Result<Value, ProviderError>;

    /// A streamed answer. `Err` when the provider refused before streaming (an
    /// error status); errors after that arrive in the stream.
    async fn stream(&self, model: &str, body: &Value) -> Result<ChunkStream, ProviderError>;
}

/// Builds the provider a configuration names, reading its key from the
/// environment when `api_key_env` is set.
pub fn build(config: &ProviderConfig, http: Http) -> Arc<dyn Provider> {
    let key = config.api_key.clone().or_else(|| {
        config
            .api_key_env
            .as_deref()
            .and_then(|var| std::env::var(var).ok())
            .map(ApiKey::new)
    });
    let base = config.base_url.trim_end_matches('/').to_owned();
    match config.kind {
        Kind::Openai => Arc::new(openai::OpenAi::new(base, key, http)),
        Kind::Anthropic => Arc::new(anthropic::Anthropic::new(base, key, http)),
        Kind::Gemini => Arc::new(gemini::Gemini::new(base, key, http)),
        Kind::Ollama => Arc::new(ollama::Ollama::new(base, key, http)),
    }
}

/// The HTTP client every provider shares, with the bounds it reads within.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    max_bytes: usize,
    timeout: Duration,
}

impl Http {
    /// A client reading at most `max_bytes` per answer (or stream event) and waiting
    /// at most `timeout` for an answer (a stream: for each chunk).
    pub fn new(max_bytes: usize, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            client,
            max_bytes,
            timeout,
        }
    }

    /// A POST of `body` to `url` with `headers`.
    pub(crate) fn post(&self, url: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client.post(url).json(body)
    }

    /// Sends, and turns an error status into [`ProviderError::Status`].
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(connection)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = self.read(response).await.unwrap_or_default();
        let mut message = String::from_utf8_lossy(&body).into_owned();
        message.truncate(message.floor_char_boundary(512));
        Err(ProviderError::Status {
            status,
            retry_after,
            message,
        })
    }

    /// Sends and reads a JSON answer.
    pub(crate) async fn json(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ProviderError> {
        let response = self.send(request).await?;
        let body = tokio::time::timeout(self.timeout, self.read(response))
            .await
            .map_err(|_| ProviderError::Timeout)??;
        serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))
    }

    /// Reads a body, refusing one over `max_bytes`.
    async fn read(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(connection)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(ProviderError::Malformed(format!(
                    "answer over {} bytes",
                    self.max_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Sends and reads the answer as server-sent events.
    pub(crate) async fn events(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<BoxStream<'static, Result<Event, ProviderError>>, ProviderError> {
        self.framed(request, SseParser::new(self.max_bytes)).await
    }

    /// Sends and reads the answer as newline-delimited JSON, a line per event.
    pub(crate) async fn lines(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<BoxStream<'static, Result<Event, ProviderError>>, ProviderError> {
        self.framed(request, SseParser::lines(self.max_bytes)).await
    }

    /// Sends and reads the answer's events as `parser` frames them.
    async fn framed(
        &self,
        request: reqwest::RequestBuilder,
        parser: SseParser,
    ) -> Result<BoxStream<'static, Result<Event, ProviderError>>, ProviderError> {
        let response = self.send(request).await?;
        let bytes = response.bytes_stream();
        let timeout = self.timeout;
        let state = (bytes, parser, VecDeque::new(), false);
        let events = futures::stream::unfold(
            state,
            move |(mut bytes, mut parser, mut ready, ended)| async move {
                loop {
                    if let Some(event) = ready.pop_front() {
                        return Some((Ok(event), (bytes, parser, ready, ended)));
                    }
                    if ended {
                        return None;
                    }
                    let next = match tokio::time::timeout(timeout, bytes.next()).await {
                        Err(_) => Err(ProviderError::Timeout),
                        Ok(None) => {
                            ready.extend(parser.finish());
                            return ready
                                .pop_front()
                                .map(|e| (Ok(e), (bytes, parser, ready, true)));
                        }
                        Ok(Some(Err(e))) => Err(connection(e)),
                        Ok(Some(Ok(chunk))) => parser.feed(&chunk).map(|evs| ready.extend(evs)),
                    };
                    if let Err(e) = next {
                        return Some((Err(e), (bytes, parser, VecDeque::new(), true)));
                    }
                }
            },
        );
        Ok(events.boxed())
    }
}

/// A transport error as a provider error.
fn connection(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        // The full chain: "error decoding response body: connection closed …".
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ProviderError::Connection(message)
    }
}

/// `retry-after-ms` (OpenAI's) or `Retry-After` in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    text("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// What turns one provider's stream events into OpenAI chunks.
pub(crate) trait Translator: Send + 'static {
    /// The chunks one event gives (often one, sometimes none).
    fn event(&mut self, event: Event) -> Result<Vec<Value>, ProviderError>;
    /// Called when the stream ends: `Err` unless the format's end was seen.
    fn finish(&mut self) -> Result<Vec<Value>, ProviderError>;
}

/// Chunks from events, through a translator; after an error the stream ends.
pub(crate) fn translate(
    events: BoxStream<'static, Result<Event, ProviderError>>,
    translator: impl Translator,
) -> ChunkStream {
    let state = (events, translator, VecDeque::<Value>::new(), false);
    futures::stream::unfold(state, |(mut events, mut t, mut ready, ended)| async move {
        loop {
            if let Some(chunk) = ready.pop_front() {
                return Some((Ok(chunk), (events, t, ready, ended)));
            }
            if ended {
                return None;
            }
            let more = match events.next().await {
                Some(Ok(event)) => t.event(event),
                Some(Err(e)) => Err(e),
                None => {
                    let last = t.finish();
                    if let Ok(chunks) = &last {
                        ready.extend(chunks.iter().cloned());
                        let next = ready.pop_front()?;
                        return Some((Ok(next), (events, t, ready, true)));
                    }
                    last
                }
            };
            match more {
                Ok(chunks) => ready.extend(chunks),
                Err(e) => return Some((Err(e), (events, t, VecDeque::new(), true))),
            }
        }
    })
    .boxed()
}

/// An OpenAI `chat.completion.chunk` with one choice.
pub(crate) fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": now_secs(),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

/// An OpenAI usage chunk (no choices), as `stream_options.include_usage` sends.
pub(crate) fn usage_chunk(id: &str, model: &str, prompt: u64, completion: u64) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": now_secs(),
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion),
    })
}

/// An OpenAI `chat.completion` with one text choice.
pub(crate) fn completion(
    id: &str,
    model: &str,
    text: &str,
    finish: &str,
    tokens: Option<(u64, u64)>,
) -> Value {
    let mut answer = json!({
        "id": id,
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }],
    });
    if let Some((prompt, completion)) = tokens {
        answer["usage"] = usage(prompt, completion);
    }
    answer
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// Seconds since the epoch, for `created`.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A message's text: a string, or the `text` of its parts.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// `stop` as a list (OpenAI allows a string or an array).
pub(crate) fn stops(body: &Value) -> Option<Vec<Value>> {
    match body.get("stop")? {
        Value::String(s) => Some(vec![Value::String(s.clone())]),
        Value::Array(a) => Some(a.clone()),
        _ => None,
    }
}
