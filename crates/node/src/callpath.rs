//! The call path: every call to a service goes down one stack of layers.
//!
//! ```text
//! call("service.method", params, ctx)
//!   resolve        the service's route and the method's compiled schema (lock-free)
//!   audit          a mutating call is handed to the observer with its outcome
//!   metrics, trace every call counted and timed by outcome, in a span with its ids
//!   validate       params against the method's JSON Schema, before anything runs
//!   deadline       one instant for everything below: min(caller's, now + timeout_ms)
//!   retry          idempotent methods only, retryable errors only, inside the budget
//!   rate limit     per service, when configured
//!   bulkhead       per service, when configured
//!   hedge          idempotent methods, when configured: a slow attempt gets a copy
//!                  sent to another instance; the first answer wins
//!   balance        a healthy instance whose breaker lets calls through, not one this
//!                  call already failed on while another is left
//!   breaker        per instance: counts this instance's failures, opens, half-opens
//!   attempt        this instance's try ends by its own limit inside the deadline
//!   dispatch       the instance's transport (in process, or a WebSocket session),
//!                  which passes the attempt's deadline on
//! ```
//!
//! The layers from `retry` down are one tower stack ([`stack`]); the ones above are
//! the steps of [`MethodRoute::call`], outermost first. The deadline has one form,
//! an instant: set once in [`MethodRoute::call`] and read below it with
//! `plexus_resilience::deadline::current`. It is enforced by one timer: the
//! dispatch's, when nothing above it takes time (no retry, hedge, bulkhead or rate
//! limit), otherwise one around the whole stack as well.
//!
//! A route is built per service from its instances in the registry and its policy in
//! the configuration, and rebuilt when either changes: instance sets are re-read when
//! the registry's snapshot for the service changes (a pointer comparison per call),
//! policies when the configuration is applied. Breakers are per instance and survive
//! a re-sync; a policy change replaces them.

use crate::shared_limit::{SharedLimitError, SharedLimitService, SharedSlot};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use plexus_core::{
    CallContext, InstanceId, MethodDescriptor, Service, ServiceDescriptor, ServiceError,
    ServiceName,
};
use plexus_registry::Registration;
use plexus_resilience::balance::{Balancer, Instance};
use plexus_resilience::{
    BoxError, BulkheadFull, CircuitBreaker, CircuitBreakerService, CircuitOpen, DeadlineExceeded,
    ErrorClass, Hedge, NoInstanceAvailable, RateLimited, Retry, deadline,
};
use serde_json::Value;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use crate::CallError;
use crate::audit::{CallObserver, CallRecord};
use crate::metrics::{MethodMetrics, Metrics};
use crate::policy::{FailureClasses, ServicePolicy};
use crate::schema::ParamsSchema;

/// The longest a call's answer waits for its audit record to be written. The record
/// is written before the answer, so a caller that reads the trail next finds it;
/// but with the store unreachable (a database outage) a write waits for the pool,
/// and every mutating call, to any service, would wait with it (`plexus validate
/// seed-002` with PostgreSQL behind the fault proxy showed every call of every
/// module timing out while the database was down). Past this bound the answer goes
/// and the record is written later, in its own task, when the store takes it (a
/// record that fails to write is logged, as before).
const AUDIT_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// What a service's instances are reached through: an in-process service, or a proxy
/// for one in another process (the gateway's WebSocket sessions).
pub type Transport = Arc<dyn Service>;

/// One call as it moves down the stack.
#[derive(Clone)]
pub(crate) struct Call {
    method: Arc<str>,
    params: Arc<Value>,
    ctx: CallContext,
    /// Each attempt's own limit inside the call's deadline, if it has one.
    attempt: Option<std::time::Duration>,
}

tokio::task_local! {
    /// The instances the call being made on this task was sent to, for a call that
    /// may be retried or hedged: the balancer sends a retry or a hedged copy
    /// elsewhere while another instance is left.
    static TRIED: std::cell::RefCell<Vec<InstanceId>>;
}

/// The last hop: hands the call to one instance's transport.
#[derive(Clone)]
struct Dispatch {
    instance: InstanceId,
    transport: Transport,
}

/// A service's own error, with the instance that returned it.
#[derive(Debug, thiserror::Error)]
#[error("{instance}: {error}")]
struct InstanceError {
    instance: InstanceId,
    error: ServiceError,
}

impl tower::Service<Call> for Dispatch {
    type Response = Value;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Value, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let this = self.clone();
        let _ = TRIED.try_with(|t| t.borrow_mut().push(this.instance.clone()));
        Box::pin(async move {
            let mut ctx = call.ctx;
            // The attempt ends by its own limit or the call's deadline, whichever is
            // first; the transport passes that on to the instance.
            let attempt = call.attempt.map(|a| tokio::time::Instant::now() + a);
            let ends = [attempt, deadline::current(), ctx.deadline]
                .into_iter()
                .flatten()
                .min();
            ctx.deadline = ends;
            let params = Arc::unwrap_or_clone(call.params);
            let answer = this.transport.call(&call.method, params, ctx);
            let result = match ends {
                // A hung instance is a timed-out attempt: its breaker counts it as a
                // failure, and an idempotent call moves on to another instance.
                Some(at) => tokio::time::timeout_at(at, answer)
                    .await
                    .unwrap_or(Err(ServiceError::Timeout)),
                None => answer.await,
            };
            result.map_err(|error| {
                Box::new(InstanceError {
                    instance: this.instance,
                    error,
                }) as BoxError
            })
        })
    }
}

/// What a failed call means to the instance's breaker, by the service's
/// [`FailureClasses`] (the table in [`crate::policy`]): unavailability, timeouts,
/// internal errors and retryable failures are failures of the instance; a caller's
/// mistake or a business error is an answer.
fn classify(failures: &FailureClasses, error: &BoxError) -> ErrorClass {
    match error.downcast_ref::<InstanceError>() {
        Some(e) if failures.is_failure(&e.error) => ErrorClass::Failure,
        Some(_) => ErrorClass::Success,
        None => ErrorClass::Failure,
    }
}

/// Whether the retry layer may try again: a retryable service error, or an open
/// breaker (another instance may take it). Load shedding and deadlines are final.
fn retryable(error: &BoxError) -> bool {
    if let Some(e) = error.downcast_ref::<InstanceError>() {
        return e.error.is_retryable();
    }
    error.downcast_ref::<CircuitOpen>().is_some()
}

type Stack = BoxCloneSyncService<Call, Value, BoxError>;
type Guarded = CircuitBreakerService<Dispatch>;

/// One method of a routed service.
pub(crate) struct MethodRoute {
    name: Arc<str>,
    full: String,
    idempotent: bool,
    /// Each attempt's own limit (see [`crate::policy`]).
    attempt: Option<std::time::Duration>,
    /// The whole call's limit, retries included.
    timeout: std::time::Duration,
    /// Whether calls may be retried or hedged: the instances a call was sent to are
    /// then tracked, so the next attempt goes elsewhere.
    tracked: bool,
    /// Whether time passes only in the dispatch (no retry, hedge, bulkhead or rate
    /// limit above it): the dispatch's own limit then enforces the deadline, and
    /// the call needs no second timer.
    dispatch_only: bool,
    schema: ParamsSchema,
    metrics: MethodMetrics,
    stack: Stack,
}

/// A service's route: its balancer, breakers, methods and the policy they follow.
pub(crate) struct ServiceRoute {
    name: ServiceName,
    policy: Arc<ServicePolicy>,
    balancer: Balancer<Guarded>,
    methods: HashMap<String, Arc<MethodRoute>>,
    /// The methods the route was built from, to notice a re-registration that
    /// changes them.
    source: Vec<MethodDescriptor>,
    /// The registry's instance list last synced, compared by pointer on every call.
    seen: ArcSwap<Seen>,
    breakers: Mutex<HashMap<InstanceId, Guard>>,
}

/// An instance's breaker and the transport its balancer entry dispatches to.
struct Guard {
    breaker: CircuitBreaker,
    transport: Transport,
    /// Another node's instance while this node runs the service: a standby.
    standby: bool,
}

struct Seen {
    instances: Option<Arc<[Registration]>>,
}

impl fmt::Debug for ServiceRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceRoute")
            .field("name", &self.name)
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Everything a route needs from the node to build and re-sync itself.
pub(crate) trait Resolver: Send + Sync {
    /// The transport of an instance, if this node can reach it.
    fn transport(&self, registration: &Registration) -> Option<Transport>;

    /// Whether the instance runs in this node (or is served through it); in a
    /// cluster, other nodes' instances are used only while none of these can take
    /// calls.
    fn is_local(&self, instance: &InstanceId) -> bool;
}

impl ServiceRoute {
    /// Builds the route of a service from the descriptor of one of its instances.
    pub(crate) fn build(
        descriptor: &ServiceDescriptor,
        policy: ServicePolicy,
        metrics: &Metrics,
        shared: &SharedSlot,
    ) -> Result<Self, CallError> {
        let name = descriptor.name.clone();
        let balancer = Balancer::<Guarded>::new(name.as_str(), policy.balancer);
        // A retry or a hedged copy goes to an instance the call has not been sent
        // to, while one is left.
        balancer.avoiding(|_: &Call, id: &InstanceId| {
            TRIED.try_with(|f| f.borrow().contains(id)).unwrap_or(false)
        });
        let at = format!("calls.services.{name}");
        let mut methods = HashMap::new();
        for method in &descriptor.methods {
            let full = format!("{name}.{}", method.name);
            let schema =
                ParamsSchema::compile(&full, &method.params).map_err(|e| CallError::Internal {
                    message: e.to_string(),
                })?;
            let method_policy =
                policy
                    .method(&method.name, &at)
                    .map_err(|e| CallError::Internal {
                        message: e.to_string(),
                    })?;
            let retry = if method.idempotent && method_policy.retry.max_attempts > 1 {
                let retry = Retry::builder_from(method_policy.retry.clone())
                    .retry_if(retryable)
                    .build()
                    .map_err(|e| CallError::Internal {
                        message: format!("{at}.methods.{}.retry: {e}", method.name),
                    })?;
                Some(retry)
            } else {
                None
            };
            let retries = retry.is_some();
            let method_metrics = metrics.method(name.as_str(), &method.name);
            let hedge = match &method_policy.hedge {
                Some(config) if method.idempotent => {
                    let hedged = method_metrics.hedged();
                    let hedge = Hedge::new(config.clone(), |_: &Call| true).map_err(|e| {
                        CallError::Internal {
                            message: format!("{at}.methods.{}.hedge: {e}", method.name),
                        }
                    })?;
                    // The slower attempt ends by its own limit, so its instance's
                    // breaker still counts a hang.
                    Some(
                        hedge
                            .on_hedge(move || {
                                hedged.inc();
                            })
                            .finish_slower(true),
                    )
                }
                _ => None,
            };
            let tracked = retries || hedge.is_some();
            let dispatch_only = !tracked
                && policy.bulkhead.is_none()
                && policy.rate_limit.is_none()
                && policy.shared_rate_limit.is_none();
            let mut stack = stack(&policy, retry, hedge, &balancer, &name)?;
            if let Some(limit) = &policy.shared_rate_limit {
                // the shared rate limit, above everything: one unit per call, however
                // many attempts it takes
                stack = BoxCloneSyncService::new(SharedLimitService::new(
                    stack,
                    shared.clone(),
                    &limit.rule,
                    name.as_str(),
                ));
            }
            methods.insert(
                method.name.clone(),
                Arc::new(MethodRoute {
                    name: Arc::from(method.name.as_str()),
                    full,
                    idempotent: method.idempotent,
                    attempt: method_policy.attempt_timeout(method.idempotent),
                    timeout: method_policy.timeout(),
                    tracked,
                    dispatch_only,
                    schema,
                    metrics: method_metrics,
                    stack,
                }),
            );
        }
        Ok(Self {
            name,
            policy: Arc::new(policy),
            balancer,
            methods,
            source: descriptor.methods.clone(),
            seen: ArcSwap::from_pointee(Seen { instances: None }),
            breakers: Mutex::new(HashMap::new()),
        })
    }

    /// The service's name.
    pub(crate) fn name(&self) -> &ServiceName {
        &self.name
    }

    /// Each instance's breaker.
    pub(crate) fn breakers(&self) -> Vec<(InstanceId, CircuitBreaker)> {
        let breakers = self.breakers.lock();
        let mut all: Vec<_> = breakers
            .iter()
            .map(|(id, g)| (id.clone(), g.breaker.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn is_synced(&self, instances: &Arc<[Registration]>) -> bool {
        self.seen
            .load()
            .instances
            .as_ref()
            .is_some_and(|seen| Arc::ptr_eq(seen, instances))
    }

    /// Whether the route still fits the service's instances: some are registered and
    /// the newest declares the methods the route was built from.
    pub(crate) fn serves(&self, instances: &Arc<[Registration]>) -> bool {
        if self.is_synced(instances) {
            return true;
        }
        instances
            .iter()
            .max_by_key(|r| r.registered_at)
            .is_some_and(|newest| newest.descriptor.methods == self.source)
    }

    /// Brings the balancer in line with the registry's instances of the service, if
    /// they changed since the last call (one pointer comparison when they did not).
    pub(crate) fn sync(&self, instances: Arc<[Registration]>, resolver: &dyn Resolver) {
        if self.is_synced(&instances) {
            return;
        }
        let mut breakers = self.breakers.lock();
        let live: Vec<&InstanceId> = instances.iter().map(|r| r.instance()).collect();
        breakers.retain(|id, _| {
            let keep = live.contains(&id);
            if !keep {
                self.balancer.remove(id);
            }
            keep
        });
        let local_routable = instances
            .iter()
            .any(|r| r.accepts_calls() && resolver.is_local(r.instance()));
        for registration in instances.iter() {
            let id = registration.instance();
            // Prefer local: while this node runs the service, other nodes' instances
            // are standbys, taking calls only when no local one can (each unhealthy
            // or behind an open breaker).
            let standby = local_routable && !resolver.is_local(id);
            let Some(transport) = resolver.transport(registration) else {
                breakers.remove(id);
                self.balancer.remove(id);
                continue;
            };
            // A new instance, or a known one now reached through another transport (it
            // re-registered over a new connection) or now (no longer) a standby:
            // (re)build its balancer entry. A known instance keeps its breaker.
            let known = breakers.get(id);
            let stale = known
                .is_some_and(|g| !Arc::ptr_eq(&g.transport, &transport) || g.standby != standby);
            if known.is_none() || stale {
                let breaker = match known {
                    Some(g) => g.breaker.clone(),
                    None => match instance_breaker(&self.policy, id) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(instance = %id, error = %e, "breaker config rejected");
                            continue;
                        }
                    },
                };
                let dispatch = Dispatch {
                    instance: id.clone(),
                    transport: transport.clone(),
                };
                let weight = registration
                    .descriptor
                    .metadata
                    .get("weight")
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(1);
                let instance = Instance::guarded(id.clone(), dispatch, &breaker).weight(weight);
                self.balancer.insert(if standby {
                    instance.standby()
                } else {
                    instance
                });
                breakers.insert(
                    id.clone(),
                    Guard {
                        breaker,
                        transport,
                        standby,
                    },
                );
            }
            self.balancer
                .set_healthy(id, registration.status.accepts_calls());
        }
        self.seen.store(Arc::new(Seen {
            instances: Some(instances),
        }));
    }

    /// The route of `method`, if the service has it.
    pub(crate) fn method(&self, method: &str) -> Option<&Arc<MethodRoute>> {
        self.methods.get(method)
    }

    /// The names of its methods, for hints.
    pub(crate) fn method_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.methods.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

fn instance_breaker(policy: &ServicePolicy, id: &InstanceId) -> Result<CircuitBreaker, BoxError> {
    let mut config = policy.breaker.clone();
    config.name = id.to_string();
    let failures = policy.failures.clone();
    Ok(CircuitBreaker::builder_from(config)
        .classify(move |error| classify(&failures, error))
        .build()?)
}

/// The layers under the balancer's choice, top to bottom, for one method.
fn stack(
    policy: &ServicePolicy,
    retry: Option<Retry>,
    hedge: Option<Hedge<Call>>,
    balancer: &Balancer<Guarded>,
    service: &ServiceName,
) -> Result<Stack, CallError> {
    let internal = |e: plexus_resilience::ConfigError| CallError::Internal {
        message: format!("calls.services.{service}: {e}"),
    };
    let bulkhead = match &policy.bulkhead {
        Some(config) => {
            let mut config = config.clone();
            config.name = service.to_string();
            Some(plexus_resilience::Bulkhead::new(config).map_err(internal)?)
        }
        None => None,
    };
    let limiter = match &policy.rate_limit {
        Some(config) => Some(
            plexus_resilience::RateLimiter::new(service.as_str(), config.clone())
                .map_err(internal)?,
        ),
        None => None,
    };
    if retry.is_none() && limiter.is_none() && bulkhead.is_none() && hedge.is_none() {
        // Nothing above the balancer: no pass-through layers whose futures each call
        // would copy.
        let stack = balancer.clone().map_err(Into::<BoxError>::into);
        return Ok(BoxCloneSyncService::new(stack));
    }
    let stack = ServiceBuilder::new()
        // idempotent methods retry retryable errors, inside the retry budget
        .option_layer(retry.map(plexus_resilience::RetryLayer::new))
        // the service's rate limit refuses what is over it
        .option_layer(limiter.map(plexus_resilience::RateLimitLayer::new))
        // the service's bulkhead bounds the calls in flight
        .option_layer(bulkhead.map(plexus_resilience::BulkheadLayer::new))
        // a slow idempotent call is sent once more, to another instance
        .option_layer(hedge.map(plexus_resilience::HedgeLayer::new))
        // a healthy instance whose breaker lets calls through; its breaker records
        // the outcome; dispatch hands the call to its transport
        .service(balancer.clone())
        .map_err(Into::<BoxError>::into);
    Ok(BoxCloneSyncService::new(stack))
}

impl MethodRoute {
    /// Runs one call down the stack and records it.
    pub(crate) async fn call(
        &self,
        route: &ServiceRoute,
        params: Value,
        ctx: CallContext,
        audit: Option<&Arc<dyn CallObserver>>,
    ) -> Result<Value, CallError> {
        let audit = audit.filter(|_| !self.idempotent);
        let Some(audit) = audit else {
            return self.call_recorded(route, params, ctx).await;
        };
        let at = plexus_core::Timestamp::now();
        let started = tokio::time::Instant::now();
        let (caller, correlation_id, sent) =
            (ctx.caller.clone(), ctx.correlation_id, params.clone());
        let result = self.call_recorded(route, params, ctx).await;
        let record = CallRecord {
            method: self.full.clone(),
            caller,
            correlation_id,
            params: sent,
            at,
            duration: started.elapsed(),
            outcome: match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.outcome().to_owned(),
            },
            error: result.as_ref().err().map(|e| (e.code(), e.to_string())),
        };
        // Written in its own task: past the wait the answer goes, and the record is
        // still written when the store can take it (or its failure logged).
        let audit = Arc::clone(audit);
        let mut written = tokio::spawn(async move { audit.record(record).await });
        if tokio::time::timeout(AUDIT_WAIT, &mut written)
            .await
            .is_err()
        {
            tracing::warn!(method = %self.full, wait = ?AUDIT_WAIT, "the audit record is not written yet; answering without waiting for it");
        }
        result
    }

    async fn call_recorded(
        &self,
        route: &ServiceRoute,
        params: Value,
        ctx: CallContext,
    ) -> Result<Value, CallError> {
        let started = tokio::time::Instant::now();
        let span = tracing::debug_span!(
            "call",
            method = %self.full,
            correlation_id = %ctx.correlation_id,
            caller = ctx.caller.as_deref().unwrap_or(""),
        );
        let result = tracing::Instrument::instrument(self.run(route, params, ctx), span).await;
        if let Err(e) = &result {
            tracing::debug!(method = %self.full, code = e.code(), error = %e, "call failed");
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.metrics.record(outcome, started.elapsed());
        result
    }

    async fn run(
        &self,
        route: &ServiceRoute,
        params: Value,
        ctx: CallContext,
    ) -> Result<Value, CallError> {
        let params = self.schema.normalize(params);
        self.schema.check(&self.full, &params)?;
        // The one deadline of the call, retries included: the caller's, or the
        // method's timeout from now if that comes first.
        let ends = tokio::time::Instant::now() + self.timeout;
        let ends = ctx.deadline.map_or(ends, |caller| caller.min(ends));
        let call = Call {
            method: self.name.clone(),
            params: Arc::new(params),
            ctx,
            attempt: self.attempt,
        };
        let stack = self.stack.clone();
        if self.dispatch_only {
            // The dispatch ends the attempt at `ends` (it reads it as the current
            // deadline), so its instance's breaker sees a hang as a timeout.
            let result = deadline::scoped(ends, stack.oneshot(call)).await;
            return result.map_err(|e| self.error(route, e));
        }
        let answer = deadline::until(ends, stack.oneshot(call));
        let result = if self.tracked {
            TRIED
                .scope(std::cell::RefCell::new(Vec::new()), answer)
                .await
        } else {
            answer.await
        };
        result.map_err(|e| self.error(route, e))
    }

    /// Turns the stack's boxed error into the typed one.
    fn error(&self, route: &ServiceRoute, error: BoxError) -> CallError {
        let service = route.name.to_string();
        if let Some(e) = error.downcast_ref::<InstanceError>() {
            return match &e.error {
                ServiceError::MethodNotFound { .. } => CallError::MethodNotFound {
                    method: self.full.clone(),
                    hint: Some(format!("instance {} does not answer it", e.instance)),
                },
                ServiceError::InvalidParams { field, reason } => CallError::InvalidParams {
                    method: self.full.clone(),
                    field: field.clone(),
                    reason: reason.clone(),
                },
                ServiceError::Unavailable { reason } => CallError::Unavailable {
                    service,
                    reason: reason.clone(),
                    instances: vec![(e.instance.to_string(), reason.clone())],
                },
                ServiceError::Timeout => CallError::Timeout {
                    method: self.full.clone(),
                    timeout: self.timeout,
                },
                ServiceError::Forbidden(forbidden) => CallError::from(forbidden.clone()),
                ServiceError::Failed {
                    message,
                    data,
                    retryable,
                } => CallError::Failed {
                    method: self.full.clone(),
                    instance: Some(e.instance.to_string()),
                    message: message.clone(),
                    retryable: *retryable,
                    detail: data.clone(),
                },
                ServiceError::Internal { message, data } => CallError::Failed {
                    method: self.full.clone(),
                    instance: Some(e.instance.to_string()),
                    message: message.clone(),
                    retryable: false,
                    detail: data.clone(),
                },
                other => CallError::Failed {
                    method: self.full.clone(),
                    instance: Some(e.instance.to_string()),
                    message: other.to_string(),
                    retryable: other.is_retryable(),
                    detail: None,
                },
            };
        }
        if error.downcast_ref::<DeadlineExceeded>().is_some() {
            return CallError::Timeout {
                method: self.full.clone(),
                timeout: self.timeout,
            };
        }
        if let Some(e) = error.downcast_ref::<NoInstanceAvailable>() {
            let all_open = !e.reasons.is_empty()
                && e.reasons.iter().all(|(_, why)| {
                    matches!(
                        why,
                        plexus_resilience::balance::Unavailable::BreakerOpen { .. }
                    )
                });
            if all_open {
                let retry_after = e
                    .reasons
                    .iter()
                    .filter_map(|(_, why)| match why {
                        plexus_resilience::balance::Unavailable::BreakerOpen { retry_after } => {
                            *retry_after
                        }
                        plexus_resilience::balance::Unavailable::Unhealthy => None,
                    })
                    .min();
                return CallError::CircuitOpen {
                    service,
                    retry_after,
                };
            }
            let reason = if e.reasons.is_empty() {
                "no instance is registered".to_owned()
            } else {
                "no instance can take the call".to_owned()
            };
            return CallError::Unavailable {
                service,
                reason,
                instances: e
                    .reasons
                    .iter()
                    .map(|(id, why)| (id.to_string(), why.to_string()))
                    .collect(),
            };
        }
        if let Some(e) = error.downcast_ref::<CircuitOpen>() {
            return CallError::CircuitOpen {
                service,
                retry_after: e.retry_after,
            };
        }
        if let Some(SharedLimitError::Unavailable(reason)) = error.downcast_ref() {
            return CallError::Unavailable {
                service,
                reason: reason.clone(),
                instances: Vec::new(),
            };
        }
        if let Some(e) = error.downcast_ref::<RateLimited>() {
            return CallError::RateLimited {
                service,
                retry_after: e.retry_after,
            };
        }
        if let Some(e) = error.downcast_ref::<BulkheadFull>() {
            return CallError::Overloaded {
                service,
                max_concurrent: e.max_concurrent,
            };
        }
        CallError::Internal {
            message: error.to_string(),
        }
    }
}
