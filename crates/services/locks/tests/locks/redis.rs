//! The Redis backend on the shared test server: the conformance suite, each test
//! under a key prefix of its own.

plexus_locks::locks_conformance!(paused: false, |config| async move {
    crate::support::redis_locks(config)
});
