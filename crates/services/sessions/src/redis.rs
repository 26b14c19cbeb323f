//! [`RedisBackend`]: sessions on Redis/Valkey, shared by every node that uses the
//! same server and key prefix. Every operation is one Lua script, so one round
//! trip, atomic, on the server's clock (`TIME`), so nodes whose clocks differ
//! still agree on what has expired.
//!
//! Keys, under the `[redis]` key prefix:
//! - `session:{id}`: a hash (`subject`, `data`, `created`, `expires`, `ttl`,
//!   `deadline`, `version`) with `PEXPIREAT` at its expiry, so Redis drops it by
//!   itself even if no node ever sweeps;
//! - `session-subject:{subject}`: a sorted set of the subject's ids by expiry, for
//!   its cap (counted over the live ones) and `session.list`;
//! - `session-expiry`: one sorted set of `{id}{subject}` by expiry (the id has a
//!   fixed length), which the sweep reads.
//!
//! **Expiry events, exactly once across nodes.** Every node runs a sweeper; each
//! sweep is a script that takes the members of `session-expiry` whose score has
//! passed *and removes them in the same script*. Scripts run one at a time on a
//! Redis server, so each expired session is taken by exactly one sweep of one node,
//! which announces it as `session.expired`. A touch moves the member's score
//! forward in its own script, so a session touched in time is never taken.
//! Keyspace notifications (`__keyevent@0__:expired`) are not used: they are off by
//! default (`notify-keyspace-events`), they are fire-and-forget pub/sub (a node
//! that is disconnected misses them, nothing replays them), every subscribed node
//! receives each one (so N nodes would announce N times), and the expired hash is
//! gone when they fire (so the subject is lost).
//!
//! The scripts build the keys they touch from the prefix (the subject's set is
//! known only once the hash is read), so this backend needs a single Redis server,
//! not a cluster.

use plexus_redis::Redis;
use redis::{FromRedisValue, Script, Value};

use crate::SessionError;
use crate::backend::{Cap, Created, Ended, NewSession, Record, RecordPage, SessionBackend};
use crate::config::OnCap;
use crate::id::ID_LEN;

/// Shared by every script: the clock, the keys, reading a record.
const PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local P = ARGV[1]
local E = P .. 'session-expiry'
local function S(id) return P .. 'session:' .. id end
local function U(subject) return P .. 'session-subject:' .. subject end
local FIELDS = {'subject', 'data', 'created', 'expires', 'ttl', 'deadline', 'version'}
local function read(id)
  local f = redis.call('HMGET', S(id), unpack(FIELDS))
  if not f[1] or tonumber(f[4]) <= now then return nil end
  return f
end
local function reply(id, f)
  return {id, f[1], f[2], f[3], f[4], f[5], f[6], f[7]}
end
local function drop(id, subject)
  redis.call('DEL', S(id))
  redis.call('ZREM', U(subject), id)
  redis.call('ZREM', E, id .. subject)
end
local function place(id, subject, expires)
  redis.call('HSET', S(id), 'expires', expires)
  redis.call('PEXPIREAT', S(id), expires)
  redis.call('ZADD', U(subject), expires, id)
  redis.call('ZADD', E, expires, id .. subject)
end
";

/// ARGV: prefix, id, subject, data, ttl, lifetime, max per subject, refuse (1/0).
/// `{0}` when refused at the cap, else `{record, evicted ids}`.
const CREATE: &str = r"
local id, subject, ttl, life = ARGV[2], ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])
local max = tonumber(ARGV[7])
local live = redis.call('ZRANGEBYSCORE', U(subject), '(' .. now, '+inf')
local over = #live + 1 - max
local evicted = {}
if over > 0 then
  if ARGV[8] == '1' then return {0} end
  for i = 1, over do
    drop(live[i], subject)
    evicted[i] = live[i]
  end
end
local deadline = 0
if life > 0 then deadline = now + life end
local expires = now + ttl
if deadline > 0 and deadline < expires then expires = deadline end
redis.call('HSET', S(id), 'subject', subject, 'data', ARGV[4], 'created', now,
  'ttl', ttl, 'deadline', deadline, 'version', 1)
place(id, subject, expires)
return {reply(id, read(id)), evicted}
";

/// ARGV: prefix, id.
const GET: &str = r"
local f = read(ARGV[2])
if not f then return false end
return reply(ARGV[2], f)
";

/// ARGV: prefix, id.
const TOUCH: &str = r"
local id = ARGV[2]
local f = read(id)
if not f then return false end
local expires = now + tonumber(f[5])
local deadline = tonumber(f[6])
if deadline > 0 and deadline < expires then expires = deadline end
place(id, f[1], expires)
f[4] = expires
return reply(id, f)
";

/// ARGV: prefix, id, data, expected version ('' for any).
/// `{0, version}` on a conflict, else `{1, record}`.
const REPLACE: &str = r"
local id = ARGV[2]
local f = read(id)
if not f then return false end
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= tonumber(f[7]) then
  return {0, f[7]}
end
f[2] = ARGV[3]
f[7] = redis.call('HINCRBY', S(id), 'version', 1)
redis.call('HSET', S(id), 'data', ARGV[3])
return {1, reply(id, f)}
";

/// ARGV: prefix, id. The subject, if the session was live.
const REVOKE: &str = r"
local f = read(ARGV[2])
if not f then return false end
drop(ARGV[2], f[1])
return f[1]
";

/// ARGV: prefix, subject. The ids revoked.
const REVOKE_SUBJECT: &str = r"
local subject = ARGV[2]
local live = redis.call('ZRANGEBYSCORE', U(subject), '(' .. now, '+inf')
for _, id in ipairs(live) do drop(id, subject) end
return live
";

/// ARGV: prefix, subject, offset, limit. `{more (1/0), records}`.
const LIST: &str = r"
local limit = tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', U(ARGV[2]), '(' .. now, '+inf',
  'LIMIT', tonumber(ARGV[3]), limit + 1)
local out = {}
for i, id in ipairs(ids) do
  if i > limit then break end
  local f = read(id)
  if f then out[#out + 1] = reply(id, f) end
end
local more = 0
if #ids > limit then more = 1 end
return {more, out}
";

/// ARGV: prefix, max. Takes (and removes) up to max expired members.
const SWEEP: &str = r"
local due = redis.call('ZRANGEBYSCORE', E, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local id, subject = string.sub(m, 1, IDLEN), string.sub(m, IDLEN + 1)
  redis.call('ZREM', E, m)
  redis.call('ZREM', U(subject), id)
  redis.call('DEL', S(id))
end
return due
";

/// The scripts, each compiled once with the prelude.
#[derive(Debug)]
struct Scripts {
    create: Script,
    get: Script,
    touch: Script,
    replace: Script,
    revoke: Script,
    revoke_subject: Script,
    list: Script,
    sweep: Script,
}

fn script(body: &str) -> Script {
    let prelude = PRELUDE.replace("IDLEN", &ID_LEN.to_string());
    Script::new(&format!(
        "{prelude}{}",
        body.replace("IDLEN", &ID_LEN.to_string())
    ))
}

/// Sessions on Redis.
#[derive(Debug)]
pub struct RedisBackend {
    redis: Redis,
    prefix: String,
    scripts: Scripts,
}

impl RedisBackend {
    /// The backend on `redis`, under its key prefix.
    pub fn new(redis: Redis) -> Self {
        Self {
            prefix: redis.key(""),
            redis,
            scripts: Scripts {
                create: script(CREATE),
                get: script(GET),
                touch: script(TOUCH),
                replace: script(REPLACE),
                revoke: script(REVOKE),
                revoke_subject: script(REVOKE_SUBJECT),
                list: script(LIST),
                sweep: script(SWEEP),
            },
        }
    }

    /// Runs `script` with the prefix then `args`, in one round trip.
    async fn run<T: FromRedisValue + Send + 'static>(
        &self,
        script: &Script,
        args: &[&str],
    ) -> Result<T, SessionError> {
        let args = std::iter::once(self.prefix.as_str()).chain(args.iter().copied());
        Ok(self.redis.eval(script, [0u8; 0], args).await?)
    }
}

/// A reply that is not what the script returns: the server is not one we know.
fn malformed(what: &str) -> SessionError {
    SessionError::Backend(plexus_redis::RedisError::Command {
        reason: format!("unexpected reply to the session {what} script"),
    })
}

/// A record from a script's `reply(id, f)`.
fn record(value: Value) -> Result<Record, SessionError> {
    let (id, subject, data, created, expires, ttl, deadline, version): (
        String,
        String,
        String,
        u64,
        u64,
        u64,
        u64,
        u64,
    ) = redis::from_redis_value(value).map_err(|_| malformed("record"))?;
    Ok(Record {
        id,
        subject,
        data,
        created_at_ms: created,
        expires_at_ms: expires,
        ttl_ms: ttl,
        deadline_ms: deadline,
        version,
    })
}

fn maybe_record(value: Option<Value>) -> Result<Option<Record>, SessionError> {
    value.map(record).transpose()
}

#[plexus_core::async_trait]
impl SessionBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn create(&self, new: NewSession<'_>, cap: Cap) -> Result<Created, SessionError> {
        let (ttl, life, max) = (
            new.ttl_ms.to_string(),
            new.lifetime_ms.to_string(),
            cap.max.to_string(),
        );
        let refuse = if cap.on_cap == OnCap::Refuse {
            "1"
        } else {
            "0"
        };
        let args = [new.id, new.subject, new.data, &ttl, &life, &max, refuse];
        let reply: Vec<Value> = self.run(&self.scripts.create, &args).await?;
        let mut reply = reply.into_iter();
        match (reply.next(), reply.next()) {
            (Some(rec), Some(evicted)) => Ok(Created {
                record: record(rec)?,
                evicted: redis::from_redis_value(evicted).map_err(|_| malformed("create"))?,
            }),
            (Some(_), None) => Err(SessionError::CapReached { max: cap.max }),
            _ => Err(malformed("create")),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, SessionError> {
        maybe_record(self.run(&self.scripts.get, &[id]).await?)
    }

    async fn touch(&self, id: &str) -> Result<Option<Record>, SessionError> {
        maybe_record(self.run(&self.scripts.touch, &[id]).await?)
    }

    async fn replace(
        &self,
        id: &str,
        data: &str,
        expected: Option<u64>,
    ) -> Result<Option<Record>, SessionError> {
        let expected_arg = expected.map(|v| v.to_string()).unwrap_or_default();
        let reply: Option<(u8, Value)> = self
            .run(&self.scripts.replace, &[id, data, &expected_arg])
            .await?;
        match reply {
            None => Ok(None),
            Some((1, rec)) => record(rec).map(Some),
            Some((_, actual)) => Err(SessionError::Conflict {
                expected: expected.unwrap_or_default(),
                actual: redis::from_redis_value(actual).map_err(|_| malformed("update"))?,
            }),
        }
    }

    async fn revoke(&self, id: &str) -> Result<Option<String>, SessionError> {
        self.run(&self.scripts.revoke, &[id]).await
    }

    async fn revoke_subject(&self, subject: &str) -> Result<Vec<String>, SessionError> {
        self.run(&self.scripts.revoke_subject, &[subject]).await
    }

    async fn list(
        &self,
        subject: &str,
        offset: usize,
        limit: usize,
    ) -> Result<RecordPage, SessionError> {
        let (offset, limit) = (offset.to_string(), limit.to_string());
        let (more, records): (u8, Vec<Value>) = self
            .run(&self.scripts.list, &[subject, &offset, &limit])
            .await?;
        Ok(RecordPage {
            records: records.into_iter().map(record).collect::<Result<_, _>>()?,
            more: more == 1,
        })
    }

    async fn sweep(&self, max: usize) -> Result<Vec<Ended>, SessionError> {
        let due: Vec<String> = self.run(&self.scripts.sweep, &[&max.to_string()]).await?;
        Ok(due
            .into_iter()
            .filter_map(|m| {
                let (id, subject) = (m.get(..ID_LEN)?, m.get(ID_LEN..)?);
                Some(Ended {
                    id: id.to_owned(),
                    subject: subject.to_owned(),
                })
            })
            .collect())
    }
}
