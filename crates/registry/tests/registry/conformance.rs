//! The backend conformance suite against the in-memory backend.

plexus_registry::backend_conformance!(|| async { plexus_registry::MemoryBackend::new() });
