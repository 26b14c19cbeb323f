//! [`LockService`]: the locks as a Plexus service (`lock.*` methods), so every
//! front end (JSON-RPC, WebSocket, MCP, the CLI) reaches them through the call path.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `acquire` | `name`, `lease_ms`, `wait_ms`?, `holder`? | `{name, token, lease_ms, waited_ms}` |
//! | `extend` | `name`, `token`, `lease_ms` | `{name, token, lease_ms}` |
//! | `release` | `name`, `token` | `{released: true}` |
//! | `status` | `name` | `{name, held, holder, token, remaining_ms}` |
//!
//! A remote holder keeps its lease alive by calling `extend` with its token before
//! the lease ends (every third of the lease), and stops acting on what the lock
//! guards when `extend` answers `not_holder`.
//!
//! Errors: bad input is [`ServiceError::InvalidParams`] naming the field (`/name`,
//! `/lease_ms`, `/wait_ms`, `/holder`); the backend out of reach is
//! [`ServiceError::Unavailable`]; a lock that stayed held is a retryable
//! [`ServiceError::Failed`] with `data.kind = "busy"`; a token that no longer holds
//! the lock is a [`ServiceError::Failed`] with `data.kind = "not_holder"` (never a
//! silent success).

use std::sync::LazyLock;
use std::time::Duration;

use plexus_core::methods::{Effect, MethodTable, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Grant, Locks, Status};

/// The locks behind the `lock` service.
#[derive(Clone, Debug)]
pub struct LockService {
    locks: Locks,
    descriptor: ServiceDescriptor,
}

impl LockService {
    /// The service over `locks`, instance `lock-1`.
    pub fn new(locks: Locks) -> Self {
        Self {
            locks,
            descriptor: METHODS.describe(
                ServiceDescriptor::new("lock", "lock")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "Leased locks with fencing tokens: acquire (optionally waiting), extend, release, status",
                    ),
            ),
        }
    }

    /// The locks underneath.
    pub fn locks(&self) -> &Locks {
        &self.locks
    }
}

/// The `lock.*` methods, built once.
static METHODS: LazyLock<MethodTable<Locks>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<AcquireParams, Grant, _>(
            "acquire",
            "Take a lock for a lease, waiting up to wait_ms while another holds it; answers its fencing token",
            Effect::Mutating,
            acquire,
        )
        .method::<ExtendParams, Extended, _>(
            "extend",
            "Set the lease of a grant to lease_ms from now; refused when the token no longer holds the lock",
            Effect::Mutating,
            extend,
        )
        .method::<TokenParams, Released, _>(
            "release",
            "Free a lock held with this token; refused when the token no longer holds it",
            Effect::Mutating,
            release,
        )
        .method::<NameParams, Status, _>(
            "status",
            "Who holds a lock, with which token, for how much longer",
            Effect::Idempotent,
            status,
        )
});

/// The lock's name: non-empty text within `locks.max_name_bytes`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct Name(#[schemars(length(min = 1))] String);

/// Params of `lock.acquire`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AcquireParams {
    name: Name,
    /// The lease in milliseconds (1 to `locks.max_lease_ms`).
    #[schemars(range(min = 1))]
    lease_ms: u64,
    /// How long to wait while another holds the lock, in milliseconds (default 0:
    /// one attempt; at most `locks.max_wait_ms`).
    #[serde(default)]
    wait_ms: Option<u64>,
    /// A label for the holder, shown by `status`.
    #[serde(default)]
    holder: Option<String>,
}

/// Params of `lock.extend`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExtendParams {
    name: Name,
    /// The token of the grant.
    token: u64,
    /// The new lease from now, in milliseconds.
    #[schemars(range(min = 1))]
    lease_ms: u64,
}

/// What `lock.extend` did.
#[derive(Debug, Serialize, JsonSchema)]
struct Extended {
    /// The lock's name.
    name: String,
    /// The token of the grant.
    token: u64,
    /// The lease from now, in milliseconds.
    lease_ms: u64,
}

/// Params of `lock.release`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TokenParams {
    name: Name,
    /// The token of the grant.
    token: u64,
}

/// What `lock.release` did.
#[derive(Debug, Serialize, JsonSchema)]
struct Released {
    /// Always true: a refused release is an error.
    released: bool,
}

/// Params of `lock.status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameParams {
    name: Name,
}

async fn acquire(s: &Locks, _: CallContext, p: AcquireParams) -> Result<Grant, ServiceError> {
    let wait = Duration::from_millis(p.wait_ms.unwrap_or(0));
    let holder = p.holder.unwrap_or_default();
    Ok(
        s.grant(&p.name.0, Duration::from_millis(p.lease_ms), wait, &holder)
            .await?,
    )
}

async fn extend(s: &Locks, _: CallContext, p: ExtendParams) -> Result<Extended, ServiceError> {
    s.extend(&p.name.0, p.token, Duration::from_millis(p.lease_ms))
        .await?;
    Ok(Extended {
        name: p.name.0,
        token: p.token,
        lease_ms: p.lease_ms,
    })
}

async fn release(s: &Locks, _: CallContext, p: TokenParams) -> Result<Released, ServiceError> {
    s.release(&p.name.0, p.token).await?;
    Ok(Released { released: true })
}

async fn status(s: &Locks, _: CallContext, p: NameParams) -> Result<Status, ServiceError> {
    Ok(s.status(&p.name.0).await?)
}

impl TableService for LockService {
    type State = Locks;

    fn parts(&self) -> TableParts<'_, Locks> {
        (&METHODS, &self.locks, &self.descriptor)
    }
}
