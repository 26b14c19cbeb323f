-- The collections the DataStore knows, with the spec (indexes) each declared.
-- Each collection's documents live in a table of their own, doc_<name>, created
-- with the collection.
CREATE TABLE IF NOT EXISTS plexus_collections (
    name       TEXT NOT NULL PRIMARY KEY,
    spec       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
