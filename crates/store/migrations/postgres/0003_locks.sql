-- Fencing: per lock name, the highest fencing token a fenced write has carried. A
-- fenced write whose token is lower is refused in its own transaction.
CREATE TABLE IF NOT EXISTS plexus_fences (
    lock_name TEXT COLLATE "C" PRIMARY KEY,
    token     BIGINT NOT NULL
);

-- The Locks family's PostgreSQL backend (`[locks] backend = "postgres"`): one row
-- per lock held (or held once and expired), its lease on the server's clock, and
-- one sequence for every lock's fencing tokens (durable: never goes back).
CREATE TABLE IF NOT EXISTS plexus_locks (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT NOT NULL,
    token      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS plexus_lock_tokens;
