//! [`SessionBackend`]: what a backend of the sessions does. The
//! [`Sessions`](crate::Sessions) in front of it makes ids, checks input, merges
//! data, counts and announces; a backend keeps records, reads the clock (its own:
//! the process's for memory, the server's for Redis, so every node agrees), keeps
//! the cap per subject, and hands each expired session to exactly one sweep.

use crate::SessionError;
use crate::config::OnCap;

/// A session as a backend keeps it; `data` is a JSON object as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The session's id (a secret).
    pub id: String,
    /// Whom it belongs to.
    pub subject: String,
    /// Its data: a JSON object, as text.
    pub data: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it expires unless touched, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// Its TTL: what a touch extends it by, in milliseconds.
    pub ttl_ms: u64,
    /// The latest it may live however often it is touched (0: no bound).
    pub deadline_ms: u64,
    /// Its data's version: 1 at creation, one more at each update.
    pub version: u64,
}

/// A session to create.
#[derive(Clone, Debug)]
pub struct NewSession<'a> {
    /// Its id, fresh from [`new_id`](crate::new_id).
    pub id: &'a str,
    /// Whom it belongs to.
    pub subject: &'a str,
    /// Its data, a JSON object as text.
    pub data: &'a str,
    /// Its TTL, in milliseconds.
    pub ttl_ms: u64,
    /// The longest it may live from now, in milliseconds (0: no bound).
    pub lifetime_ms: u64,
}

/// The cap per subject a create is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// The most live sessions of one subject.
    pub max: usize,
    /// What to do past it.
    pub on_cap: OnCap,
}

/// What a create did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The new session.
    pub record: Record,
    /// The ids of the subject's sessions evicted to make room.
    pub evicted: Vec<String>,
}

/// A session that ended without being revoked by id: swept once expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Its id.
    pub id: String,
    /// Its subject.
    pub subject: String,
}

/// One page of a subject's live sessions, soonest to expire first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordPage {
    /// The sessions.
    pub records: Vec<Record>,
    /// Whether there are more after them.
    pub more: bool,
}

/// A backend of the sessions.
#[plexus_core::async_trait]
pub trait SessionBackend: Send + Sync + 'static {
    /// Its name: `memory` or `redis`.
    fn name(&self) -> &'static str;

    /// Creates a session, first making room under `cap` (or refusing with
    /// [`SessionError::CapReached`]).
    async fn create(&self, new: NewSession<'_>, cap: Cap) -> Result<Created, SessionError>;

    /// The live session `id`.
    async fn get(&self, id: &str) -> Result<Option<Record>, SessionError>;

    /// Extends the live session `id` to its TTL from now (bounded by its
    /// deadline); the session as it now is.
    async fn touch(&self, id: &str) -> Result<Option<Record>, SessionError>;

    /// Replaces the data of the live session `id`, if its version is `expected`
    /// (when given; [`SessionError::Conflict`] otherwise), and adds one to its
    /// version.
    async fn replace(
        &self,
        id: &str,
        data: &str,
        expected: Option<u64>,
    ) -> Result<Option<Record>, SessionError>;

    /// Removes the session `id`; its subject if it was live.
    async fn revoke(&self, id: &str) -> Result<Option<String>, SessionError>;

    /// Removes every live session of `subject`; their ids.
    async fn revoke_subject(&self, subject: &str) -> Result<Vec<String>, SessionError>;

    /// Up to `limit` live sessions of `subject` after the first `offset`, soonest
    /// to expire first.
    async fn list(
        &self,
        subject: &str,
        offset: usize,
        limit: usize,
    ) -> Result<RecordPage, SessionError>;

    /// Takes up to `max` expired sessions out, each handed to exactly one sweep
    /// (of any node sharing the backend).
    async fn sweep(&self, max: usize) -> Result<Vec<Ended>, SessionError>;

    /// How many sessions it holds, when that is cheap to know.
    fn count(&self) -> Option<u64> {
        None
    }
}

/// The expiry of a session created or touched at `now_ms` with `ttl_ms`, held to
/// its `deadline_ms` (0: none).
pub fn expiry(now_ms: u64, ttl_ms: u64, deadline_ms: u64) -> u64 {
    let expires = now_ms.saturating_add(ttl_ms);
    if deadline_ms > 0 {
        expires.min(deadline_ms)
    } else {
        expires
    }
}

/// How many sessions an embedded backend holds and may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// Held now (expired ones not yet swept included).
    pub now: usize,
    /// The most it may hold (`sessions.max_sessions`).
    pub max: usize,
}

/// What a backend that keeps its own clock does to create `new` at `now_ms`,
/// given the subject's live ids (soonest to expire first): the ids to evict and
/// the record to write, or why the create is refused (the cap with `refuse`, or
/// `held` at its maximum even after the evictions).
pub fn plan_create(
    new: &NewSession<'_>,
    cap: Cap,
    now_ms: u64,
    live: Vec<String>,
    held: Held,
) -> Result<Created, SessionError> {
    let over = (live.len() + 1).saturating_sub(cap.max);
    if over > 0 && cap.on_cap == OnCap::Refuse {
        return Err(SessionError::CapReached { max: cap.max });
    }
    if held.now.saturating_sub(over) >= held.max {
        return Err(SessionError::Full { max: held.max });
    }
    let deadline_ms = match new.lifetime_ms {
        0 => 0,
        life => now_ms.saturating_add(life),
    };
    let record = Record {
        id: new.id.to_owned(),
        subject: new.subject.to_owned(),
        data: new.data.to_owned(),
        created_at_ms: now_ms,
        expires_at_ms: expiry(now_ms, new.ttl_ms, deadline_ms),
        ttl_ms: new.ttl_ms,
        deadline_ms,
        version: 1,
    };
    Ok(Created {
        record,
        evicted: live.into_iter().take(over).collect(),
    })
}
