-- Fencing: per lock name, the highest fencing token a fenced write has carried. A
-- fenced write whose token is lower is refused in its own transaction.
CREATE TABLE IF NOT EXISTS plexus_fences (
    lock_name TEXT PRIMARY KEY,
    token     INTEGER NOT NULL
);
