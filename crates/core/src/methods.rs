//! The template of a service's methods: typed params and results, schemas derived
//! from the types, dispatch through a table.
//!
//! A [`MethodTable`] holds a service's methods. Each is added with
//! [`MethodTable::method`]: its name, a description, its [`Effect`] (whether the call
//! path may retry it) and a handler, an `async fn` that takes the service's state
//! `&S`, the [`CallContext`] and the params as a Rust type, and returns a Rust type or
//! a [`ServiceError`]. The params and result types implement
//! [`schemars::JsonSchema`], so the [`MethodDescriptor`]s the table gives the
//! service's descriptor carry JSON Schemas (draft 2020-12, self-contained: nested
//! types are inlined) derived from the same types the handler receives. Doc comments
//! on params fields become their `description`s; serde attributes
//! (`deny_unknown_fields`, `default`, `rename`) shape both what is accepted and the
//! schema; constraints the types cannot say are added with `#[schemars(range(min =
//! 1))]`, `#[schemars(length(max = 32))]`, `#[schemars(pattern(…))]` or
//! `#[schemars(extend(…))]`.
//!
//! [`MethodTable::call`] finds the method with one lookup and deserializes the params
//! into the handler's type. Params that do not fit are
//! [`ServiceError::InvalidParams`] naming the field as a JSON pointer: `/name` with
//! "is required" for a missing field, the field itself for a field the type does not
//! know, `/sort/0/order` for a bad value deep inside. A method whose params are an
//! object takes absent params (`null`) as `{}` and refuses anything else that is not
//! an object, naming the whole (`""`). An unknown method is
//! [`ServiceError::MethodNotFound`].
//!
//! Cost per call: one hash lookup, one deserialization of the params (a failed one is
//! run a second time, tracking the path, to name the field), the handler's future in
//! one box, and the result's conversion to JSON. Schemas are generated once, when
//! the table is built; build it once per service (a `static` or a field).
//!
//! A service whose calls all go through its table implements [`TableService`] (the
//! table, the handlers' state, the descriptor) and gets [`Service`] from it.
//!
//! ```
//! use plexus_core::methods::{Effect, MethodTable};
//! use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! struct Greeter {
//!     greeting: String,
//! }
//!
//! /// Whom to greet.
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct GreetParams {
//!     /// The name to greet.
//!     #[schemars(length(min = 1, max = 64))]
//!     name: String,
//!     /// How many exclamation marks.
//!     #[serde(default)]
//!     emphasis: u8,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Greeting {
//!     /// The greeting.
//!     text: String,
//! }
//!
//! async fn greet(
//!     s: &Greeter,
//!     _ctx: CallContext,
//!     p: GreetParams,
//! ) -> Result<Greeting, ServiceError> {
//!     let marks = "!".repeat(usize::from(p.emphasis));
//!     Ok(Greeting { text: format!("{}, {}{marks}", s.greeting, p.name) })
//! }
//!
//! let table = MethodTable::new().method::<GreetParams, Greeting, _>(
//!     "greet",
//!     "Greets someone by name.",
//!     Effect::Idempotent,
//!     greet,
//! );
//!
//! // The descriptor carries the derived schema.
//! let descriptor = table.describe(ServiceDescriptor::new("greeter", "demo"));
//! let params = &descriptor.method("greet").unwrap().params;
//! assert_eq!(params["required"], json!(["name"]));
//! assert_eq!(params["properties"]["name"]["maxLength"], json!(64));
//! assert_eq!(params["additionalProperties"], json!(false));
//!
//! // Calls are dispatched by name with typed params.
//! let greeter = Greeter { greeting: "Hello".into() };
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let ok = table
//!     .call(&greeter, "greet", json!({"name": "Ada", "emphasis": 2}), CallContext::new())
//!     .await;
//! assert_eq!(ok, Ok(json!({"text": "Hello, Ada!!"})));
//!
//! let bad = table
//!     .call(&greeter, "greet", json!({"name": 7}), CallContext::new())
//!     .await;
//! assert!(matches!(bad, Err(ServiceError::InvalidParams { field, .. }) if field == "/name"));
//! # });
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    CallContext, CallResult, HealthReport, MethodDescriptor, Service, ServiceDescriptor,
    ServiceError,
};

/// Whether calling a method twice with the same params has the effect of calling it
/// once: only idempotent methods are retried by the call path, and only the others
/// are audited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Reads, or writes whose repetition changes nothing: retried on transient
    /// failures.
    Idempotent,
    /// Changes something each time: never retried, recorded in the audit trail.
    Mutating,
}

/// The params of a method that takes none: `{}` (or absent params), and nothing
/// else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(description = "No params.")]
pub struct NoParams {}

/// A method's handler: an `async fn(&S, CallContext, P) -> Result<R, ServiceError>`.
///
/// Implemented for every function of that shape, so it is rarely named; it exists
/// because the future an `async fn` returns borrows the state for as long as the call
/// runs.
pub trait Handler<'a, S: ?Sized + 'a, P, R>: Send + Sync + 'static {
    /// The future the handler returns.
    type Future: Future<Output = Result<R, ServiceError>> + Send + 'a;

    /// Runs the method.
    fn call(&self, state: &'a S, ctx: CallContext, params: P) -> Self::Future;
}

impl<'a, S, P, R, F, Fut> Handler<'a, S, P, R> for F
where
    S: ?Sized + 'a,
    F: Fn(&'a S, CallContext, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ServiceError>> + Send + 'a,
{
    type Future = Fut;

    fn call(&self, state: &'a S, ctx: CallContext, params: P) -> Fut {
        self(state, ctx, params)
    }
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ServiceError>> + Send + 'a>>;

/// A handler with its params and result types erased.
trait Erased<S: ?Sized>: Send + Sync {
    /// Deserializes `params` and starts the call, or names the field that does not fit.
    fn start<'a>(
        &'a self,
        state: &'a S,
        ctx: CallContext,
        params: Value,
    ) -> Result<BoxFuture<'a>, ServiceError>;
}

struct Typed<H, P, R> {
    handler: H,
    types: PhantomData<fn(P) -> R>,
}

impl<S, P, R, H> Erased<S> for Typed<H, P, R>
where
    S: ?Sized + Sync,
    P: DeserializeOwned + 'static,
    R: Serialize + 'static,
    H: for<'a> Handler<'a, S, P, R>,
{
    fn start<'a>(
        &'a self,
        state: &'a S,
        ctx: CallContext,
        params: Value,
    ) -> Result<BoxFuture<'a>, ServiceError> {
        let params = params_of::<P>(params)?;
        let call = self.handler.call(state, ctx, params);
        Ok(Box::pin(async move { to_json(call.await?) }))
    }
}

/// `params` as a `P`: moved when `P` is [`Value`], deserialized otherwise.
fn params_of<P: DeserializeOwned + 'static>(params: Value) -> Result<P, ServiceError> {
    let mut slot = Some(params);
    if let Some(same) = (&mut slot as &mut dyn Any).downcast_mut::<Option<P>>()
        && let Some(p) = same.take()
    {
        return Ok(p);
    }
    let params = slot.unwrap_or(Value::Null);
    // Fast path, no path tracking; only a failure pays for naming the field.
    match P::deserialize(&params) {
        Ok(p) => Ok(p),
        Err(plain) => Err(match serde_path_to_error::deserialize::<_, P>(&params) {
            Err(tracked) => invalid(tracked.path(), &tracked.inner().to_string()),
            // Cannot happen (the same input, the same impl); keep the first error.
            Ok(_) => ServiceError::invalid_params("", plain.to_string()),
        }),
    }
}

/// `result` as JSON: moved when `R` is [`Value`], serialized otherwise.
fn to_json<R: Serialize + 'static>(result: R) -> Result<Value, ServiceError> {
    let mut slot = Some(result);
    if let Some(same) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Value>>() {
        return Ok(same.take().unwrap_or(Value::Null));
    }
    match slot {
        Some(r) => serde_json::to_value(r).map_err(|e| {
            ServiceError::failed(format!("the result could not be encoded as JSON: {e}"))
        }),
        None => Ok(Value::Null),
    }
}

/// A deserialization error as invalid params naming the field.
fn invalid(path: &serde_path_to_error::Path, message: &str) -> ServiceError {
    let mut field = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                field.push('/');
                field.push_str(&index.to_string());
            }
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => push_token(&mut field, key),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    if let Some(name) = quoted_after(message, "missing field `") {
        push_token(&mut field, name);
        return ServiceError::invalid_params(field, "is required");
    }
    if message.starts_with("unknown field `") {
        let top = field.matches('/').count() <= 1;
        let reason = match message.split_once(", expected ") {
            Some((_, expected)) if top => format!("is not a parameter; expected {expected}"),
            Some((_, expected)) => format!("is not allowed here; expected {expected}"),
            None if top => "is not a parameter; this method takes none".to_owned(),
            None => "is not allowed here".to_owned(),
        };
        return ServiceError::invalid_params(field, reason);
    }
    ServiceError::invalid_params(field, message)
}

/// The text between `prefix` and the next backtick.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// Appends `/token` to a JSON pointer, escaped (RFC 6901).
fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

struct Entry<S: ?Sized> {
    /// The params schema says `"type": "object"`.
    object: bool,
    handler: Box<dyn Erased<S>>,
}

/// A service's methods: their descriptors, and dispatch by name to typed handlers.
///
/// `S` is what the handlers receive by reference: the service itself or the state it
/// holds. See the [module documentation](self) for an example.
pub struct MethodTable<S: ?Sized> {
    descriptors: Vec<MethodDescriptor>,
    entries: Vec<Entry<S>>,
    index: HashMap<Box<str>, usize>,
}

impl<S: ?Sized> fmt::Debug for MethodTable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodTable")
            .field(
                "methods",
                &self
                    .descriptors
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<S: ?Sized + Sync> Default for MethodTable<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: ?Sized + Sync> MethodTable<S> {
    /// A table with no methods.
    pub fn new() -> Self {
        Self {
            descriptors: Vec::new(),
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds the method `name`, taking `P` and returning `R`, answered by `handler`.
    ///
    /// Its descriptor carries `description`, `effect` and the schemas of `P` and `R`.
    /// A name added twice appears twice in [`methods`](Self::methods), so
    /// [`ServiceDescriptor::validate`] refuses the descriptor; calls go to the first.
    pub fn method<P, R, H>(
        mut self,
        name: &str,
        description: &str,
        effect: Effect,
        handler: H,
    ) -> Self
    where
        P: DeserializeOwned + JsonSchema + 'static,
        R: Serialize + JsonSchema + 'static,
        H: for<'a> Handler<'a, S, P, R>,
    {
        let params = schema_of::<P>();
        let object = params.get("type").and_then(Value::as_str) == Some("object");
        let mut descriptor = MethodDescriptor::new(name)
            .with_description(description)
            .with_params(params)
            .with_result(schema_of::<R>());
        if effect == Effect::Idempotent {
            descriptor = descriptor.idempotent();
        }
        self.index
            .entry(name.into())
            .or_insert(self.descriptors.len());
        self.descriptors.push(descriptor);
        self.entries.push(Entry {
            object,
            handler: Box::new(Typed {
                handler,
                types: PhantomData::<fn(P) -> R>,
            }),
        });
        self
    }

    /// Marks the method added last as callable only over a WebSocket (see
    /// [`MethodDescriptor::websocket_only`]).
    pub fn websocket_only(mut self) -> Self {
        if let Some(last) = self.descriptors.pop() {
            self.descriptors.push(last.websocket_only());
        }
        self
    }

    /// The methods' descriptors, in the order they were added.
    pub fn methods(&self) -> &[MethodDescriptor] {
        &self.descriptors
    }

    /// The descriptor of the method `name`, if the table has one.
    pub fn get(&self, name: &str) -> Option<&MethodDescriptor> {
        self.index.get(name).and_then(|&i| self.descriptors.get(i))
    }

    /// `descriptor` with every method of the table added.
    pub fn describe(&self, descriptor: ServiceDescriptor) -> ServiceDescriptor {
        self.descriptors
            .iter()
            .cloned()
            .fold(descriptor, ServiceDescriptor::with_method)
    }

    /// Calls the method `method` on `state` with `params`.
    pub async fn call(
        &self,
        state: &S,
        method: &str,
        params: Value,
        ctx: CallContext,
    ) -> Result<Value, ServiceError> {
        let entry = self
            .index
            .get(method)
            .and_then(|&i| self.entries.get(i))
            .ok_or_else(|| ServiceError::MethodNotFound {
                method: method.to_owned(),
            })?;
        let params = match params {
            Value::Null if entry.object => Value::Object(Map::new()),
            Value::Object(_) => params,
            _ if entry.object => {
                return Err(ServiceError::invalid_params(
                    "",
                    "params must be a JSON object",
                ));
            }
            other => other,
        };
        entry.handler.start(state, ctx, params)?.await
    }
}

/// What a [`TableService`] is made of: the method table (a `static`, built once), the
/// state its handlers receive, and the service's descriptor.
pub type TableParts<'a, S> = (&'static MethodTable<S>, &'a S, &'a ServiceDescriptor);

/// A [`Service`] whose calls all go through one [`MethodTable`]: implement this and
/// the `Service` comes with it, answering `call` through the table and `descriptor`
/// with the stored descriptor.
#[async_trait::async_trait]
pub trait TableService: Send + Sync + 'static {
    /// What the table's handlers receive by reference.
    type State: ?Sized + Sync + 'static;

    /// The table, the handlers' state and the descriptor.
    fn parts(&self) -> TableParts<'_, Self::State>;

    /// The service's health ([`Service::health`]); healthy by default.
    async fn check_health(&self) -> Result<HealthReport, ServiceError> {
        Ok(HealthReport::healthy())
    }
}

#[async_trait::async_trait]
impl<T: TableService> Service for T {
    fn descriptor(&self) -> ServiceDescriptor {
        self.parts().2.clone()
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        let (table, state, _) = self.parts();
        table.call(state, method, params, ctx).await
    }

    async fn health(&self) -> Result<HealthReport, ServiceError> {
        self.check_health().await
    }
}

/// The JSON Schema of `T` as Plexus descriptors carry it: draft 2020-12, nested types
/// inlined (only a recursive type keeps `$defs`, referred to from inside the same
/// schema), without `$schema` or the Rust type's name as a `title`; `true` for a
/// type that takes any JSON.
pub fn schema_of<T: JsonSchema + ?Sized>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema: Schema = generator.into_root_schema_for::<T>();
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
        if object.is_empty() {
            // Anything at all (`serde_json::Value`): `true`, which validators skip.
            return Value::Bool(true);
        }
    }
    schema.to_value()
}
