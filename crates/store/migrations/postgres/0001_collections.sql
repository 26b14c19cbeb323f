-- The collections the DataStore knows, with the spec (indexes) each declared.
-- Each collection's documents live in a table of their own, doc_<name>, created
-- with the collection.
CREATE TABLE IF NOT EXISTS plexus_collections (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    spec       JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
