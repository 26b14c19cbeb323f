//! Google Gemini: `POST {base_url}/v1beta/models/{model}:generateContent`, and
//! `:streamGenerateContent?alt=sse` for streams, with `x-goog-api-key`. The
//! OpenAI-shaped request is translated (system messages become
//! `systemInstruction`, `assistant` becomes `model`, parameters go into
//! `generationConfig`), and answers back. Gemini marks no end of stream: a stream
//! that ends before a candidate gave its `finishReason` is a dropped one.

use serde_json::{Map, Value, json};

use super::sse::Event;
use super::{
    ChunkStream, Http, Provider, Translator, chunk, completion, stops, text_of, translate,
    usage_chunk,
};
use crate::config::{ApiKey, Kind};
use crate::error::ProviderError;

/// A Gemini API.
#[derive(Debug)]
pub struct Gemini {
    base: String,
    key: Option<ApiKey>,
    http: Http,
}

impl Gemini {
    /// The API at `base` (`https://generativelanguage.googleapis.com`).
    pub fn new(base: String, key: Option<ApiKey>, http: Http) -> Self {
        Self { base, key, http }
    }

    fn request(&self, model: &str, action: &str, body: &Value) -> reqwest::RequestBuilder {
        let url = format!("{}/v1beta/models/{model}:{action}", self.base);
        let request = self.http.post(&url, body);
        match &self.key {
            Some(key) => request.header("x-goog-api-key", key.expose()),
            None => request,
        }
    }
}

/// The `generateContent` request for an OpenAI-shaped `body`.
pub fn request_body(body: &Value) -> Value {
    let mut system = Vec::new();
    let mut contents = Vec::new();
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = text_of(m.get("content").unwrap_or(&Value::Null));
        match m.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => system.push(json!({"text": text})),
            Some("assistant") => contents.push(json!({"role": "model", "parts": [{"text": text}]})),
            _ => contents.push(json!({"role": "user", "parts": [{"text": text}]})),
        }
    }
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("max_tokens", "maxOutputTokens"),
        ("max_completion_tokens", "maxOutputTokens"),
        ("seed", "seed"),
    ] {
        if let Some(v) = body.get(from) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = stops(body) {
        config.insert("stopSequences".into(), Value::Array(stop));
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Value::Object(out)
}

/// OpenAI's `finish_reason` for Gemini's `finishReason`.
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => "content_filter",
        _ => "stop",
    }
}

/// The text of an answer's first candidate.
fn text(answer: &Value) -> String {
    answer
        .pointer("/candidates/0/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect()
}

/// Prompt and completion tokens of `usageMetadata` (thoughts count as completion).
fn tokens(usage: &Value) -> (u64, u64) {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    (
        n("promptTokenCount"),
        n("candidatesTokenCount") + n("thoughtsTokenCount"),
    )
}

#[plexus_core::async_trait]
impl Provider for Gemini {
    fn kind(&self) -> Kind {
        Kind::Gemini
    }

    async fn chat(&self, model: &str, body: &Value) -> Result<Value, ProviderError> {
        let answer = self
            .http
            .json(self.request(model, "generateContent", &request_body(body)))
            .await?;
        if !answer.get("candidates").is_some_and(Value::is_array) {
            return Err(ProviderError::Malformed("no `candidates` array".into()));
        }
        let reason = answer
            .pointer("/candidates/0/finishReason")
            .and_then(Value::as_str)
            .unwrap_or("STOP");
        Ok(completion(
            answer
                .get("responseId")
                .and_then(Value::as_str)
                .unwrap_or("gemini"),
            answer
                .get("modelVersion")
                .and_then(Value::as_str)
                .unwrap_or(model),
            &text(&answer),
            finish_reason(reason),
            answer.get("usageMetadata").map(tokens),
        ))
    }

    async fn stream(&self, model: &str, body: &Value) -> Result<ChunkStream, ProviderError> {
        let events = self
            .http
            .events(self.request(model, "streamGenerateContent?alt=sse", &request_body(body)))
            .await?;
        Ok(translate(
            events,
            Events {
                model: model.to_owned(),
                usage: None,
                finished: false,
                first: true,
            },
        ))
    }
}

/// The state of one translated stream.
struct Events {
    model: String,
    usage: Option<(u64, u64)>,
    finished: bool,
    first: bool,
}

impl Translator for Events {
    fn event(&mut self, event: Event) -> Result<Vec<Value>, ProviderError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::Malformed(format!("stream event: {e}")))?;
        if let Some(error) = data.get("error") {
            return Err(ProviderError::InStream(error.to_string()));
        }
        if let Some(usage) = data.get("usageMetadata") {
            self.usage = Some(tokens(usage));
        }
        let mut delta = json!({"content": text(&data)});
        if std::mem::take(&mut self.first) {
            delta["role"] = Value::String("assistant".into());
        }
        let reason = data
            .pointer("/candidates/0/finishReason")
            .and_then(Value::as_str);
        if reason.is_some() {
            self.finished = true;
        }
        Ok(vec![chunk(
            "gemini",
            &self.model,
            delta,
            reason.map(finish_reason),
        )])
    }

    fn finish(&mut self) -> Result<Vec<Value>, ProviderError> {
        if !self.finished {
            return Err(ProviderError::Connection(
                "stream ended before a finishReason".into(),
            ));
        }
        Ok(self
            .usage
            .map(|(p, c)| usage_chunk("gemini", &self.model, p, c))
            .into_iter()
            .collect())
    }
}
