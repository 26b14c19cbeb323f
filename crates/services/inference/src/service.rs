//! [`InferenceService`]: the engine as the `inference` service, so every front end
//! (JSON-RPC, WebSocket, MCP, the CLI, scripts) reaches it through the call path.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `chat` | an OpenAI chat request (`model`, `messages`, any other field passed on), `stream_topic`? | a `chat.completion` with `usage` and `plexus` |
//! | `models` | none | `{object: "list", data: [...]}` |
//!
//! With `stream_topic` (which must start with `inference.stream.`), the answer is
//! streamed: each `chat.completion.chunk` is published on that topic as it comes
//! (a WebSocket caller subscribed to it with `plexus.subscribe` receives them as
//! `plexus.event` notifications), and the call answers with the whole completion
//! once the stream ends. The caller's token name is whom the budget is charged to.

use std::sync::LazyLock;

use futures::StreamExt;
use plexus_core::methods::{Effect, MethodTable, NoParams, TableParts, TableService};
use plexus_core::{CallContext, Envelope, Payload, ServiceDescriptor, ServiceError, Topic};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Inference;

/// The prefix a `stream_topic` must have.
pub const STREAM_PREFIX: &str = "inference.stream.";

/// The engine behind the `inference` service.
#[derive(Clone, Debug)]
pub struct InferenceService {
    engine: Inference,
    descriptor: ServiceDescriptor,
}

impl InferenceService {
    /// The service over `engine`, instance `inference-1`.
    pub fn new(engine: Inference) -> Self {
        Self {
            engine,
            descriptor: METHODS.describe(
                ServiceDescriptor::new("inference", "inference")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "One gateway to LLM providers: aliases with fallback, breakers, retries, usage, cost and budgets",
                    ),
            ),
        }
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Inference {
        &self.engine
    }
}

static METHODS: LazyLock<MethodTable<Inference>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<ChatParams, Value, _>(
            "chat",
            "A chat completion (OpenAI request and answer shape) from a model or alias; with stream_topic, chunks are published there as they come",
            Effect::Mutating,
            chat,
        )
        .method::<NoParams, Value, _>(
            "models",
            "The models and aliases callers may name, with their deployments (OpenAI list format)",
            Effect::Idempotent,
            models,
        )
});

/// Params of `inference.chat`: an OpenAI chat request.
#[derive(Debug, Deserialize, JsonSchema)]
struct ChatParams {
    /// An alias of `[inference.models]` or a deployment `provider/model`.
    model: String,
    /// The conversation: `{role, content}` objects.
    messages: Vec<Value>,
    /// Stream the answer as events on this topic (`inference.stream.…`).
    #[serde(default)]
    stream_topic: Option<String>,
    /// Any other field (`temperature`, `max_tokens`, `tools`, …) is passed on.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

async fn chat(e: &Inference, ctx: CallContext, p: ChatParams) -> Result<Value, ServiceError> {
    let mut body = p.rest;
    body.remove("stream");
    body.insert("model".into(), Value::String(p.model));
    body.insert("messages".into(), Value::Array(p.messages));
    let body = Value::Object(body);
    let caller = ctx.caller.as_deref();
    let Some(topic) = p.stream_topic else {
        return Ok(e.chat(body, caller).await?);
    };
    let topic = match topic.strip_prefix(STREAM_PREFIX) {
        Some(rest) if !rest.is_empty() => Topic::new(&topic)
            .map_err(|err| ServiceError::invalid_params("/stream_topic", err.to_string()))?,
        _ => {
            return Err(ServiceError::invalid_params(
                "/stream_topic",
                format!("must start with `{STREAM_PREFIX}`"),
            ));
        }
    };
    let node = e
        .node()
        .ok_or_else(|| ServiceError::unavailable("streaming needs the engine attached to a node"))?
        .clone();
    let mut stream = e.chat_stream(body, caller).await?;
    let mut answer = Assembled::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        answer.add(&chunk);
        if let Ok(payload) = Payload::json(&chunk) {
            let envelope =
                Envelope::new(topic.clone(), payload).with_correlation_id(ctx.correlation_id);
            let _ = node.bus().publish(envelope).await;
        }
    }
    Ok(answer.finish())
}

async fn models(e: &Inference, _ctx: CallContext, _p: NoParams) -> Result<Value, ServiceError> {
    Ok(e.models())
}

/// A streamed answer put back together as one `chat.completion`.
#[derive(Debug, Default)]
pub struct Assembled {
    id: Option<Value>,
    model: Option<Value>,
    text: String,
    finish: Option<Value>,
    usage: Option<Value>,
    plexus: Option<Value>,
}

impl Assembled {
    /// Adds one chunk.
    pub fn add(&mut self, chunk: &Value) {
        self.id = self.id.take().or_else(|| chunk.get("id").cloned());
        self.model = self.model.take().or_else(|| chunk.get("model").cloned());
        if let Some(choice) = chunk.pointer("/choices/0") {
            if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
                self.text.push_str(text);
            }
            if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
                self.finish = Some(f.clone());
            }
        }
        if let Some(u) = chunk.get("usage") {
            self.usage = Some(u.clone());
        }
        if let Some(p) = chunk.get("plexus") {
            self.plexus = Some(p.clone());
        }
    }

    /// The completion.
    pub fn finish(self) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": crate::provider::now_secs(),
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.text},
                "finish_reason": self.finish.unwrap_or(Value::String("stop".into())),
            }],
            "usage": self.usage,
            "plexus": self.plexus,
        })
    }
}

impl TableService for InferenceService {
    type State = Inference;

    fn parts(&self) -> TableParts<'_, Inference> {
        (&METHODS, &self.engine, &self.descriptor)
    }
}
