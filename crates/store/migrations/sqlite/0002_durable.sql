-- The durable outbox: events written in the same transaction as the data change
-- that caused them, delivered to the bus after commit. `seq` is the event's offset:
-- AUTOINCREMENT never reuses one, even after retention deletes old rows.
CREATE TABLE IF NOT EXISTS plexus_outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    topic          TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    at_us          INTEGER NOT NULL,
    envelope       TEXT NOT NULL,
    delivered_us   INTEGER, -- when it was settled: delivered, or given up (failed = 1)
    attempts       INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT
);
CREATE INDEX IF NOT EXISTS plexus_outbox_pending ON plexus_outbox (seq)
    WHERE delivered_us IS NULL;
CREATE INDEX IF NOT EXISTS plexus_outbox_at ON plexus_outbox (at_us);
CREATE INDEX IF NOT EXISTS plexus_outbox_delivered ON plexus_outbox (delivered_us)
    WHERE delivered_us IS NOT NULL;

-- The audit trail: one row per mutating call.
CREATE TABLE IF NOT EXISTS plexus_audit (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us          INTEGER NOT NULL,
    who            TEXT,
    method         TEXT NOT NULL,
    params         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    ok             INTEGER NOT NULL,
    error_code     TEXT,
    error_message  TEXT,
    duration_us    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plexus_audit_who ON plexus_audit (who, seq);
CREATE INDEX IF NOT EXISTS plexus_audit_method ON plexus_audit (method, seq);
CREATE INDEX IF NOT EXISTS plexus_audit_correlation ON plexus_audit (correlation_id, seq);
CREATE INDEX IF NOT EXISTS plexus_audit_at ON plexus_audit (at_us);

-- Configuration history: every version of a configuration scope, as JSON.
CREATE TABLE IF NOT EXISTS plexus_config_history (
    scope   TEXT NOT NULL,
    version INTEGER NOT NULL,
    entry   TEXT NOT NULL,
    PRIMARY KEY (scope, version)
);
