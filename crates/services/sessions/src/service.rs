//! [`SessionService`]: the sessions as a Plexus service (`session.*` methods), so
//! every front end (JSON-RPC, WebSocket, MCP, the CLI) reaches them through the
//! call path.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `create` | `subject`, `ttl_ms`?, `data`? | `{id, expires_at_ms}` |
//! | `get` | `id` | the session: `id`, `subject`, `data`, `created_at_ms`, `expires_at_ms`, `ttl_ms`, `version` |
//! | `touch` | `id` | the session, its expiry extended by its TTL |
//! | `update` | `id`, `data`, `mode`? (`replace`/`merge`), `expected_version`? | the session |
//! | `revoke` | `id` or `subject` | `{revoked}` |
//! | `list` | `subject`, `offset`?, `limit`? | `{sessions, next_offset}` |
//!
//! The service runs the sweeper from `start` to `stop`: expired sessions are
//! taken out every `sessions.sweep_interval_ms` and announced as
//! `session.expired` once the node's bus is attached.
//!
//! Errors: bad input is [`ServiceError::InvalidParams`] naming the field
//! (`/subject`, `/ttl_ms`, `/data`, `/id`, `/limit`); an id that is unknown,
//! expired or revoked is [`ServiceError::Failed`] with data `{"kind":
//! "not_found"}` (the three are not told apart); a version conflict `{"kind":
//! "conflict", "expected", "actual"}`; a refused create `{"kind": "cap_reached"}`
//! or `{"kind": "full"}`; Redis out of reach is [`ServiceError::Unavailable`].

use std::sync::LazyLock;

use plexus_core::methods::{Effect, MethodTable};
use plexus_core::{CallContext, CallResult, Service, ServiceDescriptor, ServiceError, async_trait};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Page, Session, Sessions, UpdateMode};

/// The sessions behind the `session` service.
#[derive(Clone, Debug)]
pub struct SessionService {
    sessions: Sessions,
    descriptor: ServiceDescriptor,
}

impl SessionService {
    /// The service over `sessions`, instance `session-1`.
    pub fn new(sessions: Sessions) -> Self {
        Self {
            sessions,
            descriptor: METHODS.describe(
                ServiceDescriptor::new("session", "session")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "Sessions with unguessable ids, TTLs with sliding renewal and versioned data",
                    )
                    .with_publishes(crate::EXPIRED)
                    .with_publishes(crate::REVOKED),
            ),
        }
    }

    /// The sessions underneath.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }
}

/// The `session.*` methods, built once.
static METHODS: LazyLock<MethodTable<Sessions>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<CreateParams, CreateResult, _>(
            "create",
            "Create a session for a subject with a TTL and data; past the subject's cap its oldest session is evicted (or the create refused)",
            Effect::Mutating,
            create,
        )
        .method::<IdParams, Session, _>(
            "get",
            "Read a live session (unknown, expired and revoked ids are all not found)",
            Effect::Idempotent,
            get,
        )
        .method::<IdParams, Session, _>(
            "touch",
            "Extend a live session by its TTL from now (sliding renewal)",
            Effect::Idempotent,
            touch,
        )
        .method::<UpdateParams, Session, _>(
            "update",
            "Replace or merge a session's data, optionally only at an expected version",
            Effect::Mutating,
            update,
        )
        .method::<RevokeParams, Revoked, _>(
            "revoke",
            "Revoke a session by id, or every session of a subject",
            Effect::Idempotent,
            revoke,
        )
        .method::<ListParams, Page, _>(
            "list",
            "A subject's live sessions, soonest to expire first, a page at a time",
            Effect::Idempotent,
            list,
        )
});

/// A session id: 64 lowercase hex digits
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct Id(#[schemars(length(min = 64, max = 64))] String);

/// Whom a session belongs to: non-empty text within `sessions.max_subject_bytes`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct Subject(#[schemars(length(min = 1))] String);

/// Params of `session.create`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    subject: Subject,
    /// Its TTL in milliseconds, at most `sessions.max_ttl_ms` (`sessions.ttl_ms`
    /// when absent).
    #[serde(default)]
    #[schemars(range(min = 1))]
    ttl_ms: Option<u64>,
    /// Its data: a JSON object within `sessions.max_data_bytes` (`{}` when absent).
    #[serde(default)]
    data: Option<Value>,
}

/// What `session.create` made.
#[derive(Debug, Serialize, JsonSchema)]
struct CreateResult {
    /// The new session's id: a secret that grants the session.
    id: String,
    /// When it expires unless touched, in milliseconds since the Unix epoch.
    expires_at_ms: u64,
}

/// Params naming one session.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IdParams {
    id: Id,
}

/// Params of `session.update`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateParams {
    id: Id,
    /// The new data (`replace`) or the keys to set, null to remove (`merge`).
    data: Value,
    /// `replace` (default) or `merge`.
    #[serde(default)]
    mode: UpdateMode,
    /// Update only if the session is still at this version.
    #[serde(default)]
    expected_version: Option<u64>,
}

/// Params of `session.revoke`: an id, or a subject.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RevokeParams {
    /// The one session to revoke.
    #[serde(default)]
    id: Option<Id>,
    /// Revoke every live session of this subject.
    #[serde(default)]
    subject: Option<Subject>,
}

/// What `session.revoke` did.
#[derive(Debug, Serialize, JsonSchema)]
struct Revoked {
    /// How many live sessions were revoked.
    revoked: u64,
}

/// Params of `session.list`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListParams {
    subject: Subject,
    /// How many to skip (0 when absent): a previous page's `next_offset`.
    #[serde(default)]
    offset: usize,
    /// How many at most, up to `sessions.max_page` (the default).
    #[serde(default)]
    #[schemars(range(min = 1))]
    limit: Option<usize>,
}

async fn create(
    s: &Sessions,
    _: CallContext,
    p: CreateParams,
) -> Result<CreateResult, ServiceError> {
    let session = s.create(&p.subject.0, p.ttl_ms, p.data).await?;
    Ok(CreateResult {
        id: session.id,
        expires_at_ms: session.expires_at_ms,
    })
}

async fn get(s: &Sessions, _: CallContext, p: IdParams) -> Result<Session, ServiceError> {
    Ok(s.get(&p.id.0).await?)
}

async fn touch(s: &Sessions, _: CallContext, p: IdParams) -> Result<Session, ServiceError> {
    Ok(s.touch(&p.id.0).await?)
}

async fn update(s: &Sessions, _: CallContext, p: UpdateParams) -> Result<Session, ServiceError> {
    Ok(s.update(&p.id.0, p.data, p.mode, p.expected_version)
        .await?)
}

async fn revoke(s: &Sessions, _: CallContext, p: RevokeParams) -> Result<Revoked, ServiceError> {
    let revoked = match (p.id, p.subject) {
        (Some(id), None) => u64::from(s.revoke(&id.0).await?),
        (None, Some(subject)) => s.revoke_subject(&subject.0).await?,
        (Some(_), Some(_)) => {
            return Err(ServiceError::invalid_params(
                "/subject",
                "give `id` or `subject`, not both",
            ));
        }
        (None, None) => {
            return Err(ServiceError::invalid_params(
                "/id",
                "is required unless `subject` is given",
            ));
        }
    };
    Ok(Revoked { revoked })
}

async fn list(s: &Sessions, _: CallContext, p: ListParams) -> Result<Page, ServiceError> {
    Ok(s.list(&p.subject.0, p.offset, p.limit).await?)
}

/// By hand rather than through `TableService`, for `start` and `stop`: the
/// sweeper runs while the service does.
#[async_trait]
impl Service for SessionService {
    fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor.clone()
    }

    async fn start(&self) -> Result<(), ServiceError> {
        // The task ends at `stop`, or with the sessions.
        drop(self.sessions.start_sweeper());
        Ok(())
    }

    async fn stop(&self) -> Result<(), ServiceError> {
        self.sessions.stop_sweeper();
        Ok(())
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        METHODS.call(&self.sessions, method, params, ctx).await
    }
}
