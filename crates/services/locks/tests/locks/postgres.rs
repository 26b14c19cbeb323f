//! The PostgreSQL backend on the test server: the conformance suite, each test with
//! lock names of its own.

plexus_locks::locks_conformance!(paused: false, |config| async move {
    crate::support::postgres_locks(config).await
});
