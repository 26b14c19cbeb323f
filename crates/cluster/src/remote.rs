//! Calls across nodes: NATS request/reply, one subject per instance.
//!
//! A node serves each instance it holds on `{call_prefix}.{instance key}`
//! ([`NatsLink::serve`]); another node reaches it with a request on that subject
//! ([`RemoteInstance`], a transport behind the same balancer, breaker and retries as
//! a local one). One subject per instance rather than one per service with a queue
//! group: the caller's balancer chooses the instance and its breaker counts that
//! instance's failures, exactly as for local instances; a queue group would let
//! NATS choose and hide which instance failed.
//!
//! What travels with a call, in the request's JSON: the method and params, the
//! correlation and causation ids, the caller's name and scopes (so the serving node
//! applies the same limits), the headers, the attempt number and the time left
//! before the caller's deadline (a duration, so clocks need not agree). The answer
//! is `{"ok": result}` or `{"err": {...}}` with the error's kind kept, so a remote
//! error is classified (retryable or not) as the local one would be. NATS is
//! trusted like the node's database: anyone who can publish on its call subjects
//! can call the instances served there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use plexus_core::scope::{Forbidden, Scope};
use plexus_core::{
    CallContext, CallResult, CorrelationId, EventId, Headers, InstanceId, Service,
    ServiceDescriptor, ServiceError,
};
use plexus_node::{ClusterLink, Transport};
use plexus_registry::{Registration, Registry, RegistryBackend};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::{ClusterMetrics, KvRegistry, instance_key};

/// A call as it crosses.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    method: String,
    params: Value,
    correlation_id: CorrelationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causation_id: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caller: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    headers: Headers,
    attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
}

/// An answer as it crosses.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Ok(Value),
    Err(WireError),
}

/// A [`ServiceError`] as it crosses, its kind kept.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireError {
    MethodNotFound {
        method: String,
    },
    InvalidParams {
        field: String,
        reason: String,
    },
    Unavailable {
        reason: String,
    },
    Timeout,
    Internal {
        message: String,
        #[serde(default)]
        data: Option<Value>,
    },
    Forbidden {
        caller: String,
        needed: String,
    },
    Failed {
        message: String,
        #[serde(default)]
        data: Option<Value>,
        retryable: bool,
    },
}

impl From<ServiceError> for WireError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::MethodNotFound { method } => Self::MethodNotFound { method },
            ServiceError::InvalidParams { field, reason } => Self::InvalidParams { field, reason },
            ServiceError::Unavailable { reason } => Self::Unavailable { reason },
            ServiceError::Timeout => Self::Timeout,
            ServiceError::Internal { message, data } => Self::Internal { message, data },
            ServiceError::Forbidden(f) => Self::Forbidden {
                caller: f.caller,
                needed: f.needed,
            },
            ServiceError::Failed {
                message,
                data,
                retryable,
            } => Self::Failed {
                message,
                data,
                retryable,
            },
            other => Self::Internal {
                message: other.to_string(),
                data: None,
            },
        }
    }
}

impl From<WireError> for ServiceError {
    fn from(error: WireError) -> Self {
        match error {
            WireError::MethodNotFound { method } => Self::MethodNotFound { method },
            WireError::InvalidParams { field, reason } => Self::InvalidParams { field, reason },
            WireError::Unavailable { reason } => Self::Unavailable { reason },
            WireError::Timeout => Self::Timeout,
            WireError::Internal { message, data } => Self::Internal { message, data },
            WireError::Forbidden { caller, needed } => {
                Self::Forbidden(Forbidden { caller, needed })
            }
            WireError::Failed {
                message,
                data,
                retryable,
            } => Self::Failed {
                message,
                data,
                retryable,
            },
        }
    }
}

/// The settings of a node's link to the cluster.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// This node's name: unique in the cluster (its own services' instance ids are
    /// made from it).
    pub node: String,
    /// Calls to instance `i` travel on `{call_prefix}.{key of i}`.
    pub call_prefix: String,
    /// The most calls from other nodes this node runs at once; past it a call is
    /// answered `unavailable` at once (default 1,024).
    pub max_inflight: usize,
    /// The longest a call from another node may take when its caller set no
    /// deadline (default 30 s).
    pub default_timeout: Duration,
}

impl LinkConfig {
    /// The settings of node `node`, with defaults.
    pub fn node(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            call_prefix: "plexus.call".to_owned(),
            max_inflight: 1_024,
            default_timeout: Duration::from_secs(30),
        }
    }
}

/// A node's link to the cluster on NATS: the registry in KV, calls by
/// request/reply.
pub struct NatsLink {
    client: Client,
    registry: KvRegistry,
    config: LinkConfig,
    inflight: Arc<Semaphore>,
    served: Mutex<HashMap<InstanceId, JoinHandle<()>>>,
    remotes: Mutex<HashMap<InstanceId, Transport>>,
    following: Mutex<Option<JoinHandle<()>>>,
    metrics: ClusterMetrics,
}

impl std::fmt::Debug for NatsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsLink")
            .field("node", &self.config.node)
            .field("served", &self.served.lock().len())
            .finish_non_exhaustive()
    }
}

impl Drop for NatsLink {
    fn drop(&mut self) {
        for (_, task) in self.served.lock().drain() {
            task.abort();
        }
        if let Some(task) = self.following.lock().take() {
            task.abort();
        }
    }
}

impl NatsLink {
    /// A link over `client`, sharing `registry`.
    pub fn new(client: Client, registry: KvRegistry, config: LinkConfig) -> Self {
        Self {
            client,
            registry,
            inflight: Arc::new(Semaphore::new(config.max_inflight.max(1))),
            config,
            served: Mutex::new(HashMap::new()),
            remotes: Mutex::new(HashMap::new()),
            following: Mutex::new(None),
            metrics: ClusterMetrics::new(),
        }
    }

    /// Its counters (`plexus_cluster_*`).
    pub fn metrics(&self) -> &ClusterMetrics {
        &self.metrics
    }

    fn subject(&self, instance: &InstanceId) -> String {
        format!("{}.{}", self.config.call_prefix, instance_key(instance))
    }

    /// The instances this node serves to the others.
    pub fn served(&self) -> Vec<InstanceId> {
        let mut served: Vec<_> = self.served.lock().keys().cloned().collect();
        served.sort();
        served
    }
}

impl ClusterLink for NatsLink {
    fn node(&self) -> &str {
        &self.config.node
    }

    fn registry_backend(&self) -> Arc<dyn RegistryBackend> {
        Arc::new(self.registry.clone())
    }

    fn follow(&self, registry: Registry) {
        let task = self.registry.follow(registry);
        if let Some(old) = self.following.lock().replace(task) {
            old.abort();
        }
    }

    fn remote(&self, registration: &Registration) -> Option<Transport> {
        let instance = registration.instance();
        let mut remotes = self.remotes.lock();
        if let Some(known) = remotes.get(instance) {
            return Some(known.clone());
        }
        let transport: Transport = Arc::new(RemoteInstance {
            metrics: self.metrics.clone(),
            client: self.client.clone(),
            subject: self.subject(instance),
            descriptor: registration.descriptor.as_ref().clone(),
        });
        remotes.insert(instance.clone(), transport.clone());
        Some(transport)
    }

    fn serve(&self, instance: &InstanceId, transport: Transport) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%instance, "cannot serve an instance to the cluster outside the runtime");
            return;
        };
        let task = runtime.spawn(answer(
            Answering {
                client: self.client.clone(),
                inflight: self.inflight.clone(),
                default_timeout: self.config.default_timeout,
                metrics: self.metrics.clone(),
            },
            self.subject(instance),
            transport,
        ));
        let mut served = self.served.lock();
        if let Some(old) = served.insert(instance.clone(), task) {
            old.abort();
        }
        self.metrics.instances(served.len());
    }

    fn unserve(&self, instance: &InstanceId) {
        let mut served = self.served.lock();
        if let Some(task) = served.remove(instance) {
            task.abort();
        }
        self.metrics.instances(served.len());
    }
}

/// What every served instance's task shares.
struct Answering {
    client: Client,
    inflight: Arc<Semaphore>,
    default_timeout: Duration,
    metrics: ClusterMetrics,
}

/// Answers the calls other nodes make to one instance, until aborted.
async fn answer(shared: Answering, subject: String, transport: Transport) {
    let Answering {
        client,
        inflight,
        default_timeout,
        metrics,
    } = shared;
    let mut requests = match client.subscribe(subject.clone()).await {
        Ok(requests) => requests,
        Err(error) => {
            tracing::error!(%error, subject, "cannot serve an instance to the cluster");
            return;
        }
    };
    while let Some(message) = requests.next().await {
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let Ok(permit) = inflight.clone().try_acquire_owned() else {
            let busy = WireError::Unavailable {
                reason:
                    "this node runs as many calls from other nodes as it may (cluster max_inflight)"
                        .to_owned(),
            };
            metrics.served("refused");
            send_reply(&client, reply_to, Reply::Err(busy)).await;
            continue;
        };
        let request: Request = match serde_json::from_slice(&message.payload) {
            Ok(request) => request,
            Err(error) => {
                let bad = WireError::InvalidParams {
                    field: "(request)".to_owned(),
                    reason: format!("not a cluster call: {error}"),
                };
                metrics.served("malformed");
                send_reply(&client, reply_to, Reply::Err(bad)).await;
                continue;
            }
        };
        let transport = transport.clone();
        let client = client.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (method, params, ctx) = context(request, default_timeout);
            let deadline = ctx.deadline;
            let call = transport.call(&method, params, ctx);
            let result = match deadline {
                Some(at) => tokio::time::timeout_at(at, call)
                    .await
                    .unwrap_or(Err(ServiceError::Timeout)),
                None => call.await,
            };
            metrics.served(if result.is_ok() { "ok" } else { "error" });
            let answer = match result {
                Ok(value) => Reply::Ok(value),
                Err(error) => Reply::Err(error.into()),
            };
            send_reply(&client, reply_to, answer).await;
        });
    }
}

async fn send_reply(client: &Client, reply_to: async_nats::Subject, reply: Reply) {
    let body = match serde_json::to_vec(&reply) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%error, "a cluster call's answer cannot be encoded");
            return;
        }
    };
    if let Err(error) = client.publish(reply_to, Bytes::from(body)).await {
        tracing::warn!(%error, "a cluster call's answer could not be sent");
    }
}

/// The call a request carries, with its context rebuilt here.
fn context(request: Request, default_timeout: Duration) -> (String, Value, CallContext) {
    let timeout = request
        .timeout_ms
        .map_or(default_timeout, Duration::from_millis)
        .min(default_timeout);
    let scopes = request.scopes.map(|scopes| {
        scopes
            .iter()
            .filter_map(|s| s.parse::<Scope>().ok())
            .collect::<Vec<_>>()
            .into()
    });
    let ctx = CallContext {
        correlation_id: request.correlation_id,
        causation_id: request.causation_id,
        deadline: Some(tokio::time::Instant::now() + timeout),
        caller: request.caller,
        scopes,
        headers: request.headers,
        attempt: request.attempt,
    };
    (request.method, request.params, ctx)
}

/// An instance held by another node, reached by NATS request/reply.
#[derive(Debug)]
pub struct RemoteInstance {
    metrics: ClusterMetrics,
    client: Client,
    subject: String,
    descriptor: ServiceDescriptor,
}

#[plexus_core::async_trait]
impl Service for RemoteInstance {
    fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor.clone()
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        let result = self.exchange(method, params, ctx).await;
        self.metrics.remote(&result);
        result
    }
}

impl RemoteInstance {
    /// One request and its answer.
    async fn exchange(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        let request = Request {
            method: method.to_owned(),
            params,
            correlation_id: ctx.correlation_id,
            causation_id: ctx.causation_id,
            caller: ctx.caller.clone(),
            scopes: ctx
                .scopes
                .as_ref()
                .map(|s| s.iter().map(ToString::to_string).collect()),
            headers: ctx.headers.clone(),
            attempt: ctx.attempt,
            timeout_ms: ctx
                .remaining()
                .map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| ServiceError::failed(format!("cannot encode the call: {e}")))?;
        let exchange = self.client.request(self.subject.clone(), Bytes::from(body));
        let answer = match ctx.deadline {
            Some(at) => tokio::time::timeout_at(at, exchange)
                .await
                .map_err(|_| ServiceError::Timeout)?,
            None => exchange.await,
        };
        let message = answer.map_err(|error| {
            use async_nats::RequestErrorKind;
            match error.kind() {
                RequestErrorKind::TimedOut => ServiceError::Timeout,
                RequestErrorKind::NoResponders => ServiceError::unavailable(format!(
                    "instance `{}` on another node does not answer (no responders on {})",
                    self.descriptor.instance, self.subject
                )),
                RequestErrorKind::MaxPayloadExceeded => ServiceError::invalid_params(
                    "params",
                    "the call is larger than the NATS server's max_payload",
                ),
                _ => ServiceError::unavailable(error.to_string()),
            }
        })?;
        match serde_json::from_slice::<Reply>(&message.payload) {
            Ok(Reply::Ok(value)) => Ok(value),
            Ok(Reply::Err(error)) => Err(error.into()),
            Err(e) => Err(ServiceError::failed(format!(
                "the other node's answer is not a cluster reply: {e}"
            ))),
        }
    }
}
