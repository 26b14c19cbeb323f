//! The conformance suite (`plexus_store::conformance`), run unchanged on SQLite and
//! PostgreSQL, each test on a fresh database.

mod sqlite {
    plexus_store::store_conformance!(|| crate::support::TestStore::open(
        plexus_store::BackendKind::Sqlite,
        |_| {}
    ));
}

mod postgres {
    plexus_store::store_conformance!(|| crate::support::TestStore::open(
        plexus_store::BackendKind::Postgres,
        |_| {}
    ));
}
