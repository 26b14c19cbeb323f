//! [`DataStoreService`]: the DataStore as a Plexus service (`datastore.*` methods),
//! so every front end (JSON-RPC, MCP, CLI, DSL) reaches it through the call path.
//!
//! Errors: bad input is [`ServiceError::InvalidParams`] naming the field as a JSON
//! pointer (`/filter/and/1/gte`, `/doc`, `/collection`); a lost or refused database
//! connection is [`ServiceError::Unavailable`]; everything else is
//! [`ServiceError::Failed`] whose `data` holds `{"kind": StoreError::kind, …}` with the
//! error's fields (`expected`/`actual` for a version conflict, `index` for a unique
//! violation, `op` for the failing operation of a transaction).

use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, async_trait,
};
use serde_json::{Map, Value, json};

use crate::{CollectionSpec, DataStore, Filter, Op, PutMode, Query, StoreError};

/// The DataStore behind the `datastore` service.
#[derive(Debug, Clone)]
pub struct DataStoreService {
    store: DataStore,
    descriptor: ServiceDescriptor,
}

impl DataStoreService {
    /// The service over `store`, instance `datastore-1`.
    pub fn new(store: DataStore) -> Self {
        Self {
            store,
            descriptor: descriptor(),
        }
    }

    /// Sets the instance id.
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.descriptor = self.descriptor.with_instance(instance);
        self
    }

    /// The data store underneath.
    pub fn store(&self) -> &DataStore {
        &self.store
    }
}

fn collection_schema() -> Value {
    json!({"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 32,
           "description": "The collection's name"})
}

fn id_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 256, "description": "The document's id"})
}

fn version_schema() -> Value {
    json!({"type": "integer", "minimum": 0,
           "description": "Write only if the stored version is this one (0: absent)"})
}

fn filter_schema() -> Value {
    json!({"type": "object", "description":
        "{} | {\"and\": [filter]} | {\"or\": [filter]} | {\"not\": filter} | \
         {\"field\": \"a.b\", eq|ne|gt|gte|lt|lte|in|exists|contains: operand}"})
}

fn stored_schema() -> Value {
    json!({"type": "object", "properties": {"id": {"type": "string"}, "version": {"type": "integer"}},
           "required": ["id", "version"]})
}

fn document_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"}, "version": {"type": "integer"}, "doc": {"type": "object"}},
        "required": ["id", "version", "doc"]})
}

fn op_schema() -> Value {
    json!({"type": "object", "required": ["op", "collection", "id"], "properties": {
        "op": {"enum": ["put", "get", "delete", "patch"]},
        "collection": collection_schema(), "id": id_schema(),
        "doc": {"type": "object"}, "patch": {},
        "mode": {"enum": ["insert", "replace", "upsert"]},
        "expected_version": version_schema()}})
}

fn descriptor() -> ServiceDescriptor {
    ServiceDescriptor::new("datastore", "datastore")
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_description("Collections of JSON documents with filters, sort, pagination, indexes and transactions")
        .with_method(
            MethodDescriptor::new("put")
                .with_description("Insert, replace or upsert a document, optionally only at an expected version")
                .with_params(json!({"type": "object", "additionalProperties": false,
                    "required": ["collection", "id", "doc"], "properties": {
                    "collection": collection_schema(), "id": id_schema(),
                    "doc": {"type": "object", "minProperties": 1},
                    "mode": {"enum": ["insert", "replace", "upsert"], "default": "upsert"},
                    "expected_version": version_schema()}}))
                .with_result(stored_schema()),
        )
        .with_method(
            MethodDescriptor::new("get")
                .with_description("Read a document by id; null when there is none")
                .with_params(json!({"type": "object", "additionalProperties": false,
                    "required": ["collection", "id"], "properties": {
                    "collection": collection_schema(), "id": id_schema()}}))
                .with_result(json!({"oneOf": [document_schema(), {"type": "null"}]}))
                .idempotent(),
        )
        .with_method(
            MethodDescriptor::new("delete")
                .with_description("Delete a document by id, optionally only at an expected version")
                .with_params(json!({"type": "object", "additionalProperties": false,
                    "required": ["collection", "id"], "properties": {
                    "collection": collection_schema(), "id": id_schema(),
                    "expected_version": version_schema()}}))
                .with_result(json!({"type": "object", "properties": {"deleted": {"type": "boolean"}}})),
        )
        .with_method(
            MethodDescriptor::new("patch")
                .with_description("Apply a JSON merge patch (RFC 7386) to a document")
                .with_params(json!({"type": "object", "additionalProperties": false,
                    "required": ["collection", "id", "patch"], "properties": {
                    "collection": collection_schema(), "id": id_schema(),
                    "patch": {"type": "object"}, "expected_version": version_schema()}}))
                .with_result(stored_schema()),
        )
        .with_method(
            MethodDescriptor::new("query")
                .with_description("One page of the documents a filter selects, sorted, projected, with a cursor to the next page")
                .with_params(json!({"type": "object", "additionalProperties": false,
                    "required": ["collection"], "properties": {
                    "collection": collection_schema(), "filter": filter_schema(),
                    "sort": {"type": "array", "maxItems": 4, "items": {"type": "object",
                        "required": ["field"], "additionalProperties": false, "properties": {
                        "field": {"type": "string"}, "order": {"enum": ["asc", "desc"]}}}},
                    "projection": {"type": "array", "items": {"type": "string"}},
                    "limit": {"type": "integer", "minimum": 1},
                    "cursor": {"type": ["string", "null"]}}}))
                .with_result(json!({"type": "object", "properties": {
                    "docs": {"type": "array", "items": document_schema()},
                    "next_cursor": {"type": ["string", "null"]}}}))
                .idempotent(),
        )
        .with_method(
            MethodDescriptor::new("count")
                .with_description("How many documents a filter selects")
                .with_params(json!({"type": "object", "additionalProperties": false,
                    "required": ["collection"], "properties": {
                    "collection": collection_schema(), "filter": filter_schema()}}))
                .with_result(json!({"type": "object", "properties": {"count": {"type": "integer"}}}))
                .idempotent(),
        )
        .with_method(
            MethodDescriptor::new("create_collection")
                .with_description("Create a collection with secondary indexes (a no-op when it exists with the same indexes)")
                .with_params(json!({"type": "object", "additionalProperties": false,
                    "required": ["name"], "properties": {
                    "name": collection_schema(),
                    "indexes": {"type": "array", "items": {"type": "object",
                        "required": ["name", "fields"], "additionalProperties": false, "properties": {
                        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 24},
                        "fields": {"type": "array", "minItems": 1, "maxItems": 8, "items": {"type": "string"}},
                        "unique": {"type": "boolean"}}}}}}))
                .with_result(json!({"type": "object", "properties": {"created": {"type": "boolean"}}})),
        )
        .with_method(
            MethodDescriptor::new("transaction")
                .with_description("Run several put/get/delete/patch operations all-or-nothing")
                .with_params(json!({"type": "object", "additionalProperties": false,
                    "required": ["ops"], "properties": {
                    "ops": {"type": "array", "items": op_schema()}}}))
                .with_result(json!({"type": "object", "properties": {"results": {"type": "array"}}})),
        )
        .with_method(
            MethodDescriptor::new("slow_queries")
                .with_description("Statements that took at least the slow-query threshold, oldest first")
                .with_params(json!({"type": "object", "additionalProperties": false}))
                .with_result(json!({"type": "object", "properties": {"queries": {"type": "array",
                    "items": {"type": "object", "properties": {
                        "at_unix_ms": {"type": "integer"}, "kind": {"type": "string"},
                        "collection": {"type": "string"}, "duration_seconds": {"type": "number"},
                        "sql": {"type": "string"}}}}}}))
                .idempotent(),
        )
}

/// The params object, read field by field with errors naming the field.
struct Params<'a>(&'a Map<String, Value>);

impl<'a> Params<'a> {
    fn new(value: &'a Value, allowed: &[&str]) -> Result<Self, ServiceError> {
        let Value::Object(map) = value else {
            return Err(ServiceError::invalid_params(
                "",
                "params must be a JSON object",
            ));
        };
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ServiceError::invalid_params(
                format!("/{key}"),
                format!("is not a parameter; expected one of {}", allowed.join(", ")),
            ));
        }
        Ok(Self(map))
    }

    fn value(&self, key: &str) -> Result<&'a Value, ServiceError> {
        self.0
            .get(key)
            .ok_or_else(|| ServiceError::invalid_params(format!("/{key}"), "is required"))
    }

    fn str(&self, key: &str) -> Result<&'a str, ServiceError> {
        self.value(key)?
            .as_str()
            .ok_or_else(|| ServiceError::invalid_params(format!("/{key}"), "must be a string"))
    }

    fn opt_u64(&self, key: &str) -> Result<Option<u64>, ServiceError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ServiceError::invalid_params(format!("/{key}"), "must be a non-negative integer")
            }),
        }
    }

    fn typed<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ServiceError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| ServiceError::invalid_params(format!("/{key}"), e.to_string())),
        }
    }
}

/// `sort[0].order` as a JSON pointer: `/sort/0/order`.
fn pointer(field: &str) -> String {
    let mut out = String::from("/");
    for c in field.chars() {
        match c {
            '.' | '[' => out.push('/'),
            ']' => {}
            c => out.push(c),
        }
    }
    out.replace("//", "/")
}

/// Maps a store error to the service error the gateway turns into JSON-RPC.
/// `doc_field` names the param a document error points at (`/doc` or `/patch`);
/// `prefix` is prepended to every field (`/ops/3` in a transaction).
pub fn service_error(err: &StoreError, doc_field: &str, prefix: &str) -> ServiceError {
    match err {
        StoreError::InvalidDocument { .. } | StoreError::DocumentTooLarge { .. } => {
            ServiceError::invalid_params(format!("{prefix}{doc_field}"), err.to_string())
        }
        StoreError::InvalidFilter { path, reason } => {
            ServiceError::invalid_params(format!("{prefix}/filter{path}"), reason.clone())
        }
        StoreError::InvalidArgument { field, reason } => {
            ServiceError::invalid_params(format!("{prefix}{}", pointer(field)), reason.clone())
        }
        StoreError::UnknownCollection { .. } => {
            ServiceError::invalid_params(format!("{prefix}/collection"), err.to_string())
        }
        StoreError::Unavailable { reason } => ServiceError::unavailable(reason.clone()),
        StoreError::Transaction { index, source } => {
            let doc_field = match source.as_ref() {
                StoreError::InvalidDocument { .. } | StoreError::DocumentTooLarge { .. } => {
                    doc_field
                }
                _ => "/doc",
            };
            match service_error(source, doc_field, &format!("{prefix}/ops/{index}")) {
                ServiceError::Failed {
                    message,
                    data,
                    retryable,
                } => {
                    let mut data = data.unwrap_or_else(|| json!({}));
                    data["op"] = json!(index);
                    ServiceError::Failed {
                        message: format!(
                            "transaction rolled back: operation {index} failed: {message}"
                        ),
                        data: Some(data),
                        retryable,
                    }
                }
                other => other,
            }
        }
        other => {
            let mut data = json!({"kind": other.kind()});
            match other {
                StoreError::NotFound { collection, id }
                | StoreError::AlreadyExists { collection, id } => {
                    data["collection"] = json!(collection);
                    data["id"] = json!(id);
                }
                StoreError::VersionConflict {
                    collection,
                    id,
                    expected,
                    actual,
                } => {
                    data["collection"] = json!(collection);
                    data["id"] = json!(id);
                    data["expected"] = json!(expected);
                    data["actual"] = json!(actual);
                }
                StoreError::UniqueViolation { collection, index } => {
                    data["collection"] = json!(collection);
                    data["index"] = json!(index);
                }
                StoreError::CollectionExists { name } => data["collection"] = json!(name),
                StoreError::PoolTimeout { waited } => {
                    data["waited_ms"] = json!(waited.as_millis() as u64);
                }
                _ => {}
            }
            ServiceError::Failed {
                message: other.to_string(),
                data: Some(data),
                retryable: other.is_retryable(),
            }
        }
    }
}

fn doc_json(d: crate::Document) -> Value {
    json!({"id": d.id, "version": d.version, "doc": d.doc})
}

impl DataStoreService {
    async fn dispatch(&self, method: &str, params: &Value) -> Result<Value, ServiceError> {
        let s = &self.store;
        let fail = |doc_field: &'static str| move |e: StoreError| service_error(&e, doc_field, "");
        match method {
            "put" => {
                let p = Params::new(
                    params,
                    &["collection", "id", "doc", "mode", "expected_version"],
                )?;
                let (collection, id) = (p.str("collection")?, p.str("id")?);
                let mode: PutMode = p.typed("mode")?.unwrap_or_default();
                let stored = s
                    .put(
                        collection,
                        id,
                        p.value("doc")?,
                        mode,
                        p.opt_u64("expected_version")?,
                    )
                    .await
                    .map_err(fail("/doc"))?;
                Ok(json!({"id": id, "version": stored.version}))
            }
            "get" => {
                let p = Params::new(params, &["collection", "id"])?;
                let doc = s
                    .get(p.str("collection")?, p.str("id")?)
                    .await
                    .map_err(fail("/doc"))?;
                Ok(doc.map_or(Value::Null, doc_json))
            }
            "delete" => {
                let p = Params::new(params, &["collection", "id", "expected_version"])?;
                let deleted = s
                    .delete(
                        p.str("collection")?,
                        p.str("id")?,
                        p.opt_u64("expected_version")?,
                    )
                    .await
                    .map_err(fail("/doc"))?;
                Ok(json!({"deleted": deleted}))
            }
            "patch" => {
                let p = Params::new(params, &["collection", "id", "patch", "expected_version"])?;
                let id = p.str("id")?;
                let stored = s
                    .patch(
                        p.str("collection")?,
                        id,
                        p.value("patch")?,
                        p.opt_u64("expected_version")?,
                    )
                    .await
                    .map_err(fail("/patch"))?;
                Ok(json!({"id": id, "version": stored.version}))
            }
            "query" => {
                let p = Params::new(
                    params,
                    &[
                        "collection",
                        "filter",
                        "sort",
                        "projection",
                        "limit",
                        "cursor",
                    ],
                )?;
                let collection = p.str("collection")?;
                let mut rest = p.0.clone();
                rest.remove("collection");
                let query = Query::from_json(&Value::Object(rest)).map_err(fail("/doc"))?;
                let page = s.query(collection, &query).await.map_err(fail("/doc"))?;
                Ok(json!({
                    "docs": page.docs.into_iter().map(doc_json).collect::<Vec<_>>(),
                    "next_cursor": page.next_cursor,
                }))
            }
            "count" => {
                let p = Params::new(params, &["collection", "filter"])?;
                let filter = match p.0.get("filter") {
                    None | Some(Value::Null) => Filter::All,
                    Some(v) => Filter::from_json(v).map_err(fail("/doc"))?,
                };
                let n = s
                    .count(p.str("collection")?, &filter)
                    .await
                    .map_err(fail("/doc"))?;
                Ok(json!({"count": n}))
            }
            "create_collection" => {
                let p = Params::new(params, &["name", "indexes"])?;
                let name = p.str("name")?;
                let spec = CollectionSpec {
                    indexes: p.typed("indexes")?.unwrap_or_default(),
                };
                let created = s.create_collection(name, spec).await.map_err(|e| match e {
                    StoreError::InvalidArgument { field, reason } if field == "collection" => {
                        ServiceError::invalid_params("/name", reason)
                    }
                    e => service_error(&e, "/doc", ""),
                })?;
                Ok(json!({"created": created}))
            }
            "transaction" => {
                let p = Params::new(params, &["ops"])?;
                let Value::Array(items) = p.value("ops")? else {
                    return Err(ServiceError::invalid_params("/ops", "must be an array"));
                };
                let ops = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        serde_json::from_value::<Op>(item.clone()).map_err(|e| {
                            ServiceError::invalid_params(format!("/ops/{i}"), e.to_string())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let patch_at: Vec<bool> = ops
                    .iter()
                    .map(|op| matches!(op, Op::Patch { .. }))
                    .collect();
                let results = s.transaction(ops).await.map_err(|e| {
                    let doc_field = match &e {
                        StoreError::Transaction { index, .. }
                            if patch_at.get(*index).copied().unwrap_or(false) =>
                        {
                            "/patch"
                        }
                        _ => "/doc",
                    };
                    service_error(&e, doc_field, "")
                })?;
                Ok(json!({"results": results}))
            }
            "slow_queries" => {
                Params::new(params, &[])?;
                Ok(json!({"queries": s.slow_queries()}))
            }
            other => Err(ServiceError::MethodNotFound {
                method: other.to_owned(),
            }),
        }
    }
}

#[async_trait]
impl Service for DataStoreService {
    fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor.clone()
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        _ctx: CallContext,
    ) -> Result<Value, ServiceError> {
        // `slow_queries` takes no params: accept a missing params object for it.
        let params = if params.is_null() { json!({}) } else { params };
        self.dispatch(method, &params).await
    }

    /// Healthy when a pooled connection can be had within the acquire timeout. The
    /// pool belongs to the [`DataStore`]'s owner, so stopping the service leaves it
    /// open for a restart.
    async fn health(&self) -> Result<plexus_core::HealthReport, ServiceError> {
        match self.store.store().session().await {
            Ok(_) => Ok(plexus_core::HealthReport::healthy()),
            Err(e) => Ok(plexus_core::HealthReport::unhealthy(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_validates_and_marks_reads_idempotent() {
        let d = descriptor();
        d.validate().unwrap();
        for m in ["get", "query", "count", "slow_queries"] {
            assert!(d.method(m).unwrap().idempotent, "{m}");
        }
        for m in ["put", "delete", "patch", "create_collection", "transaction"] {
            assert!(!d.method(m).unwrap().idempotent, "{m}");
        }
    }

    #[test]
    fn fields_become_pointers() {
        assert_eq!(pointer("sort[0].order"), "/sort/0/order");
        assert_eq!(pointer("collection"), "/collection");
    }
}
