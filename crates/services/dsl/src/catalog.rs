//! [`Catalog`]: the verbs a program may use, each a registered method with its
//! compiled params schema and the keys it documents, taken from the registry (the
//! newest registration of each service that accepts calls, as the call path and the
//! MCP tool list do). Schemas are compiled once per registered descriptor and kept in
//! a bounded [`SchemaCache`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jsonschema::Validator;
use parking_lot::Mutex;
use plexus_core::ServiceDescriptor;
use plexus_registry::{Query, Registration, Registry};
use serde_json::Value;

/// One verb: a method `service.method` and what its params must be.
#[derive(Clone)]
pub struct Verb {
    /// `service.method`.
    pub method: String,
    /// What it does.
    pub description: String,
    /// The params' property names its schema documents, sorted.
    pub keys: Vec<String>,
    /// The keys its schema requires.
    pub required: Vec<String>,
    /// The params schema as registered (shown to a model by `dsl.ask`).
    pub params: Arc<Value>,
    /// The compiled params schema; `None` accepts anything.
    pub(crate) schema: Option<Arc<Validator>>,
}

impl std::fmt::Debug for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verb")
            .field("method", &self.method)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A params schema that does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the params schema of `{method}` does not compile: {reason}")]
pub struct SchemaError {
    /// The method.
    pub method: String,
    /// What the compiler said.
    pub reason: String,
}

impl Verb {
    /// The verb `method` whose params follow `schema` (`true`: anything).
    pub fn new(method: &str, description: &str, schema: &Value) -> Result<Self, SchemaError> {
        let compiled = if schema == &Value::Bool(true) {
            None
        } else {
            Some(Arc::new(jsonschema::validator_for(schema).map_err(
                |e| SchemaError {
                    method: method.to_owned(),
                    reason: e.to_string(),
                },
            )?))
        };
        Ok(Self::with_schema(
            method,
            description,
            Arc::new(schema.clone()),
            compiled,
        ))
    }

    fn with_schema(
        method: &str,
        description: &str,
        schema: Arc<Value>,
        compiled: Option<Arc<Validator>>,
    ) -> Self {
        let keys = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            method: method.to_owned(),
            description: description.to_owned(),
            keys,
            required,
            params: schema,
            schema: compiled,
        }
    }
}

/// The verbs known at one moment, by name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    verbs: BTreeMap<String, Verb>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// With one more verb.
    pub fn with(mut self, verb: Verb) -> Self {
        self.verbs.insert(verb.method.clone(), verb);
        self
    }

    /// What `registry` offers now: every method of the newest registration of each
    /// service that accepts calls. A schema that does not compile (the node refuses
    /// such a registration) leaves its method out.
    pub fn of(registry: &Registry, cache: &SchemaCache) -> Self {
        let mut newest: BTreeMap<String, Registration> = BTreeMap::new();
        for registration in registry.discover(&Query::new().accepting_calls()) {
            let name = registration.service().to_string();
            match newest.get(&name) {
                Some(kept) if kept.registered_at >= registration.registered_at => {}
                _ => {
                    newest.insert(name, registration);
                }
            }
        }
        let mut verbs = BTreeMap::new();
        for (service, registration) in newest {
            let descriptor = &registration.descriptor;
            for m in descriptor.methods.iter().filter(|m| !m.websocket_only) {
                let method = format!("{service}.{}", m.name);
                let Some((compiled, params)) = cache.compiled(&method, descriptor, &m.params)
                else {
                    continue;
                };
                let description = if m.description.is_empty() {
                    &descriptor.description
                } else {
                    &m.description
                };
                let verb = Verb::with_schema(&method, description, params, compiled);
                verbs.insert(method, verb);
            }
        }
        Self { verbs }
    }

    /// The verb `method`.
    pub fn get(&self, method: &str) -> Option<&Verb> {
        self.verbs.get(method)
    }

    /// Every verb, by name.
    pub fn verbs(&self) -> impl Iterator<Item = &Verb> {
        self.verbs.values()
    }

    /// The known name closest to `name`, when one is close enough to suggest.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        closest(name, self.verbs.keys().map(String::as_str))
    }
}

/// The candidate closest to `name` (Jaro-Winkler at least 0.8), if any.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Compiled schemas by method, each valid while its service's registered
/// descriptor is the same one; at most `capacity` methods (then it starts over).
#[derive(Debug)]
pub struct SchemaCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

type Compiled = (Option<Arc<Validator>>, Arc<Value>);
type Entry = (Arc<ServiceDescriptor>, Compiled);

impl SchemaCache {
    /// A cache of at most `capacity` methods.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `method`'s compiled schema (`None` inside: accepts anything) and the schema
    /// itself, or `None` when it does not compile.
    fn compiled(
        &self,
        method: &str,
        descriptor: &Arc<ServiceDescriptor>,
        schema: &Value,
    ) -> Option<Compiled> {
        if let Some((d, v)) = self.entries.lock().get(method)
            && Arc::ptr_eq(d, descriptor)
        {
            return Some(v.clone());
        }
        let compiled = if schema == &Value::Bool(true) {
            None
        } else {
            Some(Arc::new(jsonschema::validator_for(schema).ok()?))
        };
        let compiled = (compiled, Arc::new(schema.clone()));
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(method) {
            entries.clear();
        }
        entries.insert(method.to_owned(), (descriptor.clone(), compiled.clone()));
        Some(compiled)
    }
}
