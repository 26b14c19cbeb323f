//! [`RedisBackend`]: jobs on Redis/Valkey, shared by every node that uses the same
//! server and key prefix, in sorted sets moved by Lua scripts.
//!
//! **What is atomic.** Every operation of [`JobBackend`] is one Lua script, so one
//! round trip, and Redis runs scripts one at a time: a claim (promote the due
//! jobs, pick the best, mark it running under its lease), a unique enqueue (look
//! for the key's holder, add the job, take the key), a completion or failure (only
//! while the worker still holds the job), a recovery of expired leases and a
//! schedule's advance each happen whole or not at all, and no two nodes ever take
//! the same job or fire the same schedule time. `requeue` of a whole dead-letter
//! list runs in batches of [`REQUEUE_BATCH`] jobs, each batch atomic, so a long
//! list does not hold the server; the batches together are not.
//!
//! **What is durable** is what the server keeps: with `appendonly yes` (and
//! `appendfsync always` to survive a power cut, not just a crash of the
//! process), an acknowledged enqueue survives a restart of the server.
//!
//! **What it cannot do:** enqueue inside a DataStore transaction (the data is in
//! SQL, the jobs in Redis, and no commit spans both). [`Jobs::transaction`](crate::Jobs::transaction) and
//! [`Jobs::enqueue_in`](crate::Jobs::enqueue_in) refuse it with
//! [`JobError::NotTransactional`]; enqueue after
//! the commit instead, or keep the jobs in the store's database.
//!
//! Keys, under the `[redis]` key prefix and `jobs:` (ids as members are padded to
//! 16 digits, so members order as ids do):
//! - `job:{id}`: a hash of the job's fields (JSON ones as text, read by nobody but
//!   Rust, so their numbers keep their precision); `errors:{id}`: a list of its
//!   failed attempts, trimmed to the last `jobs.max_errors`;
//! - `delayed:{queue}`: its pending jobs by `run_at`; a claim moves the due ones
//!   to `ready:{queue}`, scored `(1000 − priority) × 2⁴² + run_at` so the first
//!   member is the highest priority, then the earliest `run_at`, then (equal
//!   scores order by member) the oldest; `run_at` is clamped to 0…2⁴² − 1 ms (the
//!   year 2109) for the score only;
//! - `state:{state}:{queue}`: the queue's jobs in each state, by id (`list`,
//!   `stats`); `leases`: the running jobs by `lease_until` (recovery);
//! - `queues` (a set) and `paused` (a hash of 1 or 0): the queues known;
//! - `unique:{queue}:{key}`: the last job made with the key;
//! - `rate:{queue}`: a rated queue's bucket of start tokens (`tokens`, `at`),
//!   shared by every node;
//! - `schedules` (a hash of each schedule's body) and `schedule-next` (a sorted
//!   set of its next fire time);
//! - `seq`: the last id; the channel `wake`: announces new work (enqueue, requeue,
//!   resume), which a subscription of each backend turns into
//!   [`JobBackend::wakeups`].
//!
//! The scripts build the keys they touch from the prefix and the queue's name, so
//! this backend needs a single Redis server (or a primary with replicas), not a
//! cluster.

use std::collections::HashMap;
use std::sync::Arc;

use plexus_core::async_trait;
use plexus_redis::{Channels, Listener, Redis};
use redis::{FromRedisValue, Script, Value as Reply};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::{
    JobBackend, ListFilter, NewJob, QueueStats, ScheduleRow, Stalled, json_of, scopes_of, state_of,
};
use crate::sql::{to_u32, to_u64};
use crate::{Job, JobError, JobState};

/// The most dead jobs one `requeue` script moves.
pub const REQUEUE_BATCH: usize = 1_000;

/// Shared by every script: the keys, ids as members, scores, reading a job.
const PRELUDE: &str = r"
local P = ARGV[1]
local SHIFT = 4398046511104
local function I(n) return string.format('%d', tonumber(n)) end
local function M(id) return string.format('%016d', tonumber(id)) end
local function J(id) return P .. 'job:' .. I(id) end
local function ERR(id) return P .. 'errors:' .. I(id) end
local function S(state, q) return P .. 'state:' .. state .. ':' .. q end
local function READY(q) return P .. 'ready:' .. q end
local function DELAYED(q) return P .. 'delayed:' .. q end
local QUEUES, PAUSED, LEASES = P .. 'queues', P .. 'paused', P .. 'leases'
local function opt(s) if s == '' then return nil end return string.sub(s, 2) end
local function clamp(t)
  if t < 0 then return 0 elseif t >= SHIFT then return SHIFT - 1 end
  return t
end
local function read(id)
  local h = redis.call('HGETALL', J(id))
  if #h == 0 then return false end
  return {h, redis.call('LRANGE', ERR(id), 0, -1)}
end
local function move(id, q, from, to)
  redis.call('ZREM', S(from, q), M(id))
  redis.call('ZADD', S(to, q), tonumber(id), M(id))
  redis.call('HSET', J(id), 'state', to)
end
local function wait(id, q, run_at)
  redis.call('HSET', J(id), 'run_at', I(run_at))
  redis.call('ZADD', DELAYED(q), clamp(tonumber(run_at)), M(id))
end
local function unwait(id, q)
  redis.call('ZREM', DELAYED(q), M(id))
  redis.call('ZREM', READY(q), M(id))
end
local function held(id, worker)
  local f = redis.call('HMGET', J(id), 'state', 'worker', 'queue')
  if f[1] ~= 'running' or f[2] ~= worker then return nil end
  return f[3]
end
local function release(id)
  redis.call('ZREM', LEASES, M(id))
  redis.call('HDEL', J(id), 'worker', 'lease_until')
end
local function paused(q) return redis.call('HGET', PAUSED, q) == '1' end
local function promote(q, now)
  local due = redis.call('ZRANGEBYSCORE', DELAYED(q), '-inf', now, 'LIMIT', 0, 1000)
  for _, m in ipairs(due) do
    local f = redis.call('HMGET', J(m), 'priority', 'run_at')
    local score = (1000 - tonumber(f[1])) * SHIFT + clamp(tonumber(f[2]))
    redis.call('ZADD', READY(q), score, m)
    redis.call('ZREM', DELAYED(q), m)
  end
end
local function take(m, q, worker, lease_until)
  redis.call('ZREM', READY(q), m)
  move(m, q, 'pending', 'running')
  redis.call('HINCRBY', J(m), 'attempt', 1)
  redis.call('HSET', J(m), 'worker', worker, 'lease_until', lease_until)
  redis.call('ZADD', LEASES, tonumber(lease_until), m)
  return read(m)
end
";

/// ARGV: prefix, then for each job (14 each): queue, target, params, priority,
/// max attempts, backoff, timeout, run_at, created_at, unique key (opt), metadata,
/// caller (opt), scopes (opt), window start. For each, in order, `{id, 1}` when
/// added, `{holder, 0}` when the key is held (by an earlier job of the batch too).
const ENQUEUE: &str = r"
-- One wake-up per queue of the batch, after its jobs.
local woken = {}
local function one(o)
  local q, key = ARGV[o + 2], opt(ARGV[o + 11])
  local U = nil
  if key then
    U = P .. 'unique:' .. q .. ':' .. key
    local holder = redis.call('GET', U)
    if holder then
      local f = redis.call('HMGET', J(holder), 'created_at', 'state')
      if f[1] and tonumber(f[1]) > tonumber(ARGV[o + 15]) and f[2] ~= 'cancelled' then
        return {tonumber(holder), 0}
      end
    end
  end
  local id = redis.call('INCR', P .. 'seq')
  redis.call('HSET', J(id), 'id', id, 'queue', q, 'target', ARGV[o + 3], 'params', ARGV[o + 4],
    'priority', ARGV[o + 5], 'state', 'pending', 'attempt', 0, 'max_attempts', ARGV[o + 6],
    'backoff_ms', ARGV[o + 7], 'timeout_ms', ARGV[o + 8], 'created_at', ARGV[o + 10],
    'metadata', ARGV[o + 12])
  if key then redis.call('HSET', J(id), 'unique_key', key) end
  if opt(ARGV[o + 13]) then redis.call('HSET', J(id), 'caller', opt(ARGV[o + 13])) end
  if opt(ARGV[o + 14]) then redis.call('HSET', J(id), 'scopes', opt(ARGV[o + 14])) end
  redis.call('SADD', QUEUES, q)
  redis.call('ZADD', S('pending', q), id, M(id))
  wait(id, q, ARGV[o + 9])
  if U then redis.call('SET', U, id) end
  woken[q] = true
  return {id, 1}
end
local added = {}
for o = 0, #ARGV - 15, 14 do
  added[#added + 1] = one(o)
end
for q in pairs(woken) do redis.call('PUBLISH', P .. 'wake', q) end
return added
";

/// ARGV: prefix, now, worker, lease end, queues left out (comma-separated). The
/// job taken, or false.
const CLAIM: &str = r"
local now = tonumber(ARGV[2])
local skip = {}
for q in string.gmatch(ARGV[5], '[^,]+') do skip[q] = true end
local best, bestq, bests
for _, q in ipairs(redis.call('SMEMBERS', QUEUES)) do
  if not skip[q] and not paused(q) then
    promote(q, now)
    local head = redis.call('ZRANGE', READY(q), 0, 0, 'WITHSCORES')
    if head[1] then
      local s = tonumber(head[2])
      if not best or s < bests or (s == bests and head[1] < best) then
        best, bestq, bests = head[1], q, s
      end
    end
  end
end
if not best then return false end
return take(best, bestq, ARGV[3], ARGV[4])
";

/// ARGV: prefix, queue, now, worker, lease end, limit. The jobs taken, best first.
const CLAIM_MORE: &str = r"
local q, now = ARGV[2], tonumber(ARGV[3])
local taken = {}
if paused(q) then return taken end
promote(q, now)
local heads = redis.call('ZRANGE', READY(q), 0, tonumber(ARGV[6]) - 1)
for _, m in ipairs(heads) do
  taken[#taken + 1] = take(m, q, ARGV[4], ARGV[5])
end
return taken
";

/// ARGV: prefix, queue, rate, now, want. `{granted, left}` (left as text): the
/// queue's bucket refilled to now, then the grant taken from it.
const TAKE_TOKENS: &str = r"
local k = P .. 'rate:' .. ARGV[2]
local rate, now, want = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local b = redis.call('HMGET', k, 'tokens', 'at')
local tokens, at = tonumber(b[1]) or rate, tonumber(b[2]) or now
tokens = math.min(rate, tokens + math.max(0, now - at) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', k, 'tokens', string.format('%.6f', tokens), 'at', I(math.max(at, now)))
return {granted, string.format('%.6f', tokens)}
";

/// ARGV: prefix, queue, rate, tokens given back.
const RETURN_TOKENS: &str = r"
local k = P .. 'rate:' .. ARGV[2]
local tokens = tonumber(redis.call('HGET', k, 'tokens'))
if not tokens then return 0 end
tokens = math.min(tonumber(ARGV[3]), tokens + tonumber(ARGV[4]))
redis.call('HSET', k, 'tokens', string.format('%.6f', tokens))
return 1
";

/// ARGV: prefix, id, attempt, progress. The job's queue when stored, or false.
const PROGRESS: &str = r"
local f = redis.call('HMGET', J(ARGV[2]), 'state', 'attempt', 'queue')
if f[1] ~= 'running' or f[2] ~= ARGV[3] then return false end
redis.call('HSET', J(ARGV[2]), 'progress', ARGV[4])
return f[3]
";

/// ARGV: prefix, id, worker, lease end. 1 when renewed.
const RENEW: &str = r"
if not held(ARGV[2], ARGV[3]) then return 0 end
redis.call('HSET', J(ARGV[2]), 'lease_until', ARGV[4])
redis.call('ZADD', LEASES, tonumber(ARGV[4]), M(ARGV[2]))
return 1
";

/// ARGV: prefix, worker, now, then each job's id and result. For each, 1 when
/// stored.
const COMPLETE: &str = r"
local stored = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local q = held(id, ARGV[2])
  if q then
    release(id)
    move(id, q, 'running', 'completed')
    redis.call('HSET', J(id), 'result', ARGV[i + 1], 'finished_at', ARGV[3])
    stored[#stored + 1] = 1
  else
    stored[#stored + 1] = 0
  end
end
return stored
";

/// ARGV: prefix, id, worker, now, error, retry_at (opt), errors kept. 1 when
/// stored.
const FAIL: &str = r"
local id = ARGV[2]
local q = held(id, ARGV[3])
if not q then return 0 end
release(id)
redis.call('RPUSH', ERR(id), ARGV[5])
redis.call('LTRIM', ERR(id), -tonumber(ARGV[7]), -1)
local retry_at = opt(ARGV[6])
if retry_at then
  move(id, q, 'running', 'pending')
  wait(id, q, retry_at)
else
  move(id, q, 'running', 'dead')
  redis.call('HSET', J(id), 'finished_at', ARGV[4])
end
return 1
";

/// ARGV: prefix, now. `{id, queue, attempt, dead (1/0)}` per job recovered (at
/// most 1,000 a call).
const RECOVER: &str = r#"
local now = ARGV[2]
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', '(' .. I(now), 'LIMIT', 0, 1000)) do
  local f = redis.call('HMGET', J(m), 'state', 'queue', 'attempt', 'max_attempts')
  release(m)
  if f[1] == 'running' then
    local q, attempt = f[2], tonumber(f[3])
    redis.call('RPUSH', ERR(m), '{"attempt":' .. I(attempt) .. ',"at":' .. I(now)
      .. ',"error":"stalled: the lease ran out"}')
    local dead = 0
    if attempt >= tonumber(f[4]) then
      dead = 1
      move(m, q, 'running', 'dead')
      redis.call('HSET', J(m), 'finished_at', now)
    else
      move(m, q, 'running', 'pending')
      wait(m, q, now)
    end
    out[#out + 1] = {tonumber(m), q, attempt, dead}
  end
end
return out
"#;

/// ARGV: prefix, id. The job, or false.
const GET: &str = r"
return read(ARGV[2])
";

/// ARGV: prefix, id, now. 1 when cancelled.
const CANCEL: &str = r"
local id = ARGV[2]
local f = redis.call('HMGET', J(id), 'state', 'queue')
if f[1] == 'pending' then
  unwait(id, f[2])
elseif f[1] == 'running' then
  release(id)
else
  return 0
end
move(id, f[2], f[1], 'cancelled')
redis.call('HSET', J(id), 'finished_at', ARGV[3])
return 1
";

/// ARGV: prefix, now, ids (comma-separated) or '', queue (opt), batch. How many
/// dead (or, by id, cancelled) jobs now wait again.
const REQUEUE: &str = r"
local now, n = ARGV[2], 0
local function back(id, q)
  move(id, q, redis.call('HGET', J(id), 'state'), 'pending')
  redis.call('HSET', J(id), 'attempt', 0)
  redis.call('HDEL', J(id), 'finished_at')
  wait(id, q, now)
  n = n + 1
end
if ARGV[3] ~= '' then
  for id in string.gmatch(ARGV[3], '[^,]+') do
    local f = redis.call('HMGET', J(id), 'state', 'queue')
    if f[1] == 'dead' or f[1] == 'cancelled' then back(id, f[2]) end
  end
else
  local qs = redis.call('SMEMBERS', QUEUES)
  if opt(ARGV[4]) then qs = {opt(ARGV[4])} end
  local left = tonumber(ARGV[5])
  for _, q in ipairs(qs) do
    for _, m in ipairs(redis.call('ZRANGE', S('dead', q), 0, left - n - 1)) do back(m, q) end
    if n >= left then break end
  end
end
if n > 0 then redis.call('PUBLISH', P .. 'wake', '*') end
return n
";

/// ARGV: prefix, queue (opt), state (opt), after, limit. The jobs, by id.
const LIST: &str = r"
local qs = redis.call('SMEMBERS', QUEUES)
if opt(ARGV[2]) then qs = {opt(ARGV[2])} end
local states = {'pending', 'running', 'completed', 'dead', 'cancelled'}
if opt(ARGV[3]) then states = {opt(ARGV[3])} end
local limit = tonumber(ARGV[5])
local ids = {}
for _, q in ipairs(qs) do
  for _, st in ipairs(states) do
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', S(st, q), '(' .. ARGV[4], '+inf', 'LIMIT', 0, limit)) do
      ids[#ids + 1] = tonumber(m)
    end
  end
end
table.sort(ids)
local out = {}
for i = 1, math.min(limit, #ids) do out[i] = read(ids[i]) end
return out
";

/// ARGV: prefix, queue (opt). `{queue, paused, pending, running, completed, dead,
/// cancelled}` per queue that has jobs or a paused flag.
const STATS: &str = r"
local qs = {}
if opt(ARGV[2]) then
  local q = opt(ARGV[2])
  if redis.call('SISMEMBER', QUEUES, q) == 1 or redis.call('HEXISTS', PAUSED, q) == 1 then
    qs = {q}
  end
else
  local seen = {}
  for _, q in ipairs(redis.call('SMEMBERS', QUEUES)) do seen[q] = true end
  for _, q in ipairs(redis.call('HKEYS', PAUSED)) do seen[q] = true end
  for q in pairs(seen) do qs[#qs + 1] = q end
end
local out = {}
for _, q in ipairs(qs) do
  local row = {q, paused(q) and 1 or 0}
  for _, st in ipairs({'pending', 'running', 'completed', 'dead', 'cancelled'}) do
    row[#row + 1] = redis.call('ZCARD', S(st, q))
  end
  out[#out + 1] = row
end
return out
";

/// ARGV: prefix, queue, paused (1/0).
const SET_PAUSED: &str = r"
redis.call('HSET', PAUSED, ARGV[2], ARGV[3])
if ARGV[3] == '0' then redis.call('PUBLISH', P .. 'wake', ARGV[2]) end
return 1
";

/// ARGV: prefix, after. The earliest `run_at` after it of a waiting job of a
/// queue not paused (as text), or false. Jobs already moved to `ready` were due
/// by an earlier claim's `now`, so only `delayed` is read.
const NEXT_DUE: &str = r"
local best = nil
for _, q in ipairs(redis.call('SMEMBERS', QUEUES)) do
  if not paused(q) then
    local d = redis.call('ZRANGEBYSCORE', DELAYED(q), '(' .. ARGV[2], '+inf', 'LIMIT', 0, 1)
    if d[1] then
      local at = tonumber(redis.call('HGET', J(d[1]), 'run_at'))
      if not best or at < best then best = at end
    end
  end
end
if not best then return false end
return I(best)
";

/// ARGV: prefix, name, body (JSON: cron, timezone, job), next_at.
const PUT_SCHEDULE: &str = r"
redis.call('HSET', P .. 'schedules', ARGV[2], ARGV[3])
redis.call('ZADD', P .. 'schedule-next', tonumber(ARGV[4]), ARGV[2])
return 1
";

/// ARGV: prefix, name. 1 when there was one.
const REMOVE_SCHEDULE: &str = r"
redis.call('ZREM', P .. 'schedule-next', ARGV[2])
return redis.call('HDEL', P .. 'schedules', ARGV[2])
";

/// ARGV: prefix, due (opt). `{name, body, next_at}` per schedule.
const SCHEDULES: &str = r"
local names
if opt(ARGV[2]) then
  names = redis.call('ZRANGEBYSCORE', P .. 'schedule-next', '-inf', opt(ARGV[2]))
else
  names = redis.call('ZRANGE', P .. 'schedule-next', 0, -1)
end
local out = {}
for _, name in ipairs(names) do
  local body = redis.call('HGET', P .. 'schedules', name)
  if body then
    out[#out + 1] = {name, body, I(redis.call('ZSCORE', P .. 'schedule-next', name))}
  end
end
return out
";

/// ARGV: prefix, name, from, to. 1 when this call moved it.
const ADVANCE_SCHEDULE: &str = r"
local s = redis.call('ZSCORE', P .. 'schedule-next', ARGV[2])
if not s or tonumber(s) ~= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', P .. 'schedule-next', tonumber(ARGV[4]), ARGV[2])
return 1
";

/// The scripts, each compiled once with the prelude.
#[derive(Debug)]
struct Scripts {
    enqueue: Script,
    claim: Script,
    claim_more: Script,
    take_tokens: Script,
    return_tokens: Script,
    progress: Script,
    renew: Script,
    complete: Script,
    fail: Script,
    recover: Script,
    get: Script,
    cancel: Script,
    requeue: Script,
    list: Script,
    stats: Script,
    set_paused: Script,
    next_due: Script,
    put_schedule: Script,
    remove_schedule: Script,
    schedules: Script,
    advance_schedule: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

impl Scripts {
    fn new() -> Self {
        Self {
            enqueue: script(ENQUEUE),
            claim: script(CLAIM),
            claim_more: script(CLAIM_MORE),
            take_tokens: script(TAKE_TOKENS),
            return_tokens: script(RETURN_TOKENS),
            progress: script(PROGRESS),
            renew: script(RENEW),
            complete: script(COMPLETE),
            fail: script(FAIL),
            recover: script(RECOVER),
            get: script(GET),
            cancel: script(CANCEL),
            requeue: script(REQUEUE),
            list: script(LIST),
            stats: script(STATS),
            set_paused: script(SET_PAUSED),
            next_due: script(NEXT_DUE),
            put_schedule: script(PUT_SCHEDULE),
            remove_schedule: script(REMOVE_SCHEDULE),
            schedules: script(SCHEDULES),
            advance_schedule: script(ADVANCE_SCHEDULE),
        }
    }
}

/// Ends the wake-up subscription when the last clone of the backend goes.
#[derive(Debug)]
struct Subscription(JoinHandle<()>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Turns the `wake` channel's messages into the wake-up signal.
struct Wake(watch::Sender<u64>);

impl Listener for Wake {
    fn live(&self, live: bool) {
        // Messages published while the subscription was away are lost: wake
        // everyone once when it is back.
        if live {
            self.0.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    async fn message(&self, _channel: &str, _payload: &[u8]) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Jobs on Redis.
#[derive(Clone, Debug)]
pub struct RedisBackend {
    redis: Redis,
    prefix: String,
    scripts: Arc<Scripts>,
    wakeups: watch::Receiver<u64>,
    _subscription: Arc<Subscription>,
}

impl RedisBackend {
    /// The backend on `redis`, under its key prefix and `jobs:`, with its wake-up
    /// subscription started (on the current Tokio runtime).
    pub fn new(redis: Redis) -> Self {
        let prefix = redis.key("jobs:");
        let (tx, wakeups) = watch::channel(0u64);
        let task = plexus_redis::subscribe_forever(
            redis.clone(),
            Channels::exact(format!("{prefix}wake")),
            Wake(tx),
        );
        Self {
            redis,
            prefix,
            scripts: Arc::new(Scripts::new()),
            wakeups,
            _subscription: Arc::new(Subscription(task)),
        }
    }

    /// The connection.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Runs `script` with the prefix then `args`, in one round trip.
    async fn run<T: FromRedisValue + Send + 'static>(
        &self,
        script: &Script,
        args: &[&str],
    ) -> Result<T, JobError> {
        let args = std::iter::once(self.prefix.as_str()).chain(args.iter().copied());
        Ok(self.redis.eval(script, [0u8; 0], args).await?)
    }
}

/// An optional argument as the scripts read it: `''` for none, `=` and the value.
fn opt(value: Option<&str>) -> String {
    value.map_or_else(String::new, |v| format!("={v}"))
}

/// A reply that is not what the script returns: the server is not one we know.
fn malformed(what: &str) -> JobError {
    JobError::Backend {
        reason: format!("unexpected reply to the jobs {what} script"),
    }
}

/// A job from a script's `read(id)`: its hash's fields and its errors.
fn job_of(reply: Reply) -> Result<Job, JobError> {
    let (fields, errors): (HashMap<String, String>, Vec<String>) =
        redis::from_redis_value(reply).map_err(|_| malformed("job"))?;
    let text = |name: &str| fields.get(name).cloned();
    let int = |name: &str| -> Result<Option<i64>, JobError> {
        fields
            .get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| malformed(&format!("job's {name}")))
            })
            .transpose()
    };
    let need = |name: &str| int(name)?.ok_or_else(|| malformed(&format!("job's {name}")));
    let json = |name: &str| fields.get(name).map(|t| json_of(name, t)).transpose();
    let state = state_of(&text("state").unwrap_or_default())?;
    let scopes = scopes_of(text("scopes").as_deref())?;
    Ok(Job {
        id: need("id")?,
        queue: text("queue").unwrap_or_default(),
        target: text("target").unwrap_or_default(),
        params: json("params")?.unwrap_or(Value::Null),
        priority: i32::try_from(need("priority")?).map_err(|_| malformed("job's priority"))?,
        state,
        attempt: to_u32(need("attempt")?),
        max_attempts: to_u32(need("max_attempts")?),
        backoff_ms: to_u64(need("backoff_ms")?),
        timeout_ms: to_u64(need("timeout_ms")?),
        run_at: need("run_at")?,
        created_at: need("created_at")?,
        finished_at: int("finished_at")?,
        worker: text("worker"),
        lease_until: int("lease_until")?,
        result: json("result")?,
        progress: json("progress")?,
        errors: errors
            .iter()
            .map(|e| json_of("error", e))
            .collect::<Result<_, _>>()?,
        unique_key: text("unique_key"),
        metadata: json("metadata")?.unwrap_or(Value::Null),
        caller: text("caller"),
        scopes,
    })
}

fn maybe_job(reply: Reply) -> Result<Option<Job>, JobError> {
    match reply {
        Reply::Nil | Reply::Boolean(false) => Ok(None),
        other => job_of(other).map(Some),
    }
}

#[async_trait]
impl JobBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn wakeups(&self) -> Option<watch::Receiver<u64>> {
        Some(self.wakeups.clone())
    }

    async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<(i64, bool)>, JobError> {
        let texts: Vec<[String; 14]> = jobs
            .iter()
            .map(|job| {
                let since = job
                    .created_at
                    .saturating_sub(i64::try_from(job.unique_window_ms).unwrap_or(i64::MAX));
                let scopes = job
                    .scopes
                    .as_ref()
                    .map(|s| Value::from(s.clone()).to_string());
                [
                    job.queue.clone(),
                    job.target.clone(),
                    job.params.to_string(),
                    job.priority.to_string(),
                    job.max_attempts.to_string(),
                    job.backoff_ms.to_string(),
                    job.timeout_ms.to_string(),
                    job.run_at.to_string(),
                    job.created_at.to_string(),
                    opt(job.unique_key.as_deref()),
                    job.metadata.to_string(),
                    opt(job.caller.as_deref()),
                    opt(scopes.as_deref()),
                    since.to_string(),
                ]
            })
            .collect();
        let args: Vec<&str> = texts.iter().flatten().map(String::as_str).collect();
        let added: Vec<(i64, u8)> = self.run(&self.scripts.enqueue, &args).await?;
        Ok(added
            .into_iter()
            .map(|(id, created)| (id, created == 1))
            .collect())
    }

    async fn claim(
        &self,
        now: i64,
        full: &[String],
        worker: &str,
        lease_until: i64,
    ) -> Result<Option<Job>, JobError> {
        let args = [
            now.to_string(),
            worker.to_owned(),
            lease_until.to_string(),
            full.join(","),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        maybe_job(self.run(&self.scripts.claim, &args).await?)
    }

    async fn renew(&self, id: i64, worker: &str, lease_until: i64) -> Result<bool, JobError> {
        let args = [&id.to_string(), worker, &lease_until.to_string()];
        let done: u8 = self.run(&self.scripts.renew, &args).await?;
        Ok(done == 1)
    }

    async fn claim_more(
        &self,
        queue: &str,
        now: i64,
        worker: &str,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Job>, JobError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let args = [
            queue,
            &now.to_string(),
            worker,
            &lease_until.to_string(),
            &limit.to_string(),
        ];
        let taken: Vec<Reply> = self.run(&self.scripts.claim_more, &args).await?;
        taken.into_iter().map(job_of).collect()
    }

    async fn take_tokens(
        &self,
        queue: &str,
        rate: u32,
        now: i64,
        want: u32,
    ) -> Result<(u32, f64), JobError> {
        let args = [
            queue,
            &rate.to_string(),
            &now.to_string(),
            &want.to_string(),
        ];
        let (granted, left): (u32, String) = self.run(&self.scripts.take_tokens, &args).await?;
        let left = left.parse().map_err(|_| malformed("take_tokens"))?;
        Ok((granted, left))
    }

    async fn return_tokens(&self, queue: &str, rate: u32, n: u32) -> Result<(), JobError> {
        let args = [queue, &rate.to_string(), &n.to_string()];
        let _: u8 = self.run(&self.scripts.return_tokens, &args).await?;
        Ok(())
    }

    async fn progress(
        &self,
        id: i64,
        attempt: u32,
        progress: &Value,
    ) -> Result<Option<String>, JobError> {
        let args = [id.to_string(), attempt.to_string(), progress.to_string()];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&self.scripts.progress, &args).await
    }

    async fn complete_many(
        &self,
        worker: &str,
        now: i64,
        done: &[(i64, Value)],
    ) -> Result<Vec<bool>, JobError> {
        let now = now.to_string();
        let texts: Vec<(String, String)> = done
            .iter()
            .map(|(id, result)| (id.to_string(), result.to_string()))
            .collect();
        let mut args = vec![worker, now.as_str()];
        for (id, result) in &texts {
            args.extend([id.as_str(), result.as_str()]);
        }
        let stored: Vec<u8> = self.run(&self.scripts.complete, &args).await?;
        Ok(stored.into_iter().map(|s| s == 1).collect())
    }

    async fn fail(
        &self,
        id: i64,
        worker: &str,
        now: i64,
        error: &Value,
        retry_at: Option<i64>,
        keep: usize,
    ) -> Result<bool, JobError> {
        let retry_at = retry_at.map(|t| t.to_string());
        let args = [
            &id.to_string(),
            worker,
            &now.to_string(),
            &error.to_string(),
            &opt(retry_at.as_deref()),
            &keep.max(1).to_string(),
        ];
        let done: u8 = self.run(&self.scripts.fail, &args).await?;
        Ok(done == 1)
    }

    async fn recover(&self, now: i64) -> Result<Vec<Stalled>, JobError> {
        let rows: Vec<(i64, String, i64, u8)> =
            self.run(&self.scripts.recover, &[&now.to_string()]).await?;
        Ok(rows
            .into_iter()
            .map(|(id, queue, attempt, dead)| Stalled {
                id,
                queue,
                attempt: to_u32(attempt),
                dead: dead == 1,
            })
            .collect())
    }

    async fn get(&self, id: i64) -> Result<Option<Job>, JobError> {
        maybe_job(self.run(&self.scripts.get, &[&id.to_string()]).await?)
    }

    async fn cancel(&self, id: i64, now: i64) -> Result<bool, JobError> {
        let args = [id.to_string(), now.to_string()];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let done: u8 = self.run(&self.scripts.cancel, &args).await?;
        Ok(done == 1)
    }

    async fn requeue(
        &self,
        ids: Option<&[i64]>,
        queue: Option<&str>,
        now: i64,
    ) -> Result<u64, JobError> {
        let now = now.to_string();
        let batch = REQUEUE_BATCH.to_string();
        let queue = opt(queue);
        if let Some(ids) = ids {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            // An empty list requeues nothing (not every dead job).
            if ids.is_empty() {
                return Ok(0);
            }
            let args = [now.as_str(), &ids.join(","), &queue, &batch];
            return self.run(&self.scripts.requeue, &args).await;
        }
        let mut total = 0u64;
        loop {
            let args = [now.as_str(), "", &queue, &batch];
            let n: u64 = self.run(&self.scripts.requeue, &args).await?;
            total += n;
            if n < REQUEUE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError> {
        let args = [
            opt(filter.queue.as_deref()),
            opt(filter.state.map(JobState::as_str)),
            filter.after.unwrap_or(0).to_string(),
            filter.limit.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let rows: Vec<Reply> = self.run(&self.scripts.list, &args).await?;
        rows.into_iter().map(job_of).collect()
    }

    async fn stats(&self, queue: Option<&str>) -> Result<Vec<QueueStats>, JobError> {
        type Row = (String, u8, u64, u64, u64, u64, u64);
        let rows: Vec<Row> = self.run(&self.scripts.stats, &[&opt(queue)]).await?;
        let mut stats: Vec<QueueStats> = rows
            .into_iter()
            .map(
                |(queue, paused, pending, running, completed, dead, cancelled)| QueueStats {
                    queue,
                    paused: paused == 1,
                    pending,
                    running,
                    completed,
                    dead,
                    cancelled,
                },
            )
            .collect();
        stats.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(stats)
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), JobError> {
        let flag = if paused { "1" } else { "0" };
        let _: u8 = self.run(&self.scripts.set_paused, &[queue, flag]).await?;
        Ok(())
    }

    async fn next_due(&self, after: i64) -> Result<Option<i64>, JobError> {
        let due: Option<String> = self
            .run(&self.scripts.next_due, &[&after.to_string()])
            .await?;
        due.map(|d| d.parse().map_err(|_| malformed("next due")))
            .transpose()
    }

    async fn put_schedule(&self, schedule: &ScheduleRow) -> Result<(), JobError> {
        let body = serde_json::json!({
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "job": schedule.job,
        });
        let args = [
            schedule.name.as_str(),
            &body.to_string(),
            &schedule.next_at.to_string(),
        ];
        let _: u8 = self.run(&self.scripts.put_schedule, &args).await?;
        Ok(())
    }

    async fn remove_schedule(&self, name: &str) -> Result<bool, JobError> {
        let removed: u8 = self.run(&self.scripts.remove_schedule, &[name]).await?;
        Ok(removed == 1)
    }

    async fn schedules(&self, due: Option<i64>) -> Result<Vec<ScheduleRow>, JobError> {
        let due = due.map(|d| d.to_string());
        let rows: Vec<(String, String, String)> = self
            .run(&self.scripts.schedules, &[&opt(due.as_deref())])
            .await?;
        let mut out = rows
            .into_iter()
            .map(|(name, body, next_at)| {
                let mut body = json_of("schedule", &body)?;
                let field = |body: &mut Value, key: &str| match body[key].take() {
                    Value::String(s) => Ok(s),
                    _ => Err(malformed("schedule")),
                };
                Ok(ScheduleRow {
                    cron: field(&mut body, "cron")?,
                    timezone: field(&mut body, "timezone")?,
                    job: body["job"].take(),
                    next_at: next_at.parse().map_err(|_| malformed("schedule"))?,
                    name,
                })
            })
            .collect::<Result<Vec<_>, JobError>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn advance_schedule(&self, name: &str, from: i64, to: i64) -> Result<bool, JobError> {
        let args = [name, &from.to_string(), &to.to_string()];
        let moved: u8 = self.run(&self.scripts.advance_schedule, &args).await?;
        Ok(moved == 1)
    }
}
