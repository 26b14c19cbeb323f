//! [`Inference`]: the engine. A request names a model (an alias of
//! `[inference.models]`, or one of its deployments as `provider/model`); the engine
//! tries its deployments by priority, those of equal priority balanced round robin,
//! each behind its own circuit breaker (`plexus-resilience`); a retryable failure
//! (429, 5xx, a connection) is retried on the same deployment after the
//! `Retry-After` it asked for (or a doubling pause), up to `retries` times, then
//! the next deployment is tried. A request the provider refused as such (a 400) goes
//! back to the caller: another deployment would refuse it too.
//!
//! A stream fails over too while nothing has reached the caller: the engine waits
//! for the first content before it answers. After that, a failure ends the stream
//! with [`InferenceError::MidStream`], never as a quiet success, and counts against
//! the deployment's breaker.
//!
//! Every answer is accounted: usage as the provider reported it, or estimated (four
//! characters a token) and marked `usage_estimated` when a stream gave none; cost
//! from the price table; the caller's spend against its budget; a spend record on
//! a bounded queue (published as `inference.spend` events once attached to a node;
//! a full queue drops and counts). Answers carry `plexus: {deployment, cost_usd,
//! usage_estimated, attempts}` beside the OpenAI fields.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use plexus_core::{Envelope, Payload, Topic};
use plexus_node::Node;
use plexus_resilience::{CircuitBreaker, ErrorClass, Permit};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cache::ResponseCache;
use crate::config::{InferenceConfig, Price};
use crate::error::{InferenceError, ProviderError};
use crate::metrics::InferenceMetrics;
use crate::provider::{self, ChunkStream, Http, Provider};

/// A stream of OpenAI `chat.completion.chunk` objects; its last chunk carries
/// `usage` and `plexus`. An `Err` item ends it (a failure after it began).
pub type AnswerStream = BoxStream<'static, Result<Value, InferenceError>>;

/// One deployment: a provider, a model there, and its breaker.
#[derive(Debug)]
struct Deployment {
    /// `provider/model`.
    name: String,
    model: String,
    provider: Arc<dyn Provider>,
    breaker: CircuitBreaker,
}

/// An alias: its deployments in priority groups.
#[derive(Debug)]
struct Route {
    groups: Vec<Vec<Arc<Deployment>>>,
    next: AtomicUsize,
}

/// What one accounted answer cost, for a spend record.
#[derive(Clone, Debug, Serialize)]
pub struct Spend {
    /// The caller's token name (`null`: no token).
    pub caller: Option<String>,
    /// The model asked for.
    pub model: String,
    /// The deployment that answered.
    pub deployment: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Whether the tokens were estimated.
    pub estimated: bool,
    /// USD.
    pub cost_usd: f64,
}

/// The InferenceEngine. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Inference {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: InferenceConfig,
    routes: HashMap<String, Route>,
    aliases: Vec<String>,
    spent: Mutex<HashMap<String, f64>>,
    spend_tx: mpsc::Sender<Spend>,
    spend_rx: Mutex<Option<mpsc::Receiver<Spend>>>,
    node: OnceLock<Node>,
    cache: ResponseCache,
    metrics: InferenceMetrics,
}

impl Inference {
    /// The engine over a checked configuration.
    pub fn new(config: InferenceConfig, metrics: InferenceMetrics) -> Result<Self, InferenceError> {
        let http = Http::new(config.max_answer_bytes, config.timeout());
        let providers: HashMap<&str, Arc<dyn Provider>> = config
            .providers
            .iter()
            .map(|(name, p)| (name.as_str(), provider::build(p, http.clone())))
            .collect();
        let mut deployments: HashMap<String, Arc<Deployment>> = HashMap::new();
        let mut routes = HashMap::new();
        for (alias, list) in &config.models {
            let mut prioritised: Vec<(u32, Arc<Deployment>)> = Vec::new();
            for (i, d) in list.iter().enumerate() {
                let name = format!("{}/{}", d.provider, d.model);
                let provider = providers.get(d.provider.as_str()).cloned().ok_or_else(|| {
                    InferenceError::invalid(
                        &format!("/models/{alias}/{i}/provider"),
                        "is not a configured provider",
                    )
                })?;
                let deployment = match deployments.get(&name) {
                    Some(existing) => existing.clone(),
                    None => {
                        let s = &config.breaker;
                        let breaker = CircuitBreaker::builder(format!("inference:{name}"))
                            .count_window(s.window)
                            .minimum_calls(s.minimum_calls)
                            .failure_rate_threshold(s.failure_rate)
                            .wait_in_open(Duration::from_millis(s.wait_in_open_ms))
                            .build()
                            .map_err(|e| InferenceError::invalid("/breaker", e.to_string()))?;
                        let d = Arc::new(Deployment {
                            name: name.clone(),
                            model: d.model.clone(),
                            provider,
                            breaker,
                        });
                        deployments.insert(name, d.clone());
                        d
                    }
                };
                let priority = d.priority.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX));
                prioritised.push((priority, deployment));
            }
            routes.insert(alias.clone(), Route::new(prioritised));
        }
        let aliases = routes.keys().cloned().collect();
        for (name, d) in deployments {
            routes
                .entry(name)
                .or_insert_with(|| Route::new(vec![(0, d)]));
        }
        let (spend_tx, spend_rx) = mpsc::channel(config.spend_queue);
        let cache = ResponseCache::new(config.cache.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                cache,
                config,
                routes,
                aliases,
                spent: Mutex::default(),
                spend_tx,
                spend_rx: Mutex::new(Some(spend_rx)),
                node: OnceLock::new(),
                metrics,
            }),
        })
    }

    /// Publishes spend records as `inference.spend` events on `node`'s bus, and
    /// streams for WebSocket callers there.
    pub fn attach(&self, node: &Node) {
        if self.inner.node.set(node.clone()).is_err() {
            return;
        }
        if let Some(mut rx) = self.take_spend_records() {
            let node = node.clone();
            tokio::spawn(async move {
                while let Some(spend) = rx.recv().await {
                    if let Ok(payload) = Payload::json(&spend) {
                        let topic = Topic::from_static("inference.spend");
                        let _ = node.bus().publish(Envelope::new(topic, payload)).await;
                    }
                }
            });
        }
    }

    /// The spend records' receiving end, for an embedder that writes them itself
    /// (taken once; [`attach`](Self::attach) takes it otherwise).
    pub fn take_spend_records(&self) -> Option<mpsc::Receiver<Spend>> {
        self.inner.spend_rx.lock().take()
    }

    /// The node attached, if any.
    pub(crate) fn node(&self) -> Option<&Node> {
        self.inner.node.get()
    }

    /// The configuration in force.
    pub fn config(&self) -> &InferenceConfig {
        &self.inner.config
    }

    /// The counters.
    pub fn metrics(&self) -> &InferenceMetrics {
        &self.inner.metrics
    }

    /// What `caller` has spent, in USD.
    pub fn spent(&self, caller: &str) -> f64 {
        self.inner.spent.lock().get(caller).copied().unwrap_or(0.0)
    }

    /// The models callers may name, in the OpenAI list format, each with its
    /// deployments and their breakers' states.
    pub fn models(&self) -> Value {
        let mut names: Vec<&String> = self.inner.routes.keys().collect();
        names.sort();
        let data: Vec<Value> = names
            .into_iter()
            .filter_map(|name| {
                let route = self.inner.routes.get(name)?;
                let deployments: Vec<Value> = route
                    .groups
                    .iter()
                    .flatten()
                    .map(|d| json!({"deployment": d.name, "provider": d.provider.kind(), "breaker": d.breaker.state().as_str()}))
                    .collect();
                Some(json!({
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "plexus",
                    "alias": self.inner.aliases.contains(name),
                    "deployments": deployments,
                }))
            })
            .collect();
        json!({"object": "list", "data": data})
    }

    /// One answer to an OpenAI-shaped chat request, as `caller` (a token's name).
    pub async fn chat(&self, body: Value, caller: Option<&str>) -> Result<Value, InferenceError> {
        let (model, route) = self.admit(&body, caller)?;
        let key = self.inner.cache.key(&body);
        let cached = match &key {
            Some(key) => self.inner.cache.get(self.node(), key).await,
            None => None,
        };
        if let Some(mut answer) = cached {
            if let Some(p) = answer.get_mut("plexus").and_then(Value::as_object_mut) {
                p.insert("cache".into(), Value::String("hit".into()));
                p.insert("cost_usd".into(), json!(0.0));
            }
            self.inner.metrics.request(&model, "cached");
            return Ok(answer);
        }
        let mut body = body;
        if let Some(o) = body.as_object_mut() {
            o.remove("cache");
        }
        let mut attempts = Vec::new();
        for d in route.plan() {
            let result = self
                .on_deployment(&d, &mut attempts, || d.provider.chat(&d.model, &body))
                .await;
            match result {
                Ok((mut answer, permit)) => {
                    permit.record_outcome(ErrorClass::Success);
                    let usage = answer.get("usage").and_then(reported);
                    let (usage, estimated) = match usage {
                        Some(u) => (u, false),
                        None => (estimate(&body, &content_of(&answer)), true),
                    };
                    let spend = self.account(&model, &d, caller, usage, estimated);
                    annotate(&mut answer, &spend, &attempts);
                    if !attempts.is_empty() {
                        self.inner.metrics.fallback(&model);
                    }
                    self.inner.metrics.request(&model, "ok");
                    if let Some(key) = key {
                        self.inner.cache.put(self.node(), key, &answer).await;
                        if let Some(p) = answer.get_mut("plexus").and_then(Value::as_object_mut) {
                            p.insert("cache".into(), Value::String("miss".into()));
                        }
                    }
                    return Ok(answer);
                }
                Err(Some(refused)) => {
                    self.inner.metrics.request(&model, "error");
                    return Err(InferenceError::Refused {
                        deployment: d.name.clone(),
                        source: refused,
                    });
                }
                Err(None) => {}
            }
        }
        self.inner.metrics.request(&model, "error");
        Err(InferenceError::Exhausted { model, attempts })
    }

    /// A streamed answer. It fails over while no content has come; it answers once
    /// the first content has (or all deployments failed).
    pub async fn chat_stream(
        &self,
        body: Value,
        caller: Option<&str>,
    ) -> Result<AnswerStream, InferenceError> {
        let (model, route) = self.admit(&body, caller)?;
        let mut body = body;
        if let Some(o) = body.as_object_mut() {
            o.remove("cache");
        }
        let mut attempts = Vec::new();
        for d in route.plan() {
            let opened = self
                .on_deployment(&d, &mut attempts, || {
                    first_content(d.provider.stream(&d.model, &body))
                })
                .await;
            match opened {
                Ok(((head, rest), permit)) => {
                    if !attempts.is_empty() {
                        self.inner.metrics.fallback(&model);
                    }
                    let caller = caller.map(str::to_owned);
                    return Ok(self.relay(model, d, caller, body, attempts, head, rest, permit));
                }
                Err(Some(refused)) => {
                    self.inner.metrics.request(&model, "error");
                    return Err(InferenceError::Refused {
                        deployment: d.name.clone(),
                        source: refused,
                    });
                }
                Err(None) => {}
            }
        }
        self.inner.metrics.request(&model, "error");
        Err(InferenceError::Exhausted { model, attempts })
    }

    /// Checks the request and the caller's budget; the model's route.
    fn admit(
        &self,
        body: &Value,
        caller: Option<&str>,
    ) -> Result<(String, &Route), InferenceError> {
        let Some(object) = body.as_object() else {
            return Err(InferenceError::invalid("", "must be a JSON object"));
        };
        let model = match object.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            _ => {
                return Err(InferenceError::invalid(
                    "/model",
                    "must be a non-empty string",
                ));
            }
        };
        match object.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => {
                for (i, message) in m.iter().enumerate() {
                    if !message.get("role").is_some_and(Value::is_string) {
                        return Err(InferenceError::invalid(
                            &format!("/messages/{i}/role"),
                            "must be a string",
                        ));
                    }
                }
            }
            _ => {
                return Err(InferenceError::invalid(
                    "/messages",
                    "must be a non-empty array",
                ));
            }
        }
        let route = self
            .inner
            .routes
            .get(&model)
            .ok_or_else(|| InferenceError::UnknownModel {
                model: model.clone(),
            })?;
        let budget = caller.and_then(|c| Some((c, *self.inner.config.budgets.get(c)?)));
        if let Some((caller, budget)) = budget {
            let spent = self.spent(caller);
            if spent >= budget {
                self.inner.metrics.budget_refused();
                return Err(InferenceError::BudgetExceeded {
                    caller: caller.to_owned(),
                    budget_usd: budget,
                    spent_usd: spent,
                });
            }
        }
        Ok((model, route))
    }

    /// Tries one deployment, retrying what may pass later. `Ok` with the breaker's
    /// permit still to record; `Err(Some(e))` when the provider refused the request
    /// itself; `Err(None)` when the next deployment should be tried (what happened
    /// is pushed on `attempts`).
    async fn on_deployment<T, F, Fut>(
        &self,
        d: &Deployment,
        attempts: &mut Vec<String>,
        call: F,
    ) -> Result<(T, Permit), Option<ProviderError>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let config = &self.inner.config;
        let mut backoff = Duration::from_millis(config.retry_backoff_ms);
        for attempt in 0..=config.retries {
            let Ok(permit) = d.breaker.try_acquire() else {
                self.inner.metrics.failure(&d.name, None);
                attempts.push(format!("{}: circuit open", d.name));
                return Err(None);
            };
            let error = match call().await {
                Ok(value) => return Ok((value, permit)),
                Err(e) => e,
            };
            if error.is_caller_fault() {
                // The provider is well: it answered that the request is wrong.
                permit.record_outcome(ErrorClass::Success);
                return Err(Some(error));
            }
            permit.record_outcome(ErrorClass::Failure);
            self.inner.metrics.failure(&d.name, Some(&error));
            tracing::debug!(deployment = %d.name, %error, attempt, "inference deployment failed");
            let wait = match error.retry_after() {
                Some(w) if w > Duration::from_millis(config.max_retry_after_ms) => None,
                Some(w) => Some(w),
                None => Some(backoff),
            };
            match wait {
                Some(wait) if error.is_retryable() && attempt < config.retries => {
                    tokio::time::sleep(wait).await;
                    backoff = backoff.saturating_mul(2);
                }
                _ => {
                    attempts.push(format!("{}: {error}", d.name));
                    return Err(None);
                }
            }
        }
        Err(None)
    }

    /// Accounts one answer: metrics, the caller's spend, a spend record.
    fn account(
        &self,
        model: &str,
        d: &Deployment,
        caller: Option<&str>,
        (prompt, completion): (u64, u64),
        estimated: bool,
    ) -> Spend {
        let price = self.price(model, d);
        let cost = cost(price, prompt, completion);
        self.inner
            .metrics
            .usage(&d.model, prompt, completion, estimated, cost);
        if let Some(caller) = caller {
            *self
                .inner
                .spent
                .lock()
                .entry(caller.to_owned())
                .or_default() += cost;
        }
        let spend = Spend {
            caller: caller.map(str::to_owned),
            model: model.to_owned(),
            deployment: d.name.clone(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            estimated,
            cost_usd: cost,
        };
        if self.inner.spend_tx.try_send(spend.clone()).is_err() {
            self.inner.metrics.spend_dropped();
        }
        spend
    }

    /// The deployment's model's price, else its `provider/model`'s, else the alias's.
    fn price(&self, model: &str, d: &Deployment) -> Price {
        let prices = &self.inner.config.prices;
        prices
            .get(&d.model)
            .or_else(|| prices.get(&d.name))
            .or_else(|| prices.get(model))
            .copied()
            .unwrap_or_default()
    }

    /// Forwards a stream that has begun, accounting it at its end.
    #[allow(clippy::too_many_arguments)]
    fn relay(
        &self,
        model: String,
        d: Arc<Deployment>,
        caller: Option<String>,
        body: Value,
        attempts: Vec<String>,
        head: Vec<Value>,
        rest: ChunkStream,
        permit: Permit,
    ) -> AnswerStream {
        Relay {
            engine: self.clone(),
            model,
            d,
            caller,
            body,
            attempts,
            head: head.into(),
            rest,
            permit: Some(permit),
            text: String::new(),
            usage: None,
        }
        .boxed()
    }
}

/// A stream that has begun, forwarded chunk by chunk as its reader polls it (no
/// task or queue between provider and caller: a slow reader slows the provider's
/// socket, as TCP would) and accounted once: at its end, at a failure, or when the
/// reader drops it before the end.
struct Relay {
    engine: Inference,
    model: String,
    d: Arc<Deployment>,
    caller: Option<String>,
    body: Value,
    attempts: Vec<String>,
    /// Chunks read while waiting for the first content.
    head: VecDeque<Value>,
    rest: ChunkStream,
    /// The breaker's permit; `None` once accounted.
    permit: Option<Permit>,
    /// The content so far, to estimate usage when the provider gives none.
    text: String,
    usage: Option<(u64, u64)>,
}

impl Relay {
    /// Accounts what came: tokens reported or estimated, the caller's spend.
    fn account(&self) -> Spend {
        let (tokens, estimated) = match self.usage {
            Some(u) => (u, false),
            None => (estimate(&self.body, &self.text), true),
        };
        self.engine.account(
            &self.model,
            &self.d,
            self.caller.as_deref(),
            tokens,
            estimated,
        )
    }

    /// The stream's last item: the usage chunk, or the mid-stream failure.
    fn finish(&mut self, failed: Option<ProviderError>) -> Option<Result<Value, InferenceError>> {
        let permit = self.permit.take()?;
        let spend = self.account();
        let metrics = &self.engine.inner.metrics;
        match failed {
            Some(source) => {
                permit.record_outcome(ErrorClass::Failure);
                metrics.failure(&self.d.name, Some(&source));
                metrics.midstream(&self.d.name);
                metrics.request(&self.model, "error");
                Some(Err(InferenceError::MidStream {
                    deployment: self.d.name.clone(),
                    source,
                }))
            }
            None => {
                permit.record_outcome(ErrorClass::Success);
                metrics.request(&self.model, "ok");
                let (prompt, completion) = (spend.prompt_tokens, spend.completion_tokens);
                let mut last = provider::usage_chunk("usage", &self.d.model, prompt, completion);
                annotate(&mut last, &spend, &self.attempts);
                Some(Ok(last))
            }
        }
    }
}

impl futures::Stream for Relay {
    type Item = Result<Value, InferenceError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.permit.is_none() {
            return Poll::Ready(None);
        }
        loop {
            let chunk = match this.head.pop_front() {
                Some(c) => c,
                None => match std::task::ready!(this.rest.poll_next_unpin(cx)) {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => return Poll::Ready(this.finish(Some(e))),
                    None => return Poll::Ready(this.finish(None)),
                },
            };
            if let Some(chunk) = strip_usage(chunk, &mut this.usage) {
                this.text.push_str(&content_of(&chunk));
                return Poll::Ready(Some(Ok(chunk)));
            }
        }
    }
}

impl Drop for Relay {
    /// The reader left before the end: what came is accounted, and the breaker
    /// judges nothing (the provider did not fail).
    fn drop(&mut self) {
        if self.permit.is_some() {
            self.account();
            self.permit = None;
        }
    }
}

impl Route {
    fn new(mut prioritised: Vec<(u32, Arc<Deployment>)>) -> Self {
        prioritised.sort_by_key(|(p, _)| *p);
        let mut groups: Vec<(u32, Vec<Arc<Deployment>>)> = Vec::new();
        for (p, d) in prioritised {
            match groups.last_mut() {
                Some((last, group)) if *last == p => group.push(d),
                _ => groups.push((p, vec![d])),
            }
        }
        Self {
            groups: groups.into_iter().map(|(_, g)| g).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The deployments in the order to try them: by priority, each group of equal
    /// ones rotated by one more each request.
    fn plan(&self) -> Vec<Arc<Deployment>> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.groups
            .iter()
            .flat_map(|g| {
                let start = turn % g.len();
                g[start..].iter().chain(&g[..start]).cloned()
            })
            .collect()
    }
}

/// Opens a stream and reads it up to its first content (or its end), so that a
/// failure before any content can fail over.
async fn first_content(
    opening: impl Future<Output = Result<ChunkStream, ProviderError>>,
) -> Result<(Vec<Value>, ChunkStream), ProviderError> {
    let mut stream = opening.await?;
    let mut head = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let content = has_content(&chunk);
        head.push(chunk);
        if content {
            break;
        }
    }
    Ok((head, stream))
}

/// Whether a chunk carries content (text or a tool call).
fn has_content(chunk: &Value) -> bool {
    chunk
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.pointer("/delta/content")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
                || c.pointer("/delta/tool_calls").is_some()
        })
}

/// The text of an answer (`message.content`) or a chunk (`delta.content`).
fn content_of(value: &Value) -> String {
    value
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c.pointer("/message/content")
                .or_else(|| c.pointer("/delta/content"))
                .and_then(Value::as_str)
        })
        .collect()
}

/// Takes `usage` off a chunk; drops a chunk that was only usage.
fn strip_usage(mut chunk: Value, usage: &mut Option<(u64, u64)>) -> Option<Value> {
    let removed = chunk.as_object_mut().and_then(|o| o.remove("usage"));
    if let Some(u) = removed.as_ref().and_then(reported) {
        *usage = Some(u);
    }
    let empty = chunk
        .get("choices")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    (!empty).then_some(chunk)
}

/// `(prompt, completion)` of an OpenAI `usage`, when it has them.
fn reported(usage: &Value) -> Option<(u64, u64)> {
    let prompt = usage.get("prompt_tokens")?.as_u64()?;
    let completion = usage.get("completion_tokens")?.as_u64()?;
    Some((prompt, completion))
}

/// Tokens estimated as one per four characters (rounded up), of the messages and of
/// the answer.
pub fn estimate(body: &Value, answer: &str) -> (u64, u64) {
    let prompt: usize = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            provider::text_of(m.get("content").unwrap_or(&Value::Null))
                .chars()
                .count()
        })
        .sum();
    let tokens = |chars: usize| (chars as u64).div_ceil(4);
    (tokens(prompt), tokens(answer.chars().count()))
}

/// USD for the tokens at `price` (per million).
pub fn cost(price: Price, prompt: u64, completion: u64) -> f64 {
    (prompt as f64 * price.input_per_mtok + completion as f64 * price.output_per_mtok) / 1e6
}

/// Adds `usage` (when estimated: the estimate) and `plexus` to an answer.
fn annotate(answer: &mut Value, spend: &Spend, attempts: &[String]) {
    if let Some(object) = answer.as_object_mut() {
        if spend.estimated {
            object.insert(
                "usage".into(),
                json!({
                    "prompt_tokens": spend.prompt_tokens,
                    "completion_tokens": spend.completion_tokens,
                    "total_tokens": spend.prompt_tokens + spend.completion_tokens,
                }),
            );
        }
        object.insert(
            "plexus".into(),
            json!({
                "deployment": spend.deployment,
                "cost_usd": spend.cost_usd,
                "usage_estimated": spend.estimated,
                "failed_attempts": attempts,
            }),
        );
    }
}
