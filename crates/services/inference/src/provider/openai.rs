//! OpenAI chat completions: `POST {base_url}/chat/completions`, answers and SSE
//! streams proxied as they come (only `model` is replaced, and a stream asks for
//! its usage with `stream_options.include_usage`). Also Ollama's `/v1`, vLLM,
//! llama.cpp's server and LM Studio.

use serde_json::{Value, json};

use super::sse::Event;
use super::{ChunkStream, Http, Provider, Translator, translate};
use crate::config::{ApiKey, Kind};
use crate::error::ProviderError;

/// An OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAi {
    url: String,
    key: Option<ApiKey>,
    http: Http,
}

impl OpenAi {
    /// The server at `base` (`http://127.0.0.1:11434/v1`), with `key` if it needs one.
    pub fn new(base: String, key: Option<ApiKey>, http: Http) -> Self {
        Self {
            url: format!("{base}/chat/completions"),
            key,
            http,
        }
    }

    fn request(&self, body: &Value) -> reqwest::RequestBuilder {
        let request = self.http.post(&self.url, body);
        match &self.key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }
}

/// `body` for `model`, streamed or not.
fn body_for(model: &str, body: &Value, stream: bool) -> Value {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        object.insert("model".into(), Value::String(model.to_owned()));
        object.insert("stream".into(), Value::Bool(stream));
        if stream {
            let options = object.entry("stream_options").or_insert_with(|| json!({}));
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), Value::Bool(true));
            }
        } else {
            object.remove("stream_options");
        }
    }
    body
}

#[plexus_core::async_trait]
impl Provider for OpenAi {
    fn kind(&self) -> Kind {
        Kind::Openai
    }

    async fn chat(&self, model: &str, body: &Value) -> Result<Value, ProviderError> {
        let answer = self
            .http
            .json(self.request(&body_for(model, body, false)))
            .await?;
        if !answer.get("choices").is_some_and(Value::is_array) {
            return Err(ProviderError::Malformed("no `choices` array".into()));
        }
        Ok(answer)
    }

    async fn stream(&self, model: &str, body: &Value) -> Result<ChunkStream, ProviderError> {
        let events = self
            .http
            .events(self.request(&body_for(model, body, true)))
            .await?;
        Ok(translate(events, Chunks { done: false }))
    }
}

/// OpenAI's events are chunks already; `[DONE]` ends the stream.
struct Chunks {
    done: bool,
}

impl Translator for Chunks {
    fn event(&mut self, event: Event) -> Result<Vec<Value>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        if event.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        let chunk: Value = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::Malformed(format!("stream chunk: {e}")))?;
        if let Some(error) = chunk.get("error") {
            return Err(ProviderError::InStream(error.to_string()));
        }
        Ok(vec![chunk])
    }

    fn finish(&mut self) -> Result<Vec<Value>, ProviderError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(ProviderError::Connection(
                "stream ended before [DONE]".into(),
            ))
        }
    }
}
