//! Anthropic Messages: `POST {base_url}/v1/messages` with `x-api-key` and
//! `anthropic-version`. The OpenAI-shaped request is translated (system messages
//! become `system`, `stop` becomes `stop_sequences`, `max_tokens` is required and
//! defaults to 4,096), and answers and stream events are translated back. An
//! `event: error` after the 200 (an overloaded API mid-answer) is an error of the
//! stream, and a stream that ends without `message_stop` is a dropped one.

use serde_json::{Map, Value, json};

use super::sse::Event;
use super::{
    ChunkStream, Http, Provider, Translator, chunk, completion, stops, text_of, translate,
    usage_chunk,
};
use crate::config::{ApiKey, Kind};
use crate::error::ProviderError;

/// The API version sent with every request.
pub const VERSION: &str = "2023-06-01";

/// The answer's `max_tokens` when the request names none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4_096;

/// An Anthropic Messages API.
#[derive(Debug)]
pub struct Anthropic {
    url: String,
    key: Option<ApiKey>,
    http: Http,
}

impl Anthropic {
    /// The API at `base` (`https://api.anthropic.com`).
    pub fn new(base: String, key: Option<ApiKey>, http: Http) -> Self {
        Self {
            url: format!("{base}/v1/messages"),
            key,
            http,
        }
    }

    fn request(&self, body: &Value) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(&self.url, body)
            .header("anthropic-version", VERSION);
        match &self.key {
            Some(key) => request.header("x-api-key", key.expose()),
            None => request,
        }
    }
}

/// The Messages request for an OpenAI-shaped `body`.
pub fn request_body(model: &str, body: &Value, stream: bool) -> Value {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = text_of(m.get("content").unwrap_or(&Value::Null));
        match m.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => system.push(text),
            Some("assistant") => messages.push(json!({"role": "assistant", "content": text})),
            _ => messages.push(json!({"role": "user", "content": text})),
        }
    }
    let max_tokens = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_owned()));
    out.insert("max_tokens".into(), max_tokens.into());
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    for key in ["temperature", "top_p", "top_k", "metadata"] {
        if let Some(v) = body.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = stops(body) {
        out.insert("stop_sequences".into(), Value::Array(stop));
    }
    if stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    Value::Object(out)
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Prompt tokens: the input, cache writes and cache reads together.
fn prompt_tokens(usage: &Value) -> u64 {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| usage.get(*k).and_then(Value::as_u64))
    .sum()
}

#[plexus_core::async_trait]
impl Provider for Anthropic {
    fn kind(&self) -> Kind {
        Kind::Anthropic
    }

    async fn chat(&self, model: &str, body: &Value) -> Result<Value, ProviderError> {
        let answer = self
            .http
            .json(self.request(&request_body(model, body, false)))
            .await?;
        let content = answer
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| ProviderError::Malformed("no `content` array".into()))?;
        let text: String = content
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        let tokens = answer.get("usage").filter(|u| u.is_object()).map(|u| {
            let output = u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0);
            (prompt_tokens(u), output)
        });
        Ok(completion(
            answer.get("id").and_then(Value::as_str).unwrap_or("msg"),
            answer.get("model").and_then(Value::as_str).unwrap_or(model),
            &text,
            finish_reason(answer.get("stop_reason").and_then(Value::as_str)),
            tokens,
        ))
    }

    async fn stream(&self, model: &str, body: &Value) -> Result<ChunkStream, ProviderError> {
        let events = self
            .http
            .events(self.request(&request_body(model, body, true)))
            .await?;
        Ok(translate(
            events,
            Events {
                id: String::from("msg"),
                model: model.to_owned(),
                input: 0,
                output: 0,
                reported: false,
                done: false,
            },
        ))
    }
}

/// The state of one translated stream.
struct Events {
    id: String,
    model: String,
    input: u64,
    output: u64,
    /// Whether the stream reported usage at all.
    reported: bool,
    done: bool,
}

impl Translator for Events {
    fn event(&mut self, event: Event) -> Result<Vec<Value>, ProviderError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::Malformed(format!("stream event: {e}")))?;
        let kind = event
            .event
            .as_deref()
            .or_else(|| data.get("type").and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned();
        Ok(match kind.as_str() {
            "error" => {
                let error = data.get("error").unwrap_or(&data);
                return Err(ProviderError::InStream(error.to_string()));
            }
            "message_start" => {
                let message = data.get("message").unwrap_or(&Value::Null);
                if let Some(id) = message.get("id").and_then(Value::as_str) {
                    self.id = id.to_owned();
                }
                if let Some(model) = message.get("model").and_then(Value::as_str) {
                    self.model = model.to_owned();
                }
                if let Some(usage) = message.get("usage").filter(|u| u.is_object()) {
                    self.reported = true;
                    self.input = prompt_tokens(usage);
                    self.output = usage
                        .get("output_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                }
                vec![chunk(
                    &self.id,
                    &self.model,
                    json!({"role": "assistant", "content": ""}),
                    None,
                )]
            }
            "content_block_delta" => match data.pointer("/delta/text").and_then(Value::as_str) {
                Some(text) => vec![chunk(&self.id, &self.model, json!({"content": text}), None)],
                None => Vec::new(),
            },
            "message_delta" => {
                if let Some(out) = data.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.reported = true;
                    self.output = out;
                }
                let stop = data.pointer("/delta/stop_reason").and_then(Value::as_str);
                vec![chunk(
                    &self.id,
                    &self.model,
                    json!({}),
                    Some(finish_reason(stop)),
                )]
            }
            "message_stop" => {
                self.done = true;
                if self.reported {
                    vec![usage_chunk(&self.id, &self.model, self.input, self.output)]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        })
    }

    fn finish(&mut self) -> Result<Vec<Value>, ProviderError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(ProviderError::Connection(
                "stream ended before message_stop".into(),
            ))
        }
    }
}
