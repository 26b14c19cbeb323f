//! Ollama's native chat API: `POST {base_url}/api/chat` (`base_url` without `/v1`).
//! Parameters go into `options` (`temperature`, `top_p`, `top_k`, `seed`, `stop`,
//! `max_tokens` as `num_predict`); the usage is `prompt_eval_count` and
//! `eval_count`. A stream is newline-delimited JSON, one object per line, the last
//! with `"done": true`: a stream that ends before it is a dropped one.

use serde_json::{Map, Value, json};

use super::sse::Event;
use super::{
    ChunkStream, Http, Provider, Translator, chunk, completion, stops, text_of, translate,
    usage_chunk,
};
use crate::config::{ApiKey, Kind};
use crate::error::ProviderError;

/// An Ollama server.
#[derive(Debug)]
pub struct Ollama {
    url: String,
    key: Option<ApiKey>,
    http: Http,
}

impl Ollama {
    /// The server at `base` (`http://127.0.0.1:11434`).
    pub fn new(base: String, key: Option<ApiKey>, http: Http) -> Self {
        Self {
            url: format!("{base}/api/chat"),
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

/// The `/api/chat` request for an OpenAI-shaped `body`.
pub fn request_body(model: &str, body: &Value, stream: bool) -> Value {
    let messages: Vec<Value> = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            json!({"role": role, "content": text_of(m.get("content").unwrap_or(&Value::Null))})
        })
        .collect();
    let mut options = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("seed", "seed"),
        ("max_tokens", "num_predict"),
        ("max_completion_tokens", "num_predict"),
    ] {
        if let Some(v) = body.get(from) {
            options.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = stops(body) {
        options.insert("stop".into(), Value::Array(stop));
    }
    let mut out = json!({"model": model, "messages": messages, "stream": stream});
    if !options.is_empty() {
        out["options"] = Value::Object(options);
    }
    out
}

fn finish_reason(answer: &Value) -> &'static str {
    match answer.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ => "stop",
    }
}

/// `(prompt, completion)` when the answer counted them.
fn tokens(answer: &Value) -> Option<(u64, u64)> {
    let prompt = answer.get("prompt_eval_count").and_then(Value::as_u64);
    let completion = answer.get("eval_count").and_then(Value::as_u64);
    (prompt.is_some() || completion.is_some())
        .then(|| (prompt.unwrap_or(0), completion.unwrap_or(0)))
}

#[plexus_core::async_trait]
impl Provider for Ollama {
    fn kind(&self) -> Kind {
        Kind::Ollama
    }

    async fn chat(&self, model: &str, body: &Value) -> Result<Value, ProviderError> {
        let answer = self
            .http
            .json(self.request(&request_body(model, body, false)))
            .await?;
        let text = answer
            .pointer("/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::Malformed("no `message.content`".into()))?;
        Ok(completion(
            "ollama",
            answer.get("model").and_then(Value::as_str).unwrap_or(model),
            text,
            finish_reason(&answer),
            tokens(&answer),
        ))
    }

    async fn stream(&self, model: &str, body: &Value) -> Result<ChunkStream, ProviderError> {
        let lines = self
            .http
            .lines(self.request(&request_body(model, body, true)))
            .await?;
        Ok(translate(
            lines,
            Lines {
                model: model.to_owned(),
                first: true,
                done: false,
            },
        ))
    }
}

/// The state of one translated stream.
struct Lines {
    model: String,
    first: bool,
    done: bool,
}

impl Translator for Lines {
    fn event(&mut self, event: Event) -> Result<Vec<Value>, ProviderError> {
        let line: Value = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::Malformed(format!("stream line: {e}")))?;
        if let Some(error) = line.get("error") {
            return Err(ProviderError::InStream(error.to_string()));
        }
        let mut out = Vec::new();
        let text = line
            .pointer("/message/content")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut delta = json!({"content": text});
        if std::mem::take(&mut self.first) {
            delta["role"] = Value::String("assistant".into());
        }
        let done = line.get("done").and_then(Value::as_bool) == Some(true);
        out.push(chunk(
            "ollama",
            &self.model,
            delta,
            done.then(|| finish_reason(&line)),
        ));
        if done {
            self.done = true;
            out.extend(tokens(&line).map(|(p, c)| usage_chunk("ollama", &self.model, p, c)));
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Value>, ProviderError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(ProviderError::Connection(
                "stream ended before \"done\": true".into(),
            ))
        }
    }
}
